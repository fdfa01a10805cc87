package ruleset

import (
	"net/netip"
	"testing"
)

// TestStringWithChains: a table rendered around the chains' text of a
// table with the same chains and other sets is what String renders.
func TestStringWithChains(t *testing.T) {
	jump := Jump("c")
	mk := func(nets ...string) *Table {
		tbl := NewTable()
		s := &Set{Name: "s", Type: TypeIPv4Addr, Interval: true}
		for _, n := range nets {
			s.Elements = append(s.Elements, PrefixElement(netip.MustParsePrefix(n)))
		}
		tbl.Sets = []*Set{s, {Name: "m", Type: TypeIfName, Map: true, Elements: []Element{{From: IfNameKey("eth0"), To: IfNameKey("eth0"), Verdict: &jump}}}}
		tbl.Chains = []*Chain{
			{Name: "input", Base: &BaseChain{Type: ChainTypeFilter, Hook: HookInput}, Rules: []*Rule{{Verdict: Verdict{Kind: VerdictVMap, Map: "m", Key: IIF}}}},
			{Name: "c", Rules: []*Rule{{Matches: []Match{Addr{Dir: Src, Family: IPv4, Set: "s"}}, Counter: true, Verdict: Drop()}, {}}},
		}
		return tbl
	}
	old, changed := mk("10.0.0.0/8"), mk("10.0.0.0/8", "192.0.2.0/24")
	if got, want := changed.StringWithChains(old.ChainsText()), changed.String(); got != want {
		t.Errorf("rendered around the recorded chains:\n%s\nwant:\n%s", got, want)
	}
	empty := NewTable()
	if got := empty.StringWithChains(""); got != empty.String() {
		t.Errorf("empty table: %q, want %q", got, empty.String())
	}
}
