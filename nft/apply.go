package nft

// Apply commits a plan as one netlink batch.
//
// Goals: all of a plan or none of it reaches the kernel; nothing outside
// table inet hostwall is touched; an unchanged chain or set is not rewritten.
//
// Invariants:
//   - One Flush is one kernel transaction (trap 3). If any message fails the
//     kernel discards the whole batch and the generation does not move.
//   - Order inside the batch: the table; element deletions (and emptying
//     every set that goes); rule deletions;
//     flushing every chain that goes, then deleting them; set deletions; then set and chain creations; element
//     additions; rule additions. Referencing objects go before their
//     referents on the way out and after them on the way in (a chain cannot
//     go while a rule or map element jumps to it, a set cannot go while a
//     rule looks it up).
//   - Set elements are sent in chunks well under the 64 KiB attribute limit,
//     which the library would otherwise truncate silently (trap 2); any
//     number of chunks share the one Flush.
//   - Rules are identified by their hash in user data, never by decoded
//     expressions; new rules are positioned by the handle of the kept rule
//     they follow (planner.Insert.After), inserted in reverse order after it.
//   - The generation the plan was read at is checked right before the batch
//     is sent. The library cannot put it into the batch itself (trap 8), so a
//     writer that commits in between is caught by verification: Apply
//     returns the generation after the commit, and agent.Apply reads back
//     unless it is exactly one past gen.

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// trustGenerationOnENOBUFS makes Apply decide by the generation whether a
// batch whose acknowledgements overflowed was committed (trap 1). Tests turn
// it off to show the trap.
var trustGenerationOnENOBUFS = true

// chunkBytes bounds the encoded size of one element message.
var chunkBytes = 32 << 10

// Apply commits p in one batch, provided the kernel is still at generation
// gen. It returns ErrGenerationChanged when it is not, and otherwise the
// generation right after the commit (agent.Apply verifies by it).
func (c *Conn) Apply(ctx context.Context, p *planner.Plan, gen uint32) (uint32, error) {
	if err := c.apply(ctx, p, gen); err != nil {
		return 0, err
	}
	return c.Generation()
}

func (c *Conn) apply(ctx context.Context, p *planner.Plan, gen uint32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Empty() {
		return nil
	}
	// The library queues messages in its Conn and offers no way to drop
	// them; a batch abandoned before Flush would ride along with the next
	// one. So every batch is built on a connection of its own, closed
	// unflushed on any early return.
	nl, err := c.dial()
	if err != nil {
		return err
	}
	defer nl.CloseLasting()
	b := &batch{conn: nl, table: c.table()}
	b.build(p)
	if b.err != nil {
		return b.err
	}
	if err := c.stillAt(gen); err != nil {
		return err
	}
	if b.rules+b.elems > pauseWatchAbove {
		defer c.pauseWatch()()
	}
	if err := nl.Flush(); err != nil {
		if errors.Is(err, syscall.ENOBUFS) && trustGenerationOnENOBUFS {
			// The kernel may have committed and only our acknowledgements
			// were lost (trap 1). The generation tells which.
			if after, gerr := c.Generation(); gerr == nil && after != gen {
				return nil
			}
		}
		return fmt.Errorf("committing %s: %w", b.summary(), wrapPerm(err))
	}
	return nil
}

// ErrGenerationChanged is returned (wrapped) when another process changed the
// ruleset between plan and apply.
var ErrGenerationChanged = errors.New("the nftables ruleset changed since it was read")

// IsGenerationChanged reports whether err means the plan is stale.
func IsGenerationChanged(err error) bool { return errors.Is(err, ErrGenerationChanged) }

// stillAt checks, right before a batch is sent, that the kernel is still at
// the generation the plan was made at (trap 8).
func (c *Conn) stillAt(gen uint32) error {
	now, err := c.Generation()
	if err != nil {
		return err
	}
	if now != gen {
		return fmt.Errorf("%w: planned at generation %d, kernel is at %d", ErrGenerationChanged, gen, now)
	}
	return nil
}

type batch struct {
	conn  *nftables.Conn
	table *nftables.Table
	err   error
	// counts for the error message naming what the batch held.
	chains, rules, sets, elems int
}

func (b *batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *batch) summary() string {
	return fmt.Sprintf("a batch of %d chain, %d rule, %d set and %d element changes to table inet %s",
		b.chains, b.rules, b.sets, b.elems, tableName)
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.table}
}

func (b *batch) build(p *planner.Plan) {
	// AddTable is create-if-missing; harmless when the table exists.
	b.conn.AddTable(b.table)
	var sets, chains []planner.Change
	for _, ch := range p.Changes {
		if ch.Set != nil {
			sets = append(sets, ch)
		} else if ch.Chain != nil {
			chains = append(chains, ch)
		}
	}
	for _, ch := range sets {
		switch ch.Action {
		case planner.Update:
			b.elements(ch.Set.Before, ch.Set.Removed, false)
		case planner.Delete, planner.Recreate:
			// A map that goes may still jump to chains that go before it.
			b.conn.FlushSet(encodeSet(b.table, ch.Set.Before))
		}
	}
	for _, ch := range chains {
		if ch.Action == planner.Update {
			for _, r := range ch.Chain.Deleted {
				b.rules++
				b.fail(b.conn.DelRule(&nftables.Rule{Table: b.table, Chain: b.chain(ch.Name), Handle: r.Handle}))
			}
		}
	}
	// Chains that go may jump to each other (tier chains goto the next
	// tier): empty them all first, so no deletion meets a reference from a
	// chain deleted later in the batch.
	for _, ch := range chains {
		if ch.Action == planner.Delete || ch.Action == planner.Recreate {
			b.conn.FlushChain(b.chain(ch.Name))
		}
	}
	for _, ch := range chains {
		if ch.Action == planner.Delete || ch.Action == planner.Recreate {
			b.chains++
			b.conn.DelChain(b.chain(ch.Name))
		}
	}
	for _, ch := range sets {
		if ch.Action == planner.Delete || ch.Action == planner.Recreate {
			b.sets++
			b.conn.DelSet(encodeSet(b.table, ch.Set.Before))
		}
	}
	for _, ch := range sets {
		if ch.Action == planner.Create || ch.Action == planner.Recreate {
			b.sets++
			b.fail(b.conn.AddSet(encodeSet(b.table, ch.Set.After), nil))
		}
	}
	for _, ch := range chains {
		if ch.Action == planner.Create || ch.Action == planner.Recreate {
			b.chains++
			b.addChain(ch.Chain.After)
		}
	}
	for _, ch := range sets {
		if ch.Action != planner.Delete {
			b.elements(ch.Set.After, ch.Set.Added, true)
		}
	}
	for _, ch := range chains {
		switch ch.Action {
		case planner.Create, planner.Recreate:
			for _, r := range ch.Chain.After.Rules {
				b.addRule(ch.Name, r, 0, false)
			}
		case planner.Update:
			b.inserts(ch.Name, ch.Chain.Inserts)
		}
	}
}

func (b *batch) addChain(c *ruleset.Chain) {
	nc := b.chain(c.Name)
	if c.Base != nil {
		hooks := map[ruleset.Hook]*nftables.ChainHook{
			ruleset.HookInput: nftables.ChainHookInput, ruleset.HookOutput: nftables.ChainHookOutput, ruleset.HookForward: nftables.ChainHookForward,
			ruleset.HookPrerouting: nftables.ChainHookPrerouting,
		}
		hook, ok := hooks[c.Base.Hook]
		if !ok {
			b.fail(fmt.Errorf("chain %q: no encoding for hook %q", c.Name, c.Base.Hook))
			return
		}
		policy := nftables.ChainPolicyAccept
		if c.Base.Policy == ruleset.PolicyDrop {
			policy = nftables.ChainPolicyDrop
		}
		nc.Hooknum, nc.Type, nc.Policy = hook, nftables.ChainType(c.Base.Type), &policy
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Base.Priority))
	}
	b.conn.AddChain(nc)
}

// inserts adds new rules to an existing chain. Rules sharing an anchor are
// inserted in reverse order right after it (or at the head of the chain for
// anchor 0), which leaves them in desired order.
func (b *batch) inserts(chain string, ins []planner.Insert) {
	for i := len(ins) - 1; i >= 0; i-- {
		b.addRule(chain, ins[i].Rule, ins[i].After, true)
	}
}

func (b *batch) addRule(chain string, r *ruleset.Rule, after uint64, positioned bool) {
	if b.err != nil {
		return
	}
	exprs, err := encodeRule(r)
	if err != nil {
		b.fail(fmt.Errorf("encoding rule %q of chain %q: %w", r, chain, err))
		return
	}
	b.rules++
	nr := &nftables.Rule{Table: b.table, Chain: b.chain(chain), Exprs: exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment(chain))}
	switch {
	case !positioned:
		b.conn.AddRule(nr)
	case after == 0:
		b.conn.InsertRule(nr) // at the head of the chain
	default:
		nr.Position = after
		b.conn.AddRule(nr) // right after the rule with handle `after`
	}
}

// elements adds or deletes elements in chunks under the attribute limit.
func (b *batch) elements(s *ruleset.Set, elems []ruleset.Element, add bool) {
	if len(elems) == 0 || b.err != nil {
		return
	}
	ns := encodeSet(b.table, s)
	kes := encodeElements(s, elems)
	b.elems += len(elems)
	start, size := 0, 0
	flush := func(end int) {
		if start == end {
			return
		}
		var err error
		if add {
			err = b.conn.SetAddElements(ns, kes[start:end])
		} else {
			err = b.conn.SetDeleteElements(ns, kes[start:end])
		}
		if err != nil {
			b.fail(fmt.Errorf("set %q: %w", s.Name, err))
		}
		start, size = end, 0
	}
	for i, ke := range kes {
		n := elementSize(ke.Key, ke.VerdictData != nil, verdictChain(ke))
		// Never split an interval between its start and end elements.
		if size+n > chunkBytes && !ke.IntervalEnd {
			flush(i)
		}
		size += n
	}
	flush(len(kes))
}

// elementSize is an upper bound of one element's encoded attribute size.
func elementSize(key []byte, verdict bool, chain string) int {
	n := 4 + 4 + 4 + (len(key)+3)&^3 + 8 // element, key nest, value, flags
	if verdict {
		n += 4 + 4 + 8 + 4 + (len(chain)+4)&^3
	}
	return n + 8
}

func verdictChain(ke nftables.SetElement) string {
	if ke.VerdictData == nil {
		return ""
	}
	return ke.VerdictData.Chain
}
