package engine

import (
	"context"

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

// TopDrops is how many deciders status lists.
const TopDrops = 10

// chainReader is a Kernel that reads the table's chains and rules alone
// (nft.Conn.ReadChains).
type chainReader interface {
	ReadChains(ctx context.Context) ([]*ruleset.Chain, uint32, error)
}

// LiveChains reads the table's chains and rules, with their counters: not
// the sets' elements, when the kernel can leave them out.
func (e *Engine) LiveChains(ctx context.Context) ([]*ruleset.Chain, error) {
	if cr, ok := e.o.Kernel.(chainReader); ok {
		chains, _, err := cr.ReadChains(ctx)
		return chains, err
	}
	t, _, err := e.o.Kernel.Read(ctx)
	if t == nil {
		return nil, err
	}
	return t.Chains, err
}
