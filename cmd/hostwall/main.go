// Command hostwall is a declarative host firewall: it plans the policy files
// of /etc/hostwall as a diff against the kernel's nftables state and applies
// it as one atomic transaction.
package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
)

// exitError carries an exit code other than 1 (DESIGN §10: 2 = plan has
// changes with --detailed-exitcode) or an error already reported.
type exitError struct {
	code int
	err  error // nil: already printed
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// gcPercent is the garbage collector's target: collecting a quarter as
// often as Go's default makes loading a large configuration a quarter
// faster for more peak memory while working (docs/performance.md). The
// agent hands its memory back after each piece of work, so its resting
// memory hardly changes. GOGC or GOMEMLIMIT in the environment override it.
const gcPercent = 400

// gcFloor is the heap below which a one-shot command collects no garbage
// at all (oneShotGC): an incremental apply of a large blocklist stays
// below it (docs/performance.md).
const gcFloor = 64 << 20

func main() {
	if gcTuned() {
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(run())
}

// gcTuned reports whether hostwall chooses the collector's settings (the
// environment has not).
func gcTuned() bool { return os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" }

// oneShotGC makes a command that exits when done collect nothing until its
// heap reaches gcFloor, and from the first collection on collect at
// gcPercent as before — so a large configuration is never collected over
// and over at a ceiling.
func oneShotGC() {
	if !gcTuned() {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(gcFloor)
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(math.MaxInt64)
	})
}

// agentGC sets the agent's collector: half Go's default target, not the
// one-shot commands' gcPercent, and a soft limit on the heap, which
// agentSettled moves with what the agent holds. The agent holds what a
// large configuration needs between changes and makes garbage while it
// works: collecting when its heap has grown by half, not doubled, took its
// peak applying a million networks from nothing from 1.5 GB (gcPercent) to
// ~420 MB, and during one-line changes of that list to ~200 MB, at the
// same speed; the limit, from ~270 MB to ~190 MB, 6.0 → 7.7 s
// (docs/performance.md). GOGC or GOMEMLIMIT in the environment override
// both.
func agentGC() {
	if !gcTuned() {
		return
	}
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(agentHeapFloor)
	followLiveHeap()
}

// followLiveHeap raises the agent's soft heap limit, after any collection,
// to a quarter above the live heap when that has come within a tenth of
// the limit: work that needs more than the limit (a configuration far
// larger than a million networks) is collected often, not all the time.
// With the limit fixed, the collector took half the CPU: 2.1 million
// networks' first apply took 51–62 s instead of ~15 s, longer than the
// unit's watchdog (found by a review). A million networks' first apply
// (~156 MiB live at most) stays under the floor's tenth.
func followLiveHeap() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		if live := liveHeap(); live > debug.SetMemoryLimit(-1)/10*9 {
			debug.SetMemoryLimit(live / 4 * 5)
		}
		followLiveHeap()
	})
}

// liveHeap is the heap the last collection found live.
func liveHeap() int64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(sample[0].Value.Uint64())
}

// agentHeapFloor is the least of the agent's soft heap limits: a little
// above what a million networks' first apply holds at once (~156 MiB). An
// apply that needs more is slowed by the collector (at most half the CPU
// goes to it) but not refused.
const agentHeapFloor = 176 << 20

// agentSettled runs whenever the agent has finished a piece of work and
// collected: its soft heap limit becomes half again what it holds at rest
// (the collector's own target at GOGC=50), or the floor. Work that holds
// more than that for a while — a configuration far larger than a million
// networks, on its first apply — is slowed by the collector, not refused.
// (Twice, with a floor of 192 MiB, let the periodic verification of a
// million networks peak at 202 MB: its reads make garbage fast.)
func agentSettled() {
	if !gcTuned() {
		return
	}
	live := liveHeap()
	debug.SetMemoryLimit(max(agentHeapFloor, 3*live/2))
	// A small configuration is collected when its heap has tripled: the
	// collector's assists took 6–7 ms of each policy save of W1's files
	// (10,000 rules, 100,000 networks: ~40 MB at rest), W4 47 → 41 ms p50,
	// and half again its heap is not worth saving there.
	pct := 50
	if live < agentSmallHeap {
		pct = 200
	}
	debug.SetGCPercent(pct)
}

// agentSmallHeap is what the agent holds at rest below which it collects
// less often (agentSettled).
const agentSmallHeap = 64 << 20

// gcSentinel is collected by the first collection; its finalizer then
// ends oneShotGC's floor. (Big enough not to be a tiny allocation, whose
// finalizers need not run.)
type gcSentinel struct {
	_ [32]byte
	_ *int
}

// run runs the command line and returns the exit code.
func run() int {
	if p := os.Getenv("HOSTWALL_CPUPROFILE"); p != "" {
		stop, err := cpuProfile(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Error: %v\n", err)
			return 1
		}
		defer stop()
	}
	if p := os.Getenv("HOSTWALL_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 16 << 10
		defer memProfile(p)
	}
	err := newRootCmd().Execute()
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
		err = ee.err
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	return code
}

// cpuProfile writes a CPU profile of the command to path, for `go tool
// pprof` (docs/performance.md); the returned function ends it.
func cpuProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// memProfile writes what the command allocated to path, for `go tool pprof
// -sample_index=alloc_space` (docs/performance.md).
func memProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "notice: writing the memory profile: %v\n", err)
	}
}
