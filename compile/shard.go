package compile

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/ruleset"
)

// shard deals each large address set of the table into slot sets and
// sends the rules that looked it up through a dispatch map
// (ruleset.Sharding; docs/kernel.md, "Sharded sets"). A rule
//
//	M ip saddr @S R counter drop
//
// (M and R the matches before and after the lookup) becomes
//
//	M ip saddr vmap @S/<h>
//
// where map S/<h> sends each range of addresses to chain S/<h>/<k>, which
// holds the rule's rest looking up slot k:
//
//	ip saddr @S/<k> R counter drop
//
// and falls through, back to the rule after M's, when the address is not
// there. <h> hashes the rule, the chain it is in and the rest, so that
// each rule has a map and chains of its own, and the counters of one
// rule are never another's (status adds a rule's slot counters up). A
// rest that looks up another sharded set is sent on the same way, its map
// shared by the slot chains of the first. A rule whose verdict leaves its chain (return, goto: a pass
// rule, a forwarded allow, a tier's re-check) cannot be sent down a chain
// and back, so a set such a rule looks up is not sharded.
func (c *compiler) shard() {
	sh := c.opts.Limits.Sharding.WithDefaults()
	big := map[string]*ruleset.Set{}
	for _, s := range c.t.Sets {
		if m := c.memoSplits[s.Name]; m != nil && (m.sharding != sh || m.size < sh.Min) {
			c.unsplit(s) // split otherwise before: made whole again, then as it comes
		}
		if c.memoSplits[s.Name] != nil || sh.Applies(s) {
			big[s.Name] = s
		}
	}
	for _, ch := range c.t.Chains {
		for _, r := range ch.Rules {
			if k := r.Verdict.Kind; k == ruleset.VerdictReturn || k == ruleset.VerdictGoto || k == ruleset.VerdictVMap {
				for _, m := range r.Matches {
					if a, ok := m.(ruleset.Addr); ok && big[a.Set] != nil {
						c.unsplit(big[a.Set])
						delete(big, a.Set)
					}
				}
			}
		}
	}
	if len(big) == 0 {
		return
	}
	s := &sharder{c: c, big: big, splits: map[string]ruleset.Split{}, made: map[string]string{}}
	sets := c.t.Sets[:0:0]
	for _, set := range c.t.Sets {
		if big[set.Name] == nil {
			sets = append(sets, set)
			continue
		}
		var sp ruleset.Split
		if m := c.memoSplits[set.Name]; m != nil {
			sp = *m.split // the memo's: its slots are shared
		} else {
			sp = sh.Split(set)
			if key, ok := c.memoKeys[set.Name]; ok {
				whole := *set
				whole.Elements = nil // kept once, in slot order
				merged := c.memoMerged[set.Name]
				c.opts.Memo.sets.Keep(key, &memoSet{set: &whole, merged: merged, split: &sp, sharding: sh, size: len(set.Elements)})
			}
		}
		s.splits[set.Name] = sp
		sets = append(sets, ruleset.SlotSets(set, sp)...)
	}
	c.t.Sets = sets
	for _, ch := range slices.Clone(c.t.Chains) {
		for i, r := range ch.Rules {
			if s.first(r) >= 0 {
				ch.Rules[i] = s.lower(r, ch.Name+"\x00"+r.String(), ch.Owner)
			}
		}
	}
}

type sharder struct {
	c      *compiler
	big    map[string]*ruleset.Set
	splits map[string]ruleset.Split
	made   map[string]string // dispatch map made, by name: the rule and rest it is for
}

// lower returns r sent through the dispatch map of the first sharded set
// it looks up, making the map and its chains; r itself when it looks none
// up. origin names the rule of the table r is (part of): its chain and
// text.
func (s *sharder) lower(r *ruleset.Rule, origin, owner string) *ruleset.Rule {
	i := s.first(r)
	if i < 0 {
		return r
	}
	a := r.Matches[i].(ruleset.Addr)
	rest := r.Clone()
	rest.Matches = slices.Clone(r.Matches[i:])
	rest.Matches[0] = ruleset.Addr{Dir: a.Dir, Family: a.Family, Set: a.Set + "/*", Negate: a.Negate}
	text := rest.String()
	key := origin + "\x00" + text
	h := sha256.Sum256([]byte(key))
	name := a.Set + "/" + hashText(h[:5])
	if prev, ok := s.made[name]; ok && prev != key {
		name = a.Set + "/" + hashText(h[:])
	}
	if _, ok := s.made[name]; !ok {
		s.made[name] = key
		sp := s.splits[a.Set]
		for k := range sp.Slots {
			rk := rest.Clone()
			rk.Matches[0] = ruleset.Addr{Dir: a.Dir, Family: a.Family, Set: ruleset.SlotName(a.Set, k), Negate: a.Negate}
			s.c.t.Chains = append(s.c.t.Chains, &ruleset.Chain{Name: ruleset.SlotChain(name, k), Owner: owner,
				Comment: fmt.Sprintf("slot %d of %d of set %s: %s", k+1, len(sp.Slots), a.Set, text),
				Rules:   []*ruleset.Rule{s.lower(rk, origin, owner)}})
		}
		s.c.t.Sets = append(s.c.t.Sets, &ruleset.Set{Name: name, Type: a.Family.AddrType(), Interval: true, Map: true, Owner: owner,
			Comment: "dispatch of set " + a.Set, Elements: ruleset.DispatchElements(name, sp)})
	}
	return &ruleset.Rule{Matches: slices.Clone(r.Matches[:i]), Verdict: ruleset.AddrVMap(a.Family, a.Dir, name)}
}

// first is the index of r's first match looking up a sharded set, or -1.
func (s *sharder) first(r *ruleset.Rule) int {
	return slices.IndexFunc(r.Matches, func(m ruleset.Match) bool {
		a, ok := m.(ruleset.Addr)
		return ok && s.big[a.Set] != nil
	})
}

// unsplit gives set, taken from the memo split, its elements back in key
// order, for a compile that keeps it whole (another sharding, or a rule
// that keeps it whole); the memo keeps it whole from then on.
func (c *compiler) unsplit(set *ruleset.Set) {
	m := c.memoSplits[set.Name]
	if m == nil {
		return
	}
	delete(c.memoSplits, set.Name)
	elems, err := m.split.Join()
	if err != nil { // made by Split: a bug of hostwall's
		c.diags = append(c.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Internal error",
			Detail: fmt.Sprintf("The kept split of set %s does not join (%v); restart the agent. This is a bug of hostwall's.", set.Name, err)})
		return
	}
	set.Elements = elems
	whole := *m.set
	whole.Elements = elems
	c.opts.Memo.sets.Keep(c.memoKeys[set.Name], &memoSet{set: &whole, merged: m.merged})
}
