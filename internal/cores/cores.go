// Package cores runs independent pieces of work on every core: the
// machines hostwall runs on have few, and a plan or a load of a large
// configuration has work that splits (docs/performance.md).
package cores

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Each calls f(0) … f(n-1), on as many goroutines as there are cores
// (GOMAXPROCS), and returns when every call has returned. The calls must
// not depend on each other's order.
func Each(n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}
