package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/nft/nfttest"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// witnessed is a fake kernel that counts whole-table reads and lets a test
// act right after each commit (afterApply, with the fake unlocked), as
// another writer would.
type witnessed struct {
	*nfttest.Fake
	reads      int
	afterApply func()
}

func (w *witnessed) Read(ctx context.Context) (*ruleset.Table, uint32, error) {
	w.reads++
	return w.Fake.Read(ctx)
}

func (w *witnessed) Apply(ctx context.Context, p *planner.Plan) (uint32, error) {
	after, err := w.Fake.Apply(ctx, p)
	if err != nil || w.afterApply == nil {
		return after, err
	}
	w.afterApply()
	_, after, err = w.Fake.Read(ctx) // the generation now, not counted as a verification
	return after, err
}

func table(names ...string) *ruleset.Table {
	t := ruleset.NewTable()
	for _, n := range names {
		t.Chains = append(t.Chains, &ruleset.Chain{Name: n, Rules: []*ruleset.Rule{{Verdict: ruleset.Accept()}}})
	}
	t.Sort()
	return t
}

// TestApplyVerifiedByGeneration: a commit that moves the generation by
// exactly one is verified without reading the table back; a writer that
// commits after ours makes Apply read back, and a read-back that finds
// something else fails with ErrNotConverged; ByReadBack always reads.
func TestApplyVerifiedByGeneration(t *testing.T) {
	ctx := context.Background()
	apply := func(k *witnessed, desired *ruleset.Table, v engine.Verification) (uint32, error) {
		t.Helper()
		p, err := engine.PlanTable(ctx, k, desired)
		if err != nil {
			t.Fatal(err)
		}
		k.reads = 0
		_, gen, err := engine.ApplyTable(ctx, k, desired, p, v)
		return gen, err
	}
	k := &witnessed{Fake: nfttest.New()}
	desired := table("a", "b")
	gen, err := apply(k, desired, engine.ByGeneration)
	if err != nil || k.reads != 0 {
		t.Fatalf("undisturbed apply: err %v, %d reads back; want none", err, k.reads)
	}
	if _, now, _ := k.Fake.Read(ctx); gen != now {
		t.Errorf("verified at generation %d, kernel is at %d", gen, now)
	}

	// Another writer commits right after us without changing our table:
	// the generation proves nothing, and the read-back finds desired.
	k.afterApply = k.Bump
	if _, err := apply(k, table("a"), engine.ByGeneration); err != nil || k.reads != 1 {
		t.Fatalf("apply followed by another commit: err %v, %d reads back; want 1", err, k.reads)
	}
	// One that changes the table is caught.
	k.afterApply = func() { k.SetLive(table("theirs")) }
	if _, err := apply(k, table("a", "b"), engine.ByGeneration); !errors.Is(err, engine.ErrNotConverged) || k.reads != 1 {
		t.Errorf("a table changed right after our commit: err %v after %d reads back; want ErrNotConverged after 1", err, k.reads)
	}
	k.afterApply = nil
	if _, err := apply(k, table("c"), engine.ByReadBack); err != nil || k.reads != 1 {
		t.Fatalf("ByReadBack: err %v, %d reads back; want 1", err, k.reads)
	}
}
