// Package nfttest provides Fake, an in-memory stand-in for nft.Conn with the
// same semantics: a generation that moves on every commit, all-or-nothing
// applies (work on a copy, swap on success), the kernel's refusals (ENOENT
// for missing objects, EBUSY for referenced ones, EEXIST for overlapping
// intervals), and injected failures.
package nfttest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// Fake is an in-memory table inet hostwall.
type Fake struct {
	mu   sync.Mutex
	live *ruleset.Table // nil: no table
	gen  uint32
	next uint64 // next rule handle

	// FailApplies makes the next n applies fail without changing anything.
	FailApplies int
	// BeforeApply, when set, runs at the start of every Apply (with the lock
	// held), e.g. to simulate another writer with Bump.
	BeforeApply func()
	// Applied records every plan passed to Apply.
	Applied []*planner.Plan
}

// New returns a Fake with no table, at generation 1.
func New() *Fake { return &Fake{gen: 1, next: 1} }

// Read is part of engine.Kernel.
func (f *Fake) Read(ctx context.Context) (*ruleset.Table, uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live.Clone(), f.gen, ctx.Err()
}

// Bump simulates a commit by another process. Call it with the lock held
// (from BeforeApply) or not at all concurrently with Apply.
func (f *Fake) Bump() { f.gen++ }

// SetLive replaces the live table as another process would (drift); rules
// keep the handles and stored IDs they carry, new ones get fresh handles.
func (f *Fake) SetLive(t *ruleset.Table) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = t.Clone()
	if f.live != nil {
		for _, c := range f.live.Chains {
			for _, r := range c.Rules {
				if r.Handle == 0 {
					r.Handle = f.next
					f.next++
				}
			}
		}
	}
	f.gen++
}

var errInjected = fmt.Errorf("nfttest: injected failure")

// Generation is part of engine.Kernel.
func (f *Fake) Generation() (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, nil
}

// DeleteTable is part of engine.Kernel.
func (f *Fake) DeleteTable(ctx context.Context, gen uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if gen != f.gen {
		return fmt.Errorf("%w: planned at generation %d, fake is at %d", planner.ErrStale, gen, f.gen)
	}
	f.live, f.gen = nil, f.gen+1
	return nil
}

// Apply is part of engine.Kernel.
func (f *Fake) Apply(ctx context.Context, p *planner.Plan) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.apply(ctx, p, p.Generation)
	if err != nil {
		return 0, err
	}
	return f.gen, nil
}

func (f *Fake) apply(ctx context.Context, p *planner.Plan, gen uint32) error {
	f.Applied = append(f.Applied, p)
	if f.BeforeApply != nil {
		f.BeforeApply()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if gen != f.gen {
		return fmt.Errorf("%w: planned at generation %d, fake is at %d", planner.ErrStale, gen, f.gen)
	}
	if f.FailApplies > 0 {
		f.FailApplies--
		return fmt.Errorf("%w (%w)", errInjected, planner.ErrNotCommitted)
	}
	if p.Empty() {
		return nil
	}
	next := f.live.Clone()
	if next == nil {
		next = ruleset.NewTable()
	}
	handle := f.next
	if err := apply(next, p, &handle); err != nil {
		return fmt.Errorf("%w (%w)", err, planner.ErrNotCommitted) // f.live untouched: all or nothing, like a netlink batch
	}
	next.Sort()
	f.live, f.next, f.gen = next, handle, f.gen+1
	return nil
}

// apply performs the plan in the order nft's batch does.
func apply(t *ruleset.Table, p *planner.Plan, handle *uint64) error {
	var sets, chains []planner.Change
	for _, c := range p.Changes {
		if c.Set != nil {
			sets = append(sets, c)
		} else {
			chains = append(chains, c)
		}
	}
	steps := []func() error{
		func() error {
			return each(sets, planner.Update, func(c planner.Change) error { return delElements(t, c) })
		},
		func() error {
			return each(sets, planner.Delete, func(c planner.Change) error { return flushSet(t, c.Name) })
		},
		func() error {
			return each(sets, planner.Recreate, func(c planner.Change) error { return flushSet(t, c.Name) })
		},
		func() error {
			return each(chains, planner.Update, func(c planner.Change) error { return delRules(t, c) })
		},
		func() error {
			return each(chains, planner.Delete, func(c planner.Change) error { return flushChain(t, c.Name) })
		},
		func() error {
			return each(chains, planner.Recreate, func(c planner.Change) error { return flushChain(t, c.Name) })
		},
		func() error {
			return each(chains, planner.Delete, func(c planner.Change) error { return delChain(t, c.Name) })
		},
		func() error {
			return each(chains, planner.Recreate, func(c planner.Change) error { return delChain(t, c.Name) })
		},
		func() error {
			return each(sets, planner.Delete, func(c planner.Change) error { return delSet(t, c.Name) })
		},
		func() error {
			return each(sets, planner.Recreate, func(c planner.Change) error { return delSet(t, c.Name) })
		},
		func() error { return eachCreate(sets, func(c planner.Change) error { return addSet(t, c.Set.After) }) },
		func() error {
			return eachCreate(chains, func(c planner.Change) error { return addChain(t, c.Chain.After) })
		},
		func() error {
			for _, c := range sets {
				if c.Action != planner.Delete {
					if err := addElements(t, c.Name, c.Set.Added); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func() error {
			for _, c := range chains {
				if err := addRules(t, c, handle); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func each(cs []planner.Change, a planner.Action, f func(planner.Change) error) error {
	for _, c := range cs {
		if c.Action == a {
			if err := f(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func eachCreate(cs []planner.Change, f func(planner.Change) error) error {
	for _, c := range cs {
		if c.Action == planner.Create || c.Action == planner.Recreate {
			if err := f(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func errf(errno unix.Errno, format string, args ...any) error {
	return fmt.Errorf("nfttest: "+format+": %w", append(args, errno)...)
}

func delElements(t *ruleset.Table, c planner.Change) error {
	s := t.Set(c.Name)
	if s == nil {
		return errf(unix.ENOENT, "set %q", c.Name)
	}
	for _, e := range c.Set.Removed {
		i := slices.IndexFunc(s.Elements, func(x ruleset.Element) bool { return x.Key() == e.Key() })
		if i < 0 {
			return errf(unix.ENOENT, "element %s of set %q", s.FormatElement(e), c.Name)
		}
		s.Elements = slices.Delete(s.Elements, i, i+1)
	}
	return nil
}

func addElements(t *ruleset.Table, name string, elems []ruleset.Element) error {
	s := t.Set(name)
	if s == nil {
		return errf(unix.ENOENT, "set %q", name)
	}
	for _, e := range elems {
		if i := slices.IndexFunc(s.Elements, func(x ruleset.Element) bool { return x.Key() == e.Key() }); i >= 0 {
			continue // adding an existing element is not an error without NLM_F_EXCL
		}
		if s.Interval {
			for _, x := range s.Elements {
				if e.From <= x.To && x.From <= e.To {
					return errf(unix.EEXIST, "interval %s overlaps %s in set %q", s.FormatElement(e), s.FormatElement(x), name)
				}
			}
		}
		if e.Verdict != nil && e.Verdict.Chain != "" && t.Chain(e.Verdict.Chain) == nil {
			return errf(unix.ENOENT, "chain %q named by map %q", e.Verdict.Chain, name)
		}
		s.Elements = append(s.Elements, e)
	}
	slices.SortFunc(s.Elements, func(a, b ruleset.Element) int {
		if a.From < b.From {
			return -1
		}
		if a.From > b.From {
			return 1
		}
		return 0
	})
	return nil
}

func delRules(t *ruleset.Table, c planner.Change) error {
	ch := t.Chain(c.Name)
	if ch == nil {
		return errf(unix.ENOENT, "chain %q", c.Name)
	}
	for _, r := range c.Chain.Deleted {
		i := slices.IndexFunc(ch.Rules, func(x *ruleset.Rule) bool { return x.Handle == r.Handle })
		if i < 0 {
			return errf(unix.ENOENT, "rule handle %d in chain %q", r.Handle, c.Name)
		}
		ch.Rules = slices.Delete(ch.Rules, i, i+1)
	}
	return nil
}

// referenced reports whether a rule or map element uses the chain or set.
func referenced(t *ruleset.Table, name string, chain bool) bool {
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if chain && (r.Verdict.Kind == ruleset.VerdictJump || r.Verdict.Kind == ruleset.VerdictGoto) && r.Verdict.Chain == name {
				return true
			}
			if !chain && r.Verdict.Map == name {
				return true
			}
			for _, m := range r.Matches {
				if !chain && setOf(m) == name {
					return true
				}
			}
		}
	}
	if chain {
		for _, s := range t.Sets {
			for _, e := range s.Elements {
				if e.Verdict != nil && e.Verdict.Chain == name {
					return true
				}
			}
		}
	}
	return false
}

func setOf(m ruleset.Match) string {
	switch m := m.(type) {
	case ruleset.Addr:
		return m.Set
	case ruleset.Port:
		return m.Set
	}
	return ""
}

func flushSet(t *ruleset.Table, name string) error {
	s := t.Set(name)
	if s == nil {
		return errf(unix.ENOENT, "set %q", name)
	}
	s.Elements = nil
	return nil
}

func flushChain(t *ruleset.Table, name string) error {
	c := t.Chain(name)
	if c == nil {
		return errf(unix.ENOENT, "chain %q", name)
	}
	c.Rules = nil
	return nil
}

func delChain(t *ruleset.Table, name string) error {
	i := slices.IndexFunc(t.Chains, func(c *ruleset.Chain) bool { return c.Name == name })
	if i < 0 {
		return errf(unix.ENOENT, "chain %q", name)
	}
	rest := t.Clone()
	rest.Chains = slices.Delete(rest.Chains, i, i+1)
	if referenced(rest, name, true) {
		return errf(unix.EBUSY, "chain %q is still jumped to", name)
	}
	t.Chains = slices.Delete(t.Chains, i, i+1)
	return nil
}

func delSet(t *ruleset.Table, name string) error {
	i := slices.IndexFunc(t.Sets, func(s *ruleset.Set) bool { return s.Name == name })
	if i < 0 {
		return errf(unix.ENOENT, "set %q", name)
	}
	if referenced(t, name, false) {
		return errf(unix.EBUSY, "set %q is still used by a rule", name)
	}
	t.Sets = slices.Delete(t.Sets, i, i+1)
	return nil
}

func addSet(t *ruleset.Table, s *ruleset.Set) error {
	if t.Set(s.Name) != nil {
		return nil
	}
	c := s.Clone()
	c.Elements, c.Comment, c.Owner = nil, "", ""
	t.Sets = append(t.Sets, c)
	return nil
}

func addChain(t *ruleset.Table, c *ruleset.Chain) error {
	if t.Chain(c.Name) != nil {
		return nil
	}
	n := c.Clone()
	n.Rules, n.Comment, n.Owner = nil, "", ""
	t.Chains = append(t.Chains, n)
	return nil
}

// addRules adds the rules of a created chain in order, or an update's
// inserts: each after its anchor, inserted in reverse, as nft does.
func addRules(t *ruleset.Table, c planner.Change, handle *uint64) error {
	if c.Action == planner.Delete {
		return nil
	}
	ch := t.Chain(c.Name)
	if ch == nil {
		return errf(unix.ENOENT, "chain %q", c.Name)
	}
	place := func(r *ruleset.Rule, pos int) error {
		if err := checkRefs(t, r); err != nil {
			return err
		}
		n := r.Clone()
		n.Handle, n.StoredID = *handle, r.ID(c.Name)
		*handle++
		ch.Rules = slices.Insert(ch.Rules, pos, n)
		return nil
	}
	switch c.Action {
	case planner.Create, planner.Recreate:
		for _, r := range c.Chain.After.Rules {
			if err := place(r, len(ch.Rules)); err != nil {
				return err
			}
		}
	case planner.Update:
		for i := len(c.Chain.Inserts) - 1; i >= 0; i-- {
			in := c.Chain.Inserts[i]
			pos := 0
			if in.After != 0 {
				j := slices.IndexFunc(ch.Rules, func(x *ruleset.Rule) bool { return x.Handle == in.After })
				if j < 0 {
					return errf(unix.ENOENT, "rule handle %d to insert after in chain %q", in.After, c.Name)
				}
				pos = j + 1
			}
			if err := place(in.Rule, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRefs(t *ruleset.Table, r *ruleset.Rule) error {
	for _, m := range r.Matches {
		if s := setOf(m); s != "" && t.Set(s) == nil {
			return errf(unix.ENOENT, "set %q", s)
		}
	}
	if v := r.Verdict; (v.Kind == ruleset.VerdictJump || v.Kind == ruleset.VerdictGoto) && t.Chain(v.Chain) == nil {
		return errf(unix.ENOENT, "chain %q", v.Chain)
	}
	if v := r.Verdict; v.Kind == ruleset.VerdictVMap && t.Set(v.Map) == nil {
		return errf(unix.ENOENT, "map %q", v.Map)
	}
	return nil
}

// Live returns a copy of the live table (nil when there is none).
func (f *Fake) Live() *ruleset.Table {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live.Clone()
}

// Dump renders the live table in nft syntax.
func (f *Fake) Dump() string {
	if t := f.Live(); t != nil {
		return t.String()
	}
	return ""
}
