package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// countingKernel is a kernel at a settable generation that counts reads.
type countingKernel struct {
	gen   uint32
	reads int
	fail  error
	table *ruleset.Table
}

func (k *countingKernel) Read(context.Context) (*ruleset.Table, uint32, error) {
	k.reads++
	if k.fail != nil {
		return nil, 0, k.fail
	}
	return k.table.Clone(), k.gen, nil
}

func (k *countingKernel) Apply(context.Context, *planner.Plan, uint32) (uint32, error) {
	return k.gen, nil
}

// TestReadCache: a read at an unchanged generation returns the last one's
// table, not a read; a moved generation, a failed read or an unknown
// generation read again.
func TestReadCache(t *testing.T) {
	k := &countingKernel{gen: 7, table: &ruleset.Table{Name: "hostwall", Chains: []*ruleset.Chain{{Name: "c"}}}}
	var genErr error
	c := &readCache{Kernel: k, generation: func() (uint32, error) { return k.gen, genErr }}
	ctx := context.Background()
	read := func(what string, wantReads int) *ruleset.Table {
		t.Helper()
		tbl, gen, err := c.Read(ctx)
		if err != nil || gen != k.gen || k.reads != wantReads {
			t.Fatalf("%s: gen %d err %v, %d kernel reads; want gen %d, %d reads", what, gen, err, k.reads, k.gen, wantReads)
		}
		return tbl
	}
	first := read("first", 1)
	if again := read("same generation", 1); again != first {
		t.Error("the same generation gave another table")
	}
	k.gen = 8
	read("moved generation", 2)
	read("same again", 2)
	genErr = errors.New("no generation")
	read("generation unknown", 3)
	genErr = nil
	k.gen, k.fail = 9, errors.New("netlink")
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("a failed read succeeded")
	}
	k.fail = nil
	read("after a failed read", 5)
	read("and then from the copy", 5)
	(&readCache{Kernel: k}).Read(ctx)
	if k.reads != 6 {
		t.Errorf("without a generation function: %d reads, want every one", k.reads)
	}
}
