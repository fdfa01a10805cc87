package planner_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hostwall/hostwall/nft/nfttest"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

func portRule(p uint16) *ruleset.Rule {
	return &ruleset.Rule{Matches: []ruleset.Match{ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: p, Hi: p}}}, Verdict: ruleset.Accept()}
}

func chainOf(ports []uint16) *ruleset.Table {
	t := ruleset.NewTable()
	c := &ruleset.Chain{Name: "c"}
	for _, p := range ports {
		c.Rules = append(c.Rules, portRule(p))
	}
	t.Chains = []*ruleset.Chain{c}
	return t
}

func texts(t *ruleset.Table) []string {
	var out []string
	for _, r := range t.Chain("c").Rules {
		out = append(out, r.String())
	}
	return out
}

// diffReadOnly is planner.Diff, checking that it changes neither table:
// the agent plans against the very table of its last read.
func diffReadOnly(t *testing.T, desired, live *ruleset.Table) *planner.Plan {
	t.Helper()
	var liveBefore *ruleset.Table
	if live != nil {
		liveBefore = live.Clone()
	}
	desiredBefore := desired.Clone()
	p := planner.Diff(desired, live)
	for _, d := range []string{cmp.Diff(liveBefore, live, cmpopts.EquateEmpty()), cmp.Diff(desiredBefore, desired, cmpopts.EquateEmpty())} {
		if d != "" {
			t.Fatalf("Diff changed a table it was given (-before +after):\n%s", d)
		}
	}
	return p
}

// converge makes desired live on a fake and returns the plan.
func converge(t *testing.T, f *nfttest.Fake, desired *ruleset.Table) *planner.Plan {
	t.Helper()
	ctx := context.Background()
	live, gen, _ := f.Read(ctx)
	p := diffReadOnly(t, desired, live)
	p.Generation = gen
	if _, err := f.Apply(ctx, p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	live, _, _ = f.Read(ctx)
	if rest := planner.Diff(desired, live); !rest.Empty() {
		t.Fatalf("after apply, a second plan is not empty: %+v", rest.Changes)
	}
	return p
}

func lcsLen(a, b []uint16) int {
	l := make([][]int, len(a)+1)
	for i := range l {
		l[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	return l[0][0]
}

// TestRuleDiffProperty turns random chains into random chains through the
// planner and the fake: the result is exactly the desired chain, and the
// number of rule operations is the minimum (a longest common subsequence).
func TestRuleDiffProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randChain := func() []uint16 {
		out := make([]uint16, rng.IntN(12))
		for i := range out {
			out[i] = uint16(1 + rng.IntN(6)) // few distinct rules: duplicates happen
		}
		return out
	}
	for i := 0; i < 500; i++ {
		from, to := randChain(), randChain()
		t.Run(fmt.Sprint(from, "→", to), func(t *testing.T) {
			f := nfttest.New()
			converge(t, f, chainOf(from))
			p := converge(t, f, chainOf(to))
			if diff := cmp.Diff(texts(chainOf(to)), texts(f.Live())); diff != "" {
				t.Fatalf("chain mismatch (-want +got):\n%s", diff)
			}
			ops := 0
			for _, c := range p.Changes {
				ops += len(c.Chain.Deleted) + len(c.Chain.Inserts)
			}
			if want := len(from) + len(to) - 2*lcsLen(from, to); ops != want {
				t.Errorf("%d rule operations, want the minimum %d", ops, want)
			}
		})
	}
}

func TestInsertKeepsOtherRules(t *testing.T) {
	f := nfttest.New()
	converge(t, f, chainOf([]uint16{1, 2, 3}))
	before := f.Live().Chain("c").Rules
	p := converge(t, f, chainOf([]uint16{1, 9, 2, 3}))
	c := p.Changes[0]
	if c.Action != planner.Update || len(c.Chain.Inserts) != 1 || len(c.Chain.Deleted) != 0 {
		t.Fatalf("want one insert, got %+v", c.Chain)
	}
	if got := c.Chain.Inserts[0].After; got != before[0].Handle {
		t.Errorf("insert anchored after handle %d, want %d (the rule before it)", got, before[0].Handle)
	}
	after := f.Live().Chain("c").Rules
	for _, i := range []int{0, 2, 3} {
		if after[i].Handle != before[map[int]int{0: 0, 2: 1, 3: 2}[i]].Handle {
			t.Errorf("rule %d was rewritten (handle changed)", i)
		}
	}
}

func TestForeignRuleIsDrift(t *testing.T) {
	f := nfttest.New()
	desired := chainOf([]uint16{1, 2})
	converge(t, f, desired)
	live := f.Live()
	live.Chain("c").Rules = append(live.Chain("c").Rules[:1], append([]*ruleset.Rule{portRule(9999)}, live.Chain("c").Rules[1:]...)...)
	f.SetLive(live) // added by hand: no stored ID
	ctx := context.Background()
	live, _, _ = f.Read(ctx)
	p := planner.Diff(desired, live)
	drift := p.Drift()
	if len(drift) != 1 || drift[0].Rule.String() != "tcp dport 9999 accept" {
		t.Fatalf("drift = %+v, want the hand-made rule", drift)
	}
	if p.Changes[0].Reason != planner.ReasonDrift {
		t.Errorf("reason = %q, want drift", p.Changes[0].Reason)
	}
	converge(t, f, desired)
}

func TestSetElementDiff(t *testing.T) {
	set := func(cidrs ...string) *ruleset.Table {
		t := ruleset.NewTable()
		s := &ruleset.Set{Name: "s", Type: ruleset.TypeIPv4Addr, Interval: true}
		for _, c := range cidrs {
			s.Elements = append(s.Elements, ruleset.PrefixElement(mustPrefix(c)))
		}
		s.Normalize()
		t.Sets = []*ruleset.Set{s}
		return t
	}
	f := nfttest.New()
	converge(t, f, set("10.0.0.0/8", "192.0.2.0/24"))
	p := converge(t, f, set("10.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24"))
	if len(p.Changes) != 1 || len(p.Changes[0].Set.Added) != 1 || len(p.Changes[0].Set.Removed) != 0 {
		t.Fatalf("one added CIDR must be one added element, got %+v", p.Changes)
	}
	p = converge(t, f, set("10.0.0.0/8"))
	if got := len(p.Changes[0].Set.Removed); got != 2 {
		t.Errorf("removed %d elements, want 2", got)
	}
}

func TestVerdictMapChange(t *testing.T) {
	vm := func(chain string) *ruleset.Table {
		t := ruleset.NewTable()
		v := ruleset.Jump(chain)
		t.Chains = []*ruleset.Chain{{Name: "a"}, {Name: "b"}}
		t.Sets = []*ruleset.Set{{Name: "m", Type: ruleset.TypeIfName, Map: true,
			Elements: []ruleset.Element{{From: ruleset.IfNameKey("eth0"), To: ruleset.IfNameKey("eth0"), Verdict: &v}}}}
		return t
	}
	f := nfttest.New()
	converge(t, f, vm("a"))
	p := converge(t, f, vm("b"))
	if c := p.Changes[0]; len(c.Set.Added) != 1 || len(c.Set.Removed) != 1 {
		t.Errorf("a changed verdict must be one removal and one addition, got %+v", c.Set)
	}
}

// TestElementDiffProperty: for random sets and maps, listed in any order,
// applying the planned element changes to the live set gives exactly the
// desired one, an unchanged element is neither added nor removed, and both
// lists come in key order.
func TestElementDiffProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	elem := func() ruleset.Element {
		k := string([]byte{byte(rng.IntN(4)), byte(rng.IntN(40))})
		e := ruleset.Element{From: k, To: k}
		if rng.IntN(2) == 0 {
			e.Verdict = &ruleset.Verdict{Kind: ruleset.VerdictJump, Chain: fmt.Sprint("c", rng.IntN(3))}
		}
		return e
	}
	set := func() map[string]ruleset.Element {
		m := map[string]ruleset.Element{}
		for range rng.IntN(60) {
			e := elem()
			m[e.Key()] = e
		}
		return m
	}
	list := func(m map[string]ruleset.Element) []ruleset.Element {
		var out []ruleset.Element
		for _, e := range m {
			out = append(out, e) // map order: unsorted
		}
		return out
	}
	sorted := func(l []ruleset.Element) bool {
		return slices.IsSortedFunc(l, ruleset.CompareElements)
	}
	for i := range 2000 {
		want, have := set(), set()
		live := ruleset.NewTable()
		live.Sets = []*ruleset.Set{{Name: "s", Type: ruleset.TypeIfName, Map: true, Elements: list(have)}}
		desired := ruleset.NewTable()
		desired.Sets = []*ruleset.Set{{Name: "s", Type: ruleset.TypeIfName, Map: true, Elements: list(want)}}
		p := diffReadOnly(t, desired, live)
		got := maps.Clone(have)
		var added, removed []ruleset.Element
		if len(p.Changes) == 1 {
			added, removed = p.Changes[0].Set.Added, p.Changes[0].Set.Removed
		}
		for _, e := range removed {
			if h, ok := got[e.Key()]; !ok || !h.Equal(e) {
				t.Fatalf("case %d: removes %q, which live does not hold", i, e.Key())
			}
			delete(got, e.Key())
		}
		for _, e := range added {
			if _, ok := got[e.Key()]; ok {
				t.Fatalf("case %d: adds %q, which is there", i, e.Key())
			}
			if h, ok := have[e.Key()]; ok && h.Equal(e) {
				t.Fatalf("case %d: re-adds the unchanged %q", i, e.Key())
			}
			got[e.Key()] = e
		}
		if !maps.EqualFunc(got, want, ruleset.Element.Equal) {
			t.Fatalf("case %d: live after the plan differs from desired", i)
		}
		if !sorted(added) || !sorted(removed) {
			t.Fatalf("case %d: added or removed out of key order", i)
		}
	}
}

// TestElementsOnly: a plan of set element updates alone is one; a created
// table, a set created or recreated, or any chain change is not; an empty
// plan is.
func TestElementsOnly(t *testing.T) {
	elem := ruleset.Element{From: "\x0a\x00\x00\x00", To: "\x0a\x00\x00\x03"}
	set := func(elems ...ruleset.Element) *ruleset.Set {
		return &ruleset.Set{Name: "s", Type: ruleset.TypeIPv4Addr, Interval: true, Elements: elems}
	}
	table := func(s *ruleset.Set, chains ...*ruleset.Chain) *ruleset.Table {
		t := ruleset.NewTable()
		t.Sets, t.Chains = []*ruleset.Set{s}, chains
		return t
	}
	chain := &ruleset.Chain{Name: "c", Rules: []*ruleset.Rule{{Verdict: ruleset.Accept()}}}
	for _, tc := range []struct {
		name          string
		desired, live *ruleset.Table
		want          bool
	}{
		{"elements added", table(set(elem)), table(set()), true},
		{"nothing", table(set(elem)), table(set(elem)), true},
		{"a new table", table(set(elem)), nil, false},
		{"a set recreated", table(set(elem)), table(&ruleset.Set{Name: "s", Type: ruleset.TypeIPv6Addr, Interval: true}), false},
		{"a chain as well", table(set(elem), chain), table(set()), false},
	} {
		if got := planner.Diff(tc.desired, tc.live).ElementsOnly(); got != tc.want {
			t.Errorf("%s: ElementsOnly %v, want %v", tc.name, got, tc.want)
		}
	}
}
