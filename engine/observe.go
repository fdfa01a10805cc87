package engine

import (
	"context"
	"slices"
	"time"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// Index indexes the generation in force (observe.Index): its table as
// the change that made it current kept it, or compiled again from its
// files. An empty index when no generation is recorded.
func (e *Engine) Index() (*observe.Index, error) {
	cur, err := e.store.Current()
	if err != nil {
		return nil, err
	}
	if x := e.index; x != nil && x.Generation == cur {
		return x, nil
	}
	var tbl *ruleset.Table
	switch d := e.desired; {
	case cur == 0:
	case d != nil && d.n == cur:
		tbl = d.table
	default:
		if _, tbl, err = e.generationTable(e.store, cur, true); err != nil {
			return nil, err
		}
	}
	e.index = observe.NewIndex(cur, tbl)
	return e.index, nil
}

// DropCount is how many packets one decider dropped.
type DropCount struct {
	Decided ruleset.Origin `json:"decided"`
	observe.Count
}

// topDrops is how many deciders status lists.
const topDrops = 10

// MarkDrops starts counting drops for status from now (the agent at its
// start): TopDrops then counts from here, not from when the kernel's
// rules were made.
func (e *Engine) MarkDrops(ctx context.Context) error {
	x, err := e.Index()
	if err != nil {
		return err
	}
	live, _, err := e.o.Kernel.Read(ctx)
	if err != nil {
		return err
	}
	var chains []*ruleset.Chain
	if live != nil {
		chains = live.Chains
	}
	e.drops.base = e.drops.totals.Update(x, chains)
	e.drops.since = time.Now()
	return nil
}

// fillDrops sets s.TopDrops from the live table and the index of the
// generation in force.
func (e *Engine) fillDrops(s *Status, x *observe.Index, live *ruleset.Table) {
	var counts map[ruleset.Origin]observe.Count
	if e.drops.base != nil {
		counts = e.drops.totals.Update(x, live.Chains)
		for o, c := range counts {
			if b, ok := e.drops.base[o]; ok && b.Packets <= c.Packets && b.Bytes <= c.Bytes {
				counts[o] = observe.Count{Packets: c.Packets - b.Packets, Bytes: c.Bytes - b.Bytes}
			}
		}
		s.DropsSince = e.drops.since
	} else {
		counts = x.Counts(live.Chains)
	}
	for o, c := range counts {
		if c.Packets > 0 && drops(o) {
			s.TopDrops = append(s.TopDrops, DropCount{Decided: o, Count: c})
		}
	}
	slices.SortFunc(s.TopDrops, func(a, b DropCount) int {
		if a.Packets != b.Packets {
			if a.Packets > b.Packets {
				return -1
			}
			return 1
		}
		return ruleset.CompareOrigins(&a.Decided, &b.Decided)
	})
	if len(s.TopDrops) > topDrops {
		s.TopDrops = s.TopDrops[:topDrops]
	}
}

// drops reports whether what o enforces drops packets.
func drops(o ruleset.Origin) bool {
	switch o.Kind {
	case ruleset.OriginDefaultDeny:
		return true
	case ruleset.OriginPolicyRule, ruleset.OriginEndOfTier, ruleset.OriginWorkload:
		return o.Action == "deny"
	}
	return false
}
