package observe

import (
	"cmp"
	"slices"
	"sync"

	"github.com/hostwall/hostwall/ruleset"
)

// Count is a counter's packets and bytes.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (c *Count) add(o Count) { c.Packets, c.Bytes = c.Packets+o.Packets, c.Bytes+o.Bytes }

// addTo adds c to m's count of o.
func addTo(m map[ruleset.Origin]Count, o ruleset.Origin, c Count) {
	sum := m[o]
	sum.add(c)
	m[o] = sum
}

// Counts adds the counters of the live chains' rules up by what they
// enforce, by x: the kernel rules one policy rule became (one per family,
// per alternative, per slot of a sharded set) count as that rule. Rules
// x does not know (another generation's, or not hostwall's) are left out.
func (x *Index) Counts(live []*ruleset.Chain) map[ruleset.Origin]Count {
	out := map[ruleset.Origin]Count{}
	x.each(live, func(_ liveKey, o *ruleset.Origin, c Count) { addTo(out, *o, c) })
	return out
}

// liveKey is a live rule: handles are unique within a table's life.
type liveKey struct {
	chain  string
	handle uint64
}

func (x *Index) each(live []*ruleset.Chain, f func(liveKey, *ruleset.Origin, Count)) {
	for _, ch := range live {
		for _, r := range ch.Rules {
			if !r.Counter || r.StoredID == "" {
				continue
			}
			if o := x.rules[ruleKey{ch.Name, r.StoredID}]; o != nil {
				f(liveKey{ch.Name, r.Handle}, o, Count{r.Packets, r.Bytes})
			}
		}
	}
}

// Totals keeps counts that only grow, as Prometheus counters must, across
// the changes that replace kernel rules (a replaced rule starts again from
// zero) or give a kept rule another origin (a rule inserted above it moves
// its position): what a rule counted is kept for the origin it counted
// for, and a rule counts for an origin only from when it had it. Safe for
// concurrent use.
type Totals struct {
	mu      sync.Mutex
	last    map[liveKey]lastCount
	retired map[ruleset.Origin]Count
}

// lastCount is a live rule as last read: its origin, its counter, and
// its counter when it took that origin (it counts the difference).
type lastCount struct {
	origin       ruleset.Origin
	count, since Count
}

func (l lastCount) counted() Count {
	return Count{l.count.Packets - l.since.Packets, l.count.Bytes - l.since.Bytes}
}

// Update returns the totals by what they enforce, given the live chains
// read now and x, the index of the generation they hold. What a rule
// counted stays while x has anything of its family (Family: a policy's
// direction, an endpoint's direction and reason) — so that a policy's sum
// never goes down when its rules are renumbered or a rollback takes one
// away — and is forgotten with the family (a policy removed).
func (t *Totals) Update(x *Index, live []*ruleset.Chain) map[ruleset.Origin]Count {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retired == nil {
		t.retired = map[ruleset.Origin]Count{}
	}
	out := map[ruleset.Origin]Count{}
	seen := map[liveKey]lastCount{}
	x.each(live, func(k liveKey, o *ruleset.Origin, c Count) {
		now := lastCount{origin: *o, count: c}
		if prev, ok := t.last[k]; ok {
			switch {
			case c.Packets < prev.count.Packets || c.Bytes < prev.count.Bytes:
				t.retire(prev) // not the same rule: the table was made again
			case prev.origin != *o:
				t.retire(prev) // the same rule, now for another origin
				now.since = prev.count
			default:
				now.since = prev.since
			}
		}
		seen[k] = now
		addTo(out, *o, now.counted())
	})
	for k, prev := range t.last {
		if _, ok := seen[k]; !ok {
			t.retire(prev)
		}
	}
	t.last = seen
	families := map[ruleset.Origin]bool{}
	for _, o := range x.rules {
		families[Family(*o)] = true
	}
	for o, c := range t.retired {
		if !families[Family(o)] {
			delete(t.retired, o)
			continue
		}
		addTo(out, o, c)
	}
	return out
}

func (t *Totals) retire(l lastCount) { addTo(t.retired, l.origin, l.counted()) }

// Family is what a policy or endpoint series sums o into: o without its
// rule's position, action and mode for a policy rule (the rules of its
// copy for endpoints in audit mode count in the same series; a staged
// policy's rules keep Staged, as their series are apart), without the
// rule's position for a staged policy's changes, o itself otherwise.
func Family(o ruleset.Origin) ruleset.Origin {
	switch {
	case o.Kind == ruleset.OriginPolicyRule:
		o.Rule, o.Action, o.Audit = 0, "", false
	case o.Kind == ruleset.OriginStagedChange && o.Policy != "":
		o.Rule = 0 // a staged policy's changes sum by the change
	}
	return o
}

// Has reports whether the generation has a counting rule for o.
func (x *Index) Has(o ruleset.Origin) bool { return x.origins[o] }

// DropCount is how much one decider dropped.
type DropCount struct {
	Decided ruleset.Origin `json:"decided"`
	Count
}

// TopDrops are the n deciders of counts that dropped the most packets
// since base (nil: since the counters began), most first.
func TopDrops(counts, base map[ruleset.Origin]Count, n int) []DropCount {
	var out []DropCount
	for o, c := range counts {
		if b, ok := base[o]; ok && b.Packets <= c.Packets && b.Bytes <= c.Bytes {
			c = Count{c.Packets - b.Packets, c.Bytes - b.Bytes}
		}
		if c.Packets > 0 && Drops(o) {
			out = append(out, DropCount{Decided: o, Count: c})
		}
	}
	slices.SortFunc(out, func(a, b DropCount) int {
		if a.Packets != b.Packets {
			return cmp.Compare(b.Packets, a.Packets)
		}
		return ruleset.CompareOrigins(&a.Decided, &b.Decided)
	})
	return out[:min(n, len(out))]
}

// Drops reports whether what o enforces drops packets.
func Drops(o ruleset.Origin) bool {
	if o.Audit || o.Staged {
		return false // an endpoint in audit mode accepted it; the staged view decides nothing
	}
	switch o.Kind {
	case ruleset.OriginDefaultDeny, ruleset.OriginInvalid:
		return true
	case ruleset.OriginPolicyRule, ruleset.OriginEndOfTier, ruleset.OriginWorkload:
		return o.Action == "deny"
	}
	return false
}

// StagedCount is where the staged view disagrees with the enforced one:
// for a host endpoint and direction, or a staged policy (Policy set) and
// direction, which also says how many packets the policy's rules would
// decide.
type StagedCount struct {
	Endpoint   string `json:"endpoint,omitempty"`
	Tier       string `json:"tier,omitempty"`
	Policy     string `json:"policy,omitempty"`
	Direction  string `json:"direction"`
	Decided    uint64 `json:"decided,omitempty"`
	WouldDrop  uint64 `json:"would_drop"`
	WouldAllow uint64 `json:"would_allow"`
}

// Staged sums counts into the staged view's counts, endpoints first, then
// policies, each by name and direction.
func Staged(counts map[ruleset.Origin]Count) []StagedCount {
	type key struct{ endpoint, tier, policy, direction string }
	sums := map[key]*StagedCount{}
	at := func(k key) *StagedCount {
		if sums[k] == nil {
			sums[k] = &StagedCount{Endpoint: k.endpoint, Tier: k.tier, Policy: k.policy, Direction: k.direction}
		}
		return sums[k]
	}
	for o, c := range counts {
		switch {
		case o.Kind == ruleset.OriginPolicyRule && o.Staged:
			at(key{"", o.Tier, o.Policy, o.Direction}).Decided += c.Packets
		case o.Kind == ruleset.OriginStagedChange:
			s := at(key{o.Endpoint, o.Tier, o.Policy, o.Direction})
			if o.Action == "deny" {
				s.WouldDrop += c.Packets
			} else {
				s.WouldAllow += c.Packets
			}
		}
	}
	out := make([]StagedCount, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	policy := func(s StagedCount) int { // endpoints first
		if s.Policy != "" {
			return 1
		}
		return 0
	}
	slices.SortFunc(out, func(a, b StagedCount) int {
		return cmp.Or(cmp.Compare(policy(a), policy(b)), cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Tier, b.Tier),
			cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Direction, b.Direction))
	})
	return out
}
