package nft

// Apply commits a plan as one netlink batch.
//
// Goals: all of a plan or none of it reaches the kernel; nothing outside
// table inet hostwall is touched; an unchanged chain or set is not rewritten.
//
// Invariants:
//   - One batch is one kernel transaction (trap 3). If any message fails the
//     kernel discards the whole batch and the generation does not move. The
//     library encodes every message; hostwall sends them (encoder.go,
//     commit.go), and a refused batch's error names the refused change.
//   - Order inside the batch: the table; element deletions (and emptying
//     every set that goes); rule deletions;
//     flushing every chain that goes, then deleting them; set deletions; then set and chain creations; element
//     additions; rule additions. Referencing objects go before their
//     referents on the way out and after them on the way in (a chain cannot
//     go while a rule or map element jumps to it, a set cannot go while a
//     rule looks it up).
//   - Set elements are sent in chunks well under the 64 KiB attribute limit,
//     which the library would otherwise truncate silently (trap 2); any
//     number of chunks share the one batch.
//   - Rules are identified by their hash in user data, never by decoded
//     expressions; new rules are positioned by the handle of the kept rule
//     they follow (planner.Insert.After), inserted in reverse order after it.
//   - The batch's begin marker carries the generation the plan was read at,
//     or a later one the events vouch for (NFNL_BATCH_GENID, commit.go): the
//     kernel checks it under its commit lock and refuses the whole batch
//     when another writer committed in between (planner.ErrStale). Apply
//     returns the generation right after the commit, which the engine's
//     verification compares with the one sent + 1.

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/hostwall/hostwall/internal/cores"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// chunkBytes bounds the encoded size of one element message.
var chunkBytes = 32 << 10

// Apply commits p in one batch, provided table inet hostwall is still what
// the kernel held at p.Generation: the kernel is still at that generation,
// or the connection's events show that the transactions since left the
// table alone (commit), and then p.Generation becomes the generation the
// batch was sent at. It returns planner.ErrStale when neither holds, and
// otherwise the generation right after the commit, which the engine
// verifies by (p.Generation + 1 when nobody else committed since).
func (c *Conn) Apply(ctx context.Context, p *planner.Plan) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, notSent(err)
	}
	if p.Empty() {
		return c.Generation()
	}
	b := &batch{table: c.table(), plan: p}
	b.build(p)
	if b.err != nil {
		return 0, notSent(b.err)
	}
	f, err := b.encode()
	if err != nil {
		return 0, notSent(err)
	}
	sent, after, err := c.commit(f, p.Generation, b.rules+b.elems > pauseWatchAbove, b.summary(), b.describer(f))
	if err != nil {
		return 0, wrapPerm(err)
	}
	p.Generation = sent
	return after, nil
}

// A batch is a plan as the steps that queue its messages, in batch order.
// The steps run later, in parts on every core (encode), each part on a
// library connection of its own: encoding rules and elements is most of
// the work of building a large batch.
type batch struct {
	table *nftables.Table
	plan  *planner.Plan
	steps []step
	err   error
	// counts for the error message naming what the batch held.
	chains, rules, sets, elems int
}

// A step queues messages on a library connection. Its weight is a rough
// measure of the encoding work (rules and elements), for splitting.
type step struct {
	weight int
	add    func(nl *nftables.Conn) error
}

func (b *batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *batch) then(weight int, add func(nl *nftables.Conn) error) {
	b.steps = append(b.steps, step{weight: weight, add: add})
}

func (b *batch) summary() string {
	return fmt.Sprintf("a batch of %d chain, %d rule, %d set and %d element changes to table inet %s",
		b.chains, b.rules, b.sets, b.elems, tableName)
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.table}
}

// maxParts bounds the parts of a batch: each is a buffer of its own in the
// one sendmsg, which takes at most UIO_MAXIOV (1024) of them with the two
// markers (a host with 300 threads made ~1,100 parts of 2.2 million
// networks: EMSGSIZE).
const maxParts = 1000

// partWeight is the least work worth a part (and a library connection) of
// its own.
var partWeight = 2000 // a test sets it lower

// encode runs the steps and returns the batch's messages in order, framed.
// Runs of steps go to parts of about equal weight, a few per core, which
// encode side by side, each framed as soon as it is encoded. The library's
// only shared state is the counter AddSet takes set ids from, so every set
// creation is in one step (build).
func (b *batch) encode() (*frames, error) {
	total := 0
	for _, s := range b.steps {
		total += s.weight
	}
	target := max(partWeight, total/(4*runtime.GOMAXPROCS(0)), total/maxParts+1)
	var parts [][]step
	for i, w := 0, 0; i < len(b.steps); i++ {
		if len(parts) == 0 || w >= target {
			parts, w = append(parts, nil), 0
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], b.steps[i])
		w += b.steps[i].weight
	}
	framed := make([]*frames, len(parts))
	errs := make([]error, len(parts))
	cores.Each(len(parts), func(i int) {
		msgs, err := encode(func(nl *nftables.Conn) error {
			for _, s := range parts[i] {
				if err := s.add(nl); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = withGCInterval(msgs)
		}
		framed[i], errs[i] = framesOf(msgs), err
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := &frames{}
	for _, f := range framed {
		out.parts = append(out.parts, f.parts...)
		out.n += f.n
	}
	return out, nil
}

func (b *batch) build(p *planner.Plan) {
	// AddTable is create-if-missing; harmless when the table exists.
	b.then(1, func(nl *nftables.Conn) error { nl.AddTable(b.table); return nil })
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
			s := encodeSet(b.table, ch.Set.Before)
			b.then(1, func(nl *nftables.Conn) error { nl.FlushSet(s); return nil })
		}
	}
	for _, ch := range chains {
		if ch.Action == planner.Update && len(ch.Chain.Deleted) > 0 {
			b.rules += len(ch.Chain.Deleted)
			nc, deleted := b.chain(ch.Name), ch.Chain.Deleted
			b.then(len(deleted), func(nl *nftables.Conn) error {
				for _, r := range deleted {
					if err := nl.DelRule(&nftables.Rule{Table: b.table, Chain: nc, Handle: r.Handle}); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	// Chains that go may jump to each other (tier chains goto the next
	// tier): empty them all first, so no deletion meets a reference from a
	// chain deleted later in the batch.
	var going []*nftables.Chain
	for _, ch := range chains {
		if ch.Action == planner.Delete || ch.Action == planner.Recreate {
			going = append(going, b.chain(ch.Name))
		}
	}
	if len(going) > 0 {
		b.chains += len(going)
		b.then(len(going), func(nl *nftables.Conn) error {
			for _, c := range going {
				nl.FlushChain(c)
			}
			for _, c := range going {
				nl.DelChain(c)
			}
			return nil
		})
	}
	var goneSets, newSets []*nftables.Set
	for _, ch := range sets {
		if ch.Action == planner.Delete || ch.Action == planner.Recreate {
			goneSets = append(goneSets, encodeSet(b.table, ch.Set.Before))
		}
		if ch.Action == planner.Create || ch.Action == planner.Recreate || ch.Set.Reset {
			// Declaring an existing set again updates it: without a
			// timeout, it has none again.
			newSets = append(newSets, encodeSet(b.table, ch.Set.After))
		}
	}
	if len(goneSets)+len(newSets) > 0 {
		b.sets += len(goneSets) + len(newSets)
		// One step: AddSet numbers sets from a counter global to the
		// library, which parts encoding side by side must not share.
		b.then(len(goneSets)+len(newSets), func(nl *nftables.Conn) error {
			for _, s := range goneSets {
				nl.DelSet(s)
			}
			for _, s := range newSets {
				if err := nl.AddSet(s, nil); err != nil {
					return fmt.Errorf("set %q: %w", s.Name, err)
				}
			}
			return nil
		})
	}
	var newChains []*nftables.Chain
	for _, ch := range chains {
		if ch.Action == planner.Create || ch.Action == planner.Recreate {
			newChains = append(newChains, b.encodeChain(ch.Chain.After))
		}
	}
	if len(newChains) > 0 {
		b.chains += len(newChains)
		b.then(len(newChains), func(nl *nftables.Conn) error {
			for _, c := range newChains {
				nl.AddChain(c)
			}
			return nil
		})
	}
	for _, ch := range sets {
		if ch.Action != planner.Delete {
			b.elements(ch.Set.After, ch.Set.Added, true)
		}
	}
	for _, ch := range chains {
		switch ch.Action {
		case planner.Create, planner.Recreate:
			b.addRules(ch.Name, ch.Chain.After.Rules)
		case planner.Update:
			b.inserts(ch.Name, ch.Chain.Inserts)
		}
	}
}

func (b *batch) encodeChain(c *ruleset.Chain) *nftables.Chain {
	nc := b.chain(c.Name)
	if c.Base != nil {
		hooks := map[ruleset.Hook]*nftables.ChainHook{
			ruleset.HookInput: nftables.ChainHookInput, ruleset.HookOutput: nftables.ChainHookOutput, ruleset.HookForward: nftables.ChainHookForward,
			ruleset.HookPrerouting: nftables.ChainHookPrerouting,
		}
		hook, ok := hooks[c.Base.Hook]
		if !ok {
			b.fail(fmt.Errorf("chain %q: no encoding for hook %q", c.Name, c.Base.Hook))
			return nc
		}
		policy := nftables.ChainPolicyAccept
		if c.Base.Policy == ruleset.PolicyDrop {
			policy = nftables.ChainPolicyDrop
		}
		nc.Hooknum, nc.Type, nc.Policy = hook, nftables.ChainType(c.Base.Type), &policy
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Base.Priority))
	}
	return nc
}

// addRules appends rules to a new chain, a step per rulesPerStep.
func (b *batch) addRules(chain string, rules []*ruleset.Rule) {
	b.rules += len(rules)
	for len(rules) > 0 {
		n := min(len(rules), rulesPerStep)
		run := rules[:n]
		b.then(n, func(nl *nftables.Conn) error {
			for _, r := range run {
				if err := b.addRule(nl, chain, r, 0, false); err != nil {
					return err
				}
			}
			return nil
		})
		rules = rules[n:]
	}
}

// rulesPerStep keeps a long chain from being one part's work alone.
const rulesPerStep = 500

// inserts adds new rules to an existing chain. Rules sharing an anchor are
// inserted in reverse order right after it (or at the head of the chain for
// anchor 0), which leaves them in desired order.
func (b *batch) inserts(chain string, ins []planner.Insert) {
	if len(ins) == 0 {
		return
	}
	b.rules += len(ins)
	b.then(len(ins), func(nl *nftables.Conn) error {
		for i := len(ins) - 1; i >= 0; i-- {
			if err := b.addRule(nl, chain, ins[i].Rule, ins[i].After, true); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *batch) addRule(nl *nftables.Conn, chain string, r *ruleset.Rule, after uint64, positioned bool) error {
	exprs, err := encodeRule(r)
	if err != nil {
		return fmt.Errorf("encoding rule %q of chain %q: %w", r, chain, err)
	}
	nr := &nftables.Rule{Table: b.table, Chain: b.chain(chain), Exprs: exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment(chain))}
	switch {
	case !positioned:
		nl.AddRule(nr)
	case after == 0:
		nl.InsertRule(nr) // at the head of the chain
	default:
		nr.Position = after
		nl.AddRule(nr) // right after the rule with handle `after`
	}
	return nil
}

// elements adds or deletes elements in messages under the attribute limit
// (trap 2), a step each. An interval's start and end go in one message.
func (b *batch) elements(s *ruleset.Set, elems []ruleset.Element, add bool) {
	if len(elems) == 0 {
		return
	}
	ns := encodeSet(b.table, s)
	b.elems += len(elems)
	start, size := 0, 0
	chunk := func(end int) {
		run := elems[start:end]
		b.then(len(run), func(nl *nftables.Conn) error {
			kes := encodeElements(s, run)
			var err error
			if add {
				err = nl.SetAddElements(ns, kes)
			} else {
				err = nl.SetDeleteElements(ns, kes)
			}
			if err != nil {
				return fmt.Errorf("set %q: %w", s.Name, err)
			}
			return nil
		})
		start, size = end, 0
	}
	for i, e := range elems {
		n := elementSize(len(e.From), e.Verdict)
		if s.Interval {
			n += elementSize(len(e.To), nil)
		}
		if size+n > chunkBytes && i > start {
			chunk(i)
		}
		size += n
	}
	chunk(len(elems))
}

// elementSize is an upper bound of one kernel element's encoded attribute
// size.
func elementSize(key int, verdict *ruleset.Verdict) int {
	n := 4 + 4 + 4 + (key+3)&^3 + 8 // element, key nest, value, flags
	if verdict != nil {
		n += 4 + 4 + 8 + 4 + (len(verdict.Chain)+4)&^3
	}
	return n + 8
}
