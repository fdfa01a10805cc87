package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
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
	// The periodic verification reads the kernel.
	c.forget()
	c.Read(ctx)
	c.Read(ctx)
	if k.reads != 2 {
		t.Fatalf("%d reads after forgetting a derived table, want one more", k.reads)
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

// TestRememberIncremental: after a change of a nets file applied the
// incremental way (the sets alone), the agent's engine still keeps the
// whole desired table of the generation in force — its kept chains with
// the new sets — and it is the table a full compile of the files makes;
// Repair (the periodic verification) plans from it instead of compiling
// the generation again.
func TestRememberIncremental(t *testing.T) {
	h := newHarness(t)
	var list strings.Builder
	for i := range 200 {
		fmt.Fprintf(&list, "10.%d.%d.0/24\n", i/200, i%200)
	}
	writeFile := func(name, data string) {
		if err := os.WriteFile(filepath.Join(h.cfg, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("bl.txt", list.String())
	h.write(`
host_endpoint "eth0" { interface = "eth0" }
network_set "bl" {
  labels    = { bad = "yes" }
  nets_file = "bl.txt"
}
policy "block" {
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
`)
	e := New(Options{ConfigDir: h.cfg, StateDir: h.stateDir, RunDir: h.runDir, NetNS: "test", HostName: "srv", Kernel: h.kernel, Memo: true})
	e.openNS = func() (state.Namespace, error) { return h.ns, nil }
	ctx := context.Background()
	if _, err := e.Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	writeFile("bl.txt", strings.Replace(list.String(), "10.0.0.0/24", "11.0.0.0/24", 1))
	note := ""
	res, err := e.Apply(ctx, ApplyRequest{Explicit: true, Show: func(p *Preview) { note = strings.Join(p.Notes, "\n") }})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "Only nets files changed since") {
		t.Fatalf("the change did not take the incremental way: %q", note)
	}
	if e.desired == nil || e.desired.n != res.Generation {
		t.Fatalf("after the incremental change the engine keeps %+v, want generation %d's table", e.desired, res.Generation)
	}
	l, err := e.Load()
	if err != nil {
		t.Fatal(err)
	}
	kept := *e.desired.table
	kept.Sets = slices.Clone(kept.Sets)
	kept.Sort()
	if got, want := kept.String(), l.Table.String(); got != want {
		t.Errorf("the kept table differs from a compile of the files:\n%s\n---\n%s", got, want)
	}
	if p, err := e.Repair(ctx, false); err != nil || p != nil {
		t.Errorf("Repair from the kept table: plan %+v, %v; want nothing to repair", p, err)
	}
}

// TestForgetReadsVouched: the periodic verification (Forget) reads the
// kernel even when the kept read is vouched for by the events as
// untouched — the backstop does not trust what it backs up.
func TestForgetReadsVouched(t *testing.T) {
	k := &countingKernel{gen: 7, table: &ruleset.Table{Name: "hostwall"}}
	c := &readCache{Kernel: k, untouched: func(since, now uint32) bool { return true }}
	ctx := context.Background()
	c.Read(ctx)
	k.gen = 9 // other tables' transactions
	if _, gen, _ := c.Read(ctx); gen != 9 || k.reads != 1 {
		t.Fatalf("vouched read: generation %d, %d kernel reads; want 9 from the kept table", gen, k.reads)
	}
	c.forget()
	if c.Read(ctx); k.reads != 2 {
		t.Errorf("%d kernel reads after forget, want 2", k.reads)
	}
}
