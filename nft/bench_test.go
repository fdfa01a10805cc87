package nft_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hostwall/hostwall/nft"
)

// BenchmarkReadLargeSet reads back a table holding a 100,000-CIDR interval
// set, the cost of every plan, with and without the dump priming of trap
// 11, side by side: go test ./nft -run '^$' -bench ReadLargeSet -count 5.
func BenchmarkReadLargeSet(b *testing.B) {
	for _, c := range []struct {
		name  string
		prime bool
	}{{"primed", true}, {"unprimed", false}} {
		b.Run(c.name, func(b *testing.B) {
			defer nft.SetPrimeDumps(c.prime)()
			conn, _ := kernel(b)
			apply(b, conn, bigTable(0, 100000))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := conn.Read(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadSetSize reads one interval set of n networks, unsharded:
// the kernel restarts its walk of the set for every dump message (trap
// 11), so the time per element grows with n. Where it leaves the linear
// part behind is where --shard-min belongs (docs/kernel.md, "Sharded
// sets").
func BenchmarkReadSetSize(b *testing.B) {
	for _, n := range []int{4096, 16384, 32768, 65536, 131072} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			conn, _ := kernel(b)
			apply(b, conn, bigTable(0, n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := conn.Read(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/network")
		})
	}
}

// TestPrimedReadMatches (trap 11): a primed connection reads the same table
// as an unprimed one (the priming changes only how the kernel cuts the
// dump into messages).
func TestPrimedReadMatches(t *testing.T) {
	conn, ns := kernel(t)
	desired := bigTable(50, 20000)
	apply(t, conn, desired)
	primed, _, err := conn.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	restore := nft.SetPrimeDumps(false)
	plain, err := nft.Open(nft.Options{NetNS: ns})
	restore()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	unprimed, _, err := plain.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := primed.String(), unprimed.String(); a != b {
		t.Errorf("primed and unprimed reads differ (%d vs %d bytes)", len(a), len(b))
	}
	if got := len(primed.Set("blocklist").Elements); got != 20000 {
		t.Errorf("read %d elements, want 20000", got)
	}
}
