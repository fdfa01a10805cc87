package engine

import (
	"context"
	"slices"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// readCache is the Kernel a long-running engine (Options.Memo: the agent)
// plans with. It keeps the table of its last read and the ruleset
// generation of that read; while the kernel's generation has not moved it
// returns that table again instead of reading a large table again (or
// copying it: callers share it and do not change it, as Kernel.Read asks;
// docs/performance.md has the costs). Every nftables transaction in the
// namespace, by anyone, moves the generation — so the first read after an
// apply, the verification, is always a real one. Only counters, which
// change without a transaction, are stale in the kept table: plans ignore
// them, and status reads the kernel itself.
type readCache struct {
	Kernel
	table *ruleset.Table
	gen   uint32
	valid bool
	// untouched tells whether transactions between two generations left
	// the table alone (Engine.untouched; nil: never).
	untouched func(since, now uint32) bool
}

// Read returns the kept table while the kernel's generation has not moved,
// or moved only by transactions that did not touch the table (other
// programs changing their own tables); it reads the kernel otherwise.
func (c *readCache) Read(ctx context.Context) (*ruleset.Table, uint32, error) {
	return c.ReadLike(ctx, nil)
}

// ReadLike is Read, a read of the kernel sharing the elements of the sets
// it holds alike with like (readLike).
func (c *readCache) ReadLike(ctx context.Context, like *ruleset.Table) (*ruleset.Table, uint32, error) {
	if c.valid {
		g, err := c.Kernel.Generation()
		switch {
		case err != nil:
		case g == c.gen:
			return c.table, g, nil
		case c.untouched != nil && c.untouched(c.gen, g):
			c.gen = g
			return c.table, g, nil
		case c.follow(ctx, g):
			return c.table, g, nil
		}
	}
	t, g, err := readLike(ctx, c.Kernel, like)
	if err != nil {
		c.valid = false
		return nil, 0, err
	}
	c.table, c.gen, c.valid = t, g, true
	return t, g, nil
}

// follower is a Kernel that can tell, from the kernel's events, what
// transactions did to the table's set elements and whether they changed
// its chains, and read the chains alone (nft.Conn).
type follower interface {
	Changes(ctx context.Context, since, now uint32, set func(name string) *ruleset.Set) (elems []ruleset.ElementChange, chains, ok bool)
	ReadChains(ctx context.Context) ([]*ruleset.Chain, uint32, error)
}

// follow brings the kept table to generation g when the transactions since
// its generation only added or removed elements of its sets — a blocklist
// edited by hand, another hostwall's incremental apply — and changed
// chains and rules: the element changes are replayed on it and, if chains
// or rules changed, they alone are read again, instead of reading a large
// table's sets again. The result is derived, which the periodic
// verification reads again.
func (c *readCache) follow(ctx context.Context, g uint32) bool {
	f, ok := c.Kernel.(follower)
	if !ok || c.table == nil {
		return false
	}
	changes, chains, ok := f.Changes(ctx, c.gen, g, c.table.Set)
	if !ok {
		return false
	}
	t := *c.table // a copy: callers share the kept table
	t.Sets = slices.Clone(t.Sets)
	for _, ch := range changes {
		i := slices.IndexFunc(t.Sets, func(s *ruleset.Set) bool { return s.Name == ch.Set })
		if i < 0 {
			return false
		}
		s, ok := t.Sets[i].WithChange(ch)
		if !ok {
			return false
		}
		t.Sets[i] = s
	}
	if chains {
		read, at, err := f.ReadChains(ctx)
		if err != nil {
			return false
		}
		// What came after g, while the chains were read, must have been
		// chains and rules alone: the replayed sets are g's.
		if at != g {
			more, _, ok := f.Changes(ctx, g, at, t.Set)
			if !ok || len(more) > 0 {
				return false
			}
			g = at
		}
		t.Chains = read
	}
	c.table, c.gen = &t, g
	return true
}

// forget makes the next Read read the kernel: the agent's periodic
// verification checks against the kernel itself what its commits of set
// elements were taken to do (a derived table) and what the events were
// taken to show (a table vouched for as untouched).
func (c *readCache) forget() {
	c.valid = false
}

// keepApplied notes that p, planned against the kept table and changing set
// elements alone, was committed by itself: the kernel, now at gen, holds
// the kept table with p's sets as they are after it — each set's elements
// the desired ones, which the plan's additions and removals made of the
// live ones. The kept table becomes that, at gen, and the next plan starts
// from it without reading the sets back.
// A rule change keeps its handles only in the kernel, so any other plan,
// or one not planned against the kept table, leaves the next Read to read.
// It reports whether the kept table is the kernel's at gen.
func (c *readCache) keepApplied(p *planner.Plan, gen uint32) bool {
	if c.readAt(gen) {
		return true // read since the commit (Apply verified by reading): the kernel's own
	}
	if !c.valid || c.table == nil || c.gen != p.Generation || p.Empty() || !p.ElementsOnly() {
		c.valid = false
		return false
	}
	t := *c.table // a copy: callers share the kept table
	t.Sets = slices.Clone(t.Sets)
	for _, ch := range p.Changes {
		i := slices.IndexFunc(t.Sets, func(s *ruleset.Set) bool { return s.Name == ch.Name })
		if i < 0 {
			c.valid = false
			return false
		}
		s := *t.Sets[i]
		s.Elements = ch.Set.After.Elements
		t.Sets[i] = &s
	}
	c.table, c.gen = &t, gen
	return true
}

// readAt reports whether the kept table is a read at generation gen.
func (c *readCache) readAt(gen uint32) bool { return c.valid && c.gen == gen }
