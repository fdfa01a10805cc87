package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// countingKernel is a kernel at a settable generation that counts reads.
type countingKernel struct {
	gen    uint32
	genErr error
	reads  int
	fail   error
	table  *ruleset.Table
}

func (k *countingKernel) Generation() (uint32, error) { return k.gen, k.genErr }

func (k *countingKernel) DeleteTable(context.Context, uint32) error { return nil }

func (k *countingKernel) Read(context.Context) (*ruleset.Table, uint32, error) {
	k.reads++
	if k.fail != nil {
		return nil, 0, k.fail
	}
	return k.table.Clone(), k.gen, nil
}

func (k *countingKernel) Apply(context.Context, *planner.Plan) (uint32, error) {
	return k.gen, nil
}

// TestReadCache: a read at an unchanged generation returns the last one's
// table, not a read; a moved generation, a failed read or an unknown
// generation read again.
func TestReadCache(t *testing.T) {
	k := &countingKernel{gen: 7, table: &ruleset.Table{Name: "hostwall", Chains: []*ruleset.Chain{{Name: "c"}}}}
	c := &readCache{Kernel: k}
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
	k.genErr = errors.New("no generation")
	read("generation unknown", 3)
	k.genErr = nil
	k.gen, k.fail = 9, errors.New("netlink")
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("a failed read succeeded")
	}
	k.fail = nil
	read("after a failed read", 5)
	read("and then from the copy", 5)
}

// TestReadCacheKeepApplied: after a commit of set elements alone, planned
// against the kept table, the kept table becomes the kernel's at the new
// generation (the sets as the plan made them, the old table unchanged for
// whoever shares it) and is read from without reading the kernel; any
// other plan, or one planned against another generation, is read again,
// and a read made since the commit is kept as it is.
func TestReadCacheKeepApplied(t *testing.T) {
	elem := func(s string) ruleset.Element { return ruleset.Element{From: s, To: s} }
	live := &ruleset.Table{Name: "hostwall",
		Chains: []*ruleset.Chain{{Name: "c", Rules: []*ruleset.Rule{{Handle: 4}}}},
		Sets:   []*ruleset.Set{{Name: "bl", Interval: true, Elements: []ruleset.Element{elem("a")}}, {Name: "other"}}}
	k := &countingKernel{gen: 7, table: live}
	c := &readCache{Kernel: k}
	ctx := context.Background()
	kept, _, _ := c.Read(ctx)
	after := &ruleset.Set{Name: "bl", Interval: true, Comment: "desired", Elements: []ruleset.Element{elem("b")}}
	setsPlan := func(gen uint32) *planner.Plan {
		return &planner.Plan{Generation: gen, Changes: []planner.Change{{Kind: planner.KindSet, Name: "bl", Action: planner.Update,
			Set: &planner.SetDiff{Before: kept.Sets[0], After: after, Added: after.Elements, Removed: kept.Sets[0].Elements}}}}
	}

	k.gen = 8 // the commit
	if !c.keepApplied(setsPlan(7), 8) {
		t.Fatal("a commit of set elements was not kept")
	}
	got, gen, err := c.Read(ctx)
	if err != nil || gen != 8 || k.reads != 1 {
		t.Fatalf("after the commit: gen %d, %v, %d reads; want 8 from the kept table", gen, err, k.reads)
	}
	if s := got.Set("bl"); s.Comment != "" || len(s.Elements) != 1 || s.Elements[0] != elem("b") || got.Set("other") == nil ||
		got.Chains[0].Rules[0].Handle != 4 {
		t.Errorf("kept table after the commit: %+v", got)
	}
	if kept.Set("bl").Elements[0] != elem("a") {
		t.Error("the table kept before was changed")
	}
	// The periodic verification reads a derived table once.
	c.forgetDerived()
	c.Read(ctx)
	c.forgetDerived()
	c.Read(ctx)
	if k.reads != 2 {
		t.Fatalf("%d reads after forgetting a derived table twice, want one more", k.reads)
	}

	// A plan against another generation than the kept table's.
	k.gen = 9
	if c.keepApplied(setsPlan(7), 9) {
		t.Error("a plan made at generation 7 was kept over the table of 8")
	}
	c.Read(ctx)
	if k.reads != 3 {
		t.Errorf("%d reads after a plan of another generation, want a read", k.reads)
	}
	// A read since the commit is the kernel's own.
	if !c.keepApplied(setsPlan(8), 9) || k.reads != 3 {
		t.Errorf("a read at the commit's generation was not kept (%d reads)", k.reads)
	}
	// A change to a chain: its rules' handles are the kernel's to give.
	chainPlan := &planner.Plan{Generation: 9, Changes: []planner.Change{{Kind: planner.KindChain, Name: "c", Action: planner.Update,
		Chain: &planner.ChainDiff{}}}}
	k.gen = 10
	if c.keepApplied(chainPlan, 10) {
		t.Error("a chain change was kept")
	}
	c.Read(ctx)
	if k.reads != 4 {
		t.Errorf("%d reads after a chain change, want a read", k.reads)
	}
}
