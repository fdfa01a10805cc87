package nft_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

var exampleHosts = map[string]string{"quickstart": "web-1", "fleet": "db-1"}

// TestExamplesConverge applies every example in its own namespace: the plan
// after an apply is empty, a second apply changes nothing, and nft's own
// listing of every chain and set is what hostwall meant to write.
func TestExamplesConverge(t *testing.T) {
	dirs, _ := filepath.Glob("../examples/*")
	if len(dirs) != len(exampleHosts) {
		t.Fatalf("examples/ has %d entries, the test knows %d", len(dirs), len(exampleHosts))
	}
	for name, host := range exampleHosts {
		t.Run(name, func(t *testing.T) {
			c, ns := kernel(t)
			desired := compileDir(t, filepath.Join("../examples", name), host)
			apply(t, c, desired)
			gen := generation(t, c)
			if p := apply(t, c, desired); !p.Empty() {
				t.Errorf("second apply was not a no-op: %+v", p.Changes)
			}
			if g := generation(t, c); g != gen {
				t.Errorf("a no-op apply moved the generation from %d to %d", gen, g)
			}
			oracle := nftChains(t, ns)
			for _, ch := range desired.Chains {
				if diff := cmp.Diff(ruleTexts(ch), oracle[ch.Name]); diff != "" {
					t.Errorf("nft lists chain %s differently (-hostwall +nft):\n%s", ch.Name, diff)
				}
			}
			if len(oracle) != len(desired.Chains) {
				t.Errorf("nft lists %d chains, hostwall made %d", len(oracle), len(desired.Chains))
			}
			for _, s := range desired.Sets {
				kind := "set"
				if s.Map {
					kind = "map"
				}
				if diff := cmp.Diff(elementTexts(s), nftElements(t, ns, kind, s.Name)); diff != "" {
					t.Errorf("nft lists %s %s differently (-hostwall +nft):\n%s", kind, s.Name, diff)
				}
			}
		})
	}
}

const oneSet = `
host_endpoint "eth0" { interface = "eth0" }
network_set "partners" {
  labels = { partner = "yes" }
  nets   = [%s]
}
policy "p" {
  ingress {
    action = "allow"
    source { selector = "partner == 'yes'" }
  }
}
`

// TestOneCIDRIsOneElement checks incrementality: one CIDR more in a network
// set is one element added, nothing else rewritten.
func TestOneCIDRIsOneElement(t *testing.T) {
	c, ns := kernel(t)
	apply(t, c, compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24", "10.0.2.0/24"`)}))
	before := testns.NFT(t, ns, "-a", "list", "chain", "inet", "hostwall", "pol/p/in")
	gen := generation(t, c)

	desired := compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24", "10.0.2.0/24", "192.0.2.0/24"`)})
	p := plan(t, c, desired)
	if len(p.Changes) != 1 {
		t.Fatalf("want exactly one change, got %d: %+v", len(p.Changes), p.Changes)
	}
	ch := p.Changes[0]
	if ch.Kind != planner.KindSet || ch.Action != planner.Update || len(ch.Set.Added) != 1 || len(ch.Set.Removed) != 0 {
		t.Fatalf("want one element added to a set, got %s %s %s +%d -%d", ch.Action.Word(), ch.Kind, ch.Name, len(ch.Set.Added), len(ch.Set.Removed))
	}
	apply(t, c, desired)
	if g := generation(t, c); g != gen+1 {
		t.Errorf("generation went from %d to %d, want one transaction", gen, g)
	}
	if got := nftElements(t, ns, "set", ch.Name); !slices.Contains(got, "192.0.2.0/24") {
		t.Errorf("nft does not list the new element: %v", got)
	}
	if after := testns.NFT(t, ns, "-a", "list", "chain", "inet", "hostwall", "pol/p/in"); after != before {
		t.Errorf("the policy chain was rewritten:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

const foreignTables = `
table inet foreign {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 10.9.0.0/16, 192.0.2.1 }
	}
	chain input {
		type filter hook input priority 10; policy accept;
		ip saddr @blocked drop
		tcp dport 2222 counter accept comment "hand made"
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth9" masquerade
	}
}
`

// TestForeignTablesUntouched: other tables in the namespace are byte for
// byte the same after every kind of apply, including removing everything.
func TestForeignTablesUntouched(t *testing.T) {
	c, ns := kernel(t)
	testns.Run(t, "sh", "-c", fmt.Sprintf("ip netns exec %s nft -f - <<'EOF'\n%s\nEOF", ns, foreignTables))
	snapshot := func() string {
		return testns.NFT(t, ns, "-a", "list", "table", "inet", "foreign") + testns.NFT(t, ns, "-a", "list", "table", "ip", "nat")
	}
	want := snapshot()
	steps := []*ruleset.Table{
		compileDir(t, "../examples/quickstart", "web-1"),
		compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24"`)}),
		compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24", "10.1.0.0/24"`)}),
		compileSrc(t, "h", map[string]string{}), // nothing configured
	}
	for i, desired := range steps {
		apply(t, c, desired)
		if got := snapshot(); got != want {
			t.Fatalf("after apply %d the foreign tables changed:\nwant:\n%s\ngot:\n%s", i, want, got)
		}
	}
}

// TestDriftReportedAndRepaired changes our table by hand with nft: a rule
// added, a rule deleted, an element added. The plan reports the foreign rule
// as drift, and an apply restores the configuration exactly.
func TestDriftReportedAndRepaired(t *testing.T) {
	c, ns := kernel(t)
	desired := compileDir(t, "../examples/quickstart", "web-1")
	apply(t, c, desired)

	testns.NFT(t, ns, "add", "rule", "inet", "hostwall", "hep/eth0/in", "tcp", "dport", "9999", "accept")
	listing := testns.NFT(t, ns, "-a", "list", "chain", "inet", "hostwall", "pol/web/in")
	var handle string
	for _, l := range strings.Split(listing, "\n") {
		if strings.Contains(l, "meta l4proto icmp") {
			handle = l[strings.LastIndex(l, " ")+1:]
		}
	}
	testns.NFT(t, ns, "delete", "rule", "inet", "hostwall", "pol/web/in", "handle", handle)
	sel := ""
	for _, s := range desired.Sets {
		if strings.HasPrefix(s.Name, "sel-") && strings.HasSuffix(s.Name, "-4") {
			sel = s.Name
		}
	}
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", sel, "{ 10.99.0.0/16 }")

	p := plan(t, c, desired)
	drift := p.Drift()
	if len(drift) != 1 || drift[0].Chain != "hep/eth0/in" || drift[0].Rule.String() != "tcp dport 9999 accept" {
		t.Errorf("drift = %+v, want the hand-made rule in hep/eth0/in", drift)
	}
	var saw []string
	for _, ch := range p.Changes {
		saw = append(saw, fmt.Sprintf("%s %s", ch.Action.Word(), ch.Name))
	}
	want := []string{"update hep/eth0/in", "update " + sel, "update pol/web/in"}
	if diff := cmp.Diff(want, saw); diff != "" {
		t.Errorf("plan mismatch (-want +got):\n%s", diff)
	}
	apply(t, c, desired)
	if out := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); strings.Contains(out, "9999") || strings.Contains(out, "10.99.0.0") || !strings.Contains(out, "meta l4proto icmp") {
		t.Errorf("drift not repaired:\n%s", out)
	}
}

// bigTable is a chain of n rules and a set of m IPv4 /30 networks.
func bigTable(n, m int) *ruleset.Table {
	t := ruleset.NewTable()
	ch := &ruleset.Chain{Name: "big"}
	for i := 0; i < n; i++ {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Counter: true, Verdict: ruleset.Accept(),
			Matches: []ruleset.Match{ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: uint16(i + 1), Hi: uint16(i + 1)}}}})
	}
	s := &ruleset.Set{Name: "blocklist", Type: ruleset.TypeIPv4Addr, Interval: true}
	for _, p := range prefixes(m, netip.MustParseAddr("10.0.0.0"), 30) {
		s.Elements = append(s.Elements, ruleset.PrefixElement(p))
	}
	s.Normalize()
	t.Chains, t.Sets = []*ruleset.Chain{ch}, []*ruleset.Set{s}
	return t
}

// TestLargeBatchRoundTrips: a 2,000-rule chain and a 5,000-CIDR set go in
// one batch and read back exactly (traps 1 and 2).
func TestLargeBatchRoundTrips(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(2000, 5000)
	gen := generation(t, c)
	apply(t, c, desired)
	if g := generation(t, c); g != gen+1 {
		t.Errorf("generation %d → %d: want one transaction", gen, g)
	}
	live, _, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(elementTexts(desired.Set("blocklist")), elementTexts(live.Set("blocklist"))); diff != "" {
		t.Errorf("set read back differs (-want +got):\n%s", diff)
	}
	if n := len(nftElements(t, ns, "set", "blocklist")); n != 5000 {
		t.Errorf("nft lists %d elements, want 5000", n)
	}
	if n := strings.Count(testns.NFT(t, ns, "list", "chain", "inet", "hostwall", "big"), "accept"); n != 2000 {
		t.Errorf("nft lists %d rules, want 2000", n)
	}
}

// TestSmallBuffersFail shows why the buffers are forced large (trap 1): with
// the kernel's default socket buffers, the same 2,000-rule batch fails.
func TestSmallBuffersFail(t *testing.T) {
	ns := testns.New(t)
	c, err := nft.Open(nft.Options{NetNS: ns, BufferBytes: 208 << 10}) // the usual rmem_default
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desired := bigTable(2000, 0)
	p := plan(t, c, desired)
	_, _, err = engine.ApplyTable(context.Background(), c, desired, p, engine.ByReadBack)
	if err == nil {
		t.Fatal("a 2,000-rule batch succeeded with default-sized buffers; trap 1 no longer reproduces, revisit the workaround")
	}
	t.Logf("with default buffers: %v", err)
}

// TestSilentElementLossIsCaught disables chunking: the library then packs
// every element into one attribute whose 16-bit length wraps, and the kernel
// silently keeps a fraction (trap 2) or refuses the mangled message. Either
// way hostwall must not report success; for the silent case it is the
// read-back verification that catches it.
func TestSilentElementLossIsCaught(t *testing.T) {
	restore := nft.SetChunkBytes(1 << 30)
	defer restore()
	sawSilentLoss := false
	for _, n := range []int{2000, 5000} {
		c, _ := kernel(t)
		desired := bigTable(0, n)
		p := plan(t, c, desired)
		_, _, err := engine.ApplyTable(context.Background(), c, desired, p, engine.ByReadBack)
		if err == nil {
			t.Fatalf("%d intervals in one attribute: apply reported success", n)
		}
		if errors.Is(err, engine.ErrNotConverged) {
			sawSilentLoss = true
			live, _, _ := c.Read(context.Background())
			t.Logf("%d intervals unchunked: the kernel accepted the batch but holds %d; verification refused it: %v", n, len(live.Set("blocklist").Elements), err)
		} else {
			t.Logf("%d intervals unchunked: refused by the kernel: %v", n, err)
		}
	}
	if !sawSilentLoss {
		t.Error("no case showed the silent loss of trap 2; revisit the trap notes")
	}
}

// TestFailedBatchLeavesNothing: when the last message of a batch fails
// (deleting a set that does not exist: trap 10), nothing of the batch stays
// and the generation does not move (trap 3).
func TestFailedBatchLeavesNothing(t *testing.T) {
	c, ns := kernel(t)
	apply(t, c, compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24"`)}))
	before := testns.NFT(t, ns, "list", "ruleset")
	gen := generation(t, c)

	p := plan(t, c, compileDir(t, "../examples/quickstart", "web-1"))
	p.Changes = append(p.Changes, planner.Change{Kind: planner.KindSet, Name: "no-such-set", Action: planner.Delete,
		Set: &planner.SetDiff{Before: &ruleset.Set{Name: "no-such-set", Type: ruleset.TypeIPv4Addr}}})
	_, err := c.Apply(context.Background(), p)
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("apply = %v, want ENOENT", err)
	}
	if !strings.Contains(err.Error(), "committing a batch of") {
		t.Errorf("the error does not say what the batch held: %v", err)
	}
	if after := testns.NFT(t, ns, "list", "ruleset"); after != before {
		t.Errorf("a failed batch changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if g := generation(t, c); g != gen {
		t.Errorf("a failed batch moved the generation %d → %d", gen, g)
	}
}

// TestOverlapRefusedByKernel shows why compile merges networks (trap 6).
func TestOverlapRefusedByKernel(t *testing.T) {
	c, _ := kernel(t)
	desired := ruleset.NewTable()
	s := &ruleset.Set{Name: "s", Type: ruleset.TypeIPv4Addr, Interval: true, Elements: []ruleset.Element{
		ruleset.PrefixElement(netip.MustParsePrefix("10.0.0.0/8")),
		ruleset.PrefixElement(netip.MustParsePrefix("10.1.0.0/16")),
	}}
	desired.Sets = []*ruleset.Set{s}
	p := plan(t, c, desired)
	if _, err := c.Apply(context.Background(), p); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("overlapping intervals: got %v, want EEXIST", err)
	}
	s.Normalize()
	apply(t, c, desired)
}

// TestStalePlanIsRefused: a plan made before another process committed is
// refused — by the kernel itself, which checks the generation the batch
// carries under its commit lock — and re-planned by engine.ApplyTable (trap 8).
func TestStalePlanIsRefused(t *testing.T) {
	c, ns := kernel(t)
	desired := compileDir(t, "../examples/quickstart", "web-1")
	p := plan(t, c, desired)
	testns.NFT(t, ns, "add", "table", "ip", "someone-else")
	if _, err := c.Apply(context.Background(), p); !errors.Is(err, planner.ErrStale) {
		t.Fatalf("apply of a stale plan = %v, want a generation error", err)
	}
	if out := testns.NFT(t, ns, "list", "tables"); strings.Contains(out, "hostwall") {
		t.Fatal("a refused stale plan changed the kernel")
	}
	if _, _, err := engine.ApplyTable(context.Background(), c, desired, p, engine.ByReadBack); err != nil {
		t.Fatalf("engine.ApplyTable did not re-plan: %v", err)
	}
}

// TestRoundTripEveryMatchKind encodes one rule of every match kind, family,
// port form and verdict, reads them back, and checks decode(encode(r)) = r
// and that nft prints the same text. The exhaustiveness check fails when a
// new Match kind is added without a case here.
func TestRoundTripEveryMatchKind(t *testing.T) {
	c, ns := kernel(t)
	desired := ruleset.NewTable()
	v4 := &ruleset.Set{Name: "v4", Type: ruleset.TypeIPv4Addr, Interval: true, Elements: []ruleset.Element{ruleset.PrefixElement(netip.MustParsePrefix("192.0.2.0/24"))}}
	v6 := &ruleset.Set{Name: "v6", Type: ruleset.TypeIPv6Addr, Interval: true, Elements: []ruleset.Element{ruleset.PrefixElement(netip.MustParsePrefix("2001:db8::/32"))}}
	ports := &ruleset.Set{Name: "ports", Type: ruleset.TypeInetService, Interval: true, Elements: []ruleset.Element{ruleset.PortElement(ruleset.PortRange{Lo: 80, Hi: 80}), ruleset.PortElement(ruleset.PortRange{Lo: 8000, Hi: 9000})}}
	jumpTo := ruleset.Jump("target")
	vmap := &ruleset.Set{Name: "vm", Type: ruleset.TypeIfName, Map: true, Elements: []ruleset.Element{{From: ruleset.IfNameKey("eth0"), To: ruleset.IfNameKey("eth0"), Verdict: &jumpTo}}}
	np4 := &ruleset.Set{Name: "np4", Type: ruleset.TypeNamedPort4, Elements: []ruleset.Element{
		ruleset.NamedPortElement(netip.MustParseAddr("192.0.2.1"), 6, 22), ruleset.NamedPortElement(netip.MustParseAddr("192.0.2.2"), 17, 53)}}
	np6 := &ruleset.Set{Name: "np6", Type: ruleset.TypeNamedPort6, Elements: []ruleset.Element{
		ruleset.NamedPortElement(netip.MustParseAddr("2001:db8::1"), 6, 443)}}
	np4.Normalize()
	// Dispatch maps of sharded sets: address intervals to verdicts, the
	// last range open to the top of the key space.
	sh := ruleset.Sharding{Min: 1, Slots: 2, ChunkBits: 1}
	dv4 := &ruleset.Set{Name: "v4/d", Type: ruleset.TypeIPv4Addr, Interval: true, Map: true, Elements: ruleset.DispatchElements("v4/d", sh.Split(v4))}
	dv6 := &ruleset.Set{Name: "v6/d", Type: ruleset.TypeIPv6Addr, Interval: true, Map: true, Elements: ruleset.DispatchElements("v6/d", sh.Split(v6))}
	desired.Sets = []*ruleset.Set{v4, v6, ports, vmap, np4, np6, dv4, dv6}
	m := func(ms ...ruleset.Match) []ruleset.Match { return ms }
	rules := []*ruleset.Rule{
		{Matches: m(ruleset.NFProto{Family: ruleset.IPv4}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.NFProto{Family: ruleset.IPv6}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.L4Proto{Proto: 1}), Counter: true, Verdict: ruleset.Accept()},
		{Matches: m(ruleset.L4Proto{Proto: 58}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.L4Proto{Proto: 47})},
		{Matches: m(ruleset.L4Proto{Proto: 200}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.IfName{Dir: ruleset.IIF, Name: "eth0"}), Verdict: ruleset.Jump("target")},
		{Matches: m(ruleset.IfName{Dir: ruleset.OIF, Name: "wg0"}), Verdict: ruleset.Goto("target")},
		{Matches: m(ruleset.IfName{Dir: ruleset.IIF, Name: "cali", Prefix: true}), Verdict: ruleset.Jump("target")},
		{Matches: m(ruleset.IfName{Dir: ruleset.OIF, Name: "abcdefghijklmno", Prefix: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.IfName{Dir: ruleset.IIF, Name: "abcdefghijklmno"}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.CTState{States: []string{"established", "related"}}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.CTState{States: []string{"invalid"}}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.CTState{States: []string{"new", "untracked"}}), Verdict: ruleset.Verdict{Kind: ruleset.VerdictReturn}},
		{Matches: m(ruleset.Addr{Dir: ruleset.Src, Family: ruleset.IPv4, Set: "v4"}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Addr{Dir: ruleset.Dst, Family: ruleset.IPv4, Set: "v4", Negate: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Addr{Dir: ruleset.Src, Family: ruleset.IPv6, Set: "v6", Negate: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Addr{Dir: ruleset.Dst, Family: ruleset.IPv6, Set: "v6"}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: 22, Hi: 22}}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Port{Proto: 17, Dir: ruleset.Src, Range: ruleset.PortRange{Lo: 1000, Hi: 2000}}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: 23, Hi: 23}, Negate: true}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.Port{Proto: 132, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: 10, Hi: 20}, Negate: true}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.Port{Proto: 6, Dir: ruleset.Dst, Set: "ports"}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Port{Proto: 136, Dir: ruleset.Src, Set: "ports", Negate: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Addr{Dir: ruleset.Src, Family: ruleset.IPv4, Set: "v4"}, ruleset.Port{Proto: 6, Dir: ruleset.Dst, Set: "ports"}), Counter: true, Log: &ruleset.Log{Prefix: "hostwall p ingress/1: "}},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv4, Type: 8}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv6, Type: 135}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv6, Type: 130}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv6, Type: 132}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv6, Type: 200}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv4, Type: 3}, ruleset.ICMPCode{Family: ruleset.IPv4, Code: 3}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPType{Family: ruleset.IPv6, Type: 1, Negate: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPCode{Family: ruleset.IPv6, Code: 4, Negate: true}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.ICMPCode{Family: ruleset.IPv4, Code: 77}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.L4Proto{Proto: 6, Negate: true}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.NamedPort{Dir: ruleset.Dst, Family: ruleset.IPv4, Set: "np4"}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.NamedPort{Dir: ruleset.Src, Family: ruleset.IPv6, Set: "np6", Negate: true}), Verdict: ruleset.Drop()},
		{Matches: m(ruleset.Mark{Mask: 0x10000000, Value: 0x10000000}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Port{Proto: 6, Dir: ruleset.Src, Range: ruleset.PortRange{Lo: 22, Hi: 22}}, ruleset.TCPNotSYN{}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.Addr{Dir: ruleset.Dst, Family: ruleset.IPv4, Set: "v4"}, ruleset.Port{Proto: 6, Dir: ruleset.Src, Set: "ports"}, ruleset.TCPNotSYN{}), Verdict: ruleset.Accept()},
		{Matches: m(ruleset.L4Proto{Proto: 6}), Counter: true, SetMark: 0x10000000, Notrack: true, Verdict: ruleset.Accept()},
		{SetMark: 0x4},
		{Matches: m(ruleset.Mark{Mask: 0x60000000, Value: 0x20000000}), ClearMark: 0x80000000, Verdict: ruleset.Return()},
		{Matches: m(ruleset.Mark{Mask: 0x20000000, Value: 0}), ClearMark: 0x60000000, SetMark: 0x20000000},
		{ClearMark: 0xe0000000},
		{SetMark: 0xa0000000, ClearMark: 0x40000000, Verdict: ruleset.VMap(ruleset.IIF, "vm")},
		{Verdict: ruleset.VMap(ruleset.IIF, "vm")},
		{Verdict: ruleset.VMap(ruleset.OIF, "vm")},
		{Matches: m(ruleset.L4Proto{Proto: 6}), Verdict: ruleset.AddrVMap(ruleset.IPv4, ruleset.Src, "v4/d")},
		{Verdict: ruleset.AddrVMap(ruleset.IPv6, ruleset.Dst, "v6/d")},
		{Counter: true, Verdict: ruleset.Drop()},
	}
	desired.Chains = []*ruleset.Chain{{Name: "all", Rules: rules}, {Name: "target"},
		{Name: "input", Base: &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: ruleset.HookInput, Priority: 0, Policy: ruleset.PolicyAccept}},
		{Name: "fwd", Base: &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: ruleset.HookForward, Priority: 5, Policy: ruleset.PolicyDrop}},
		{Name: "pre", Base: &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: ruleset.HookPrerouting, Priority: ruleset.PriorityRaw, Policy: ruleset.PolicyAccept}}}
	for _, d := range []*ruleset.Set{dv4, dv6} {
		for k := range sh.Slots {
			desired.Chains = append(desired.Chains, &ruleset.Chain{Name: ruleset.SlotChain(d.Name, k)})
		}
	}
	desired.Sort()

	covered := map[string]bool{}
	for _, r := range rules {
		for _, mm := range r.Matches {
			covered[fmt.Sprintf("%T", mm)] = true
		}
	}
	for _, kind := range []string{"ruleset.NFProto", "ruleset.L4Proto", "ruleset.IfName", "ruleset.CTState", "ruleset.Addr", "ruleset.Port", "ruleset.ICMPType", "ruleset.ICMPCode", "ruleset.NamedPort", "ruleset.Mark", "ruleset.TCPNotSYN"} {
		if !covered[kind] {
			t.Errorf("match kind %s is not exercised", kind)
		}
	}

	p := plan(t, c, desired)
	if _, _, err := engine.ApplyTable(context.Background(), c, desired, p, engine.ByReadBack); err != nil {
		t.Error(err)
	}
	live, _, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*ruleset.Set{dv4, dv6} {
		if got := live.Set(d.Name); got == nil || got.String() != d.String() {
			t.Errorf("dispatch map read back as\n%v\nwant\n%v", got, d)
		}
	}
	got := live.Chain("all")
	for i, r := range got.Rules {
		if !r.Intact("all") {
			t.Errorf("rule %d read back as %q (stored id %q), not intact", i, r, r.StoredID)
		}
	}
	if diff := cmp.Diff(ruleTexts(desired.Chain("all")), ruleTexts(got)); diff != "" {
		t.Errorf("decode(encode(r)) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ruleTexts(desired.Chain("all")), nftChains(t, ns)["all"]); diff != "" {
		t.Errorf("nft prints the rules differently (-hostwall +nft):\n%s", diff)
	}
	if diff := cmp.Diff(desired.Chain("fwd").Base, live.Chain("fwd").Base); diff != "" {
		t.Errorf("base chain read back differs (-want +got):\n%s", diff)
	}
}

// TestENOBUFSAfterCommit: with the kernel's usual buffers the library's own
// Flush of a 400-rule batch returns ENOBUFS although the kernel committed it:
// the acknowledgements and rule echoes it asks for overflow the socket (trap
// 1, and trap 13's cost). hostwall sends batches without either
// (commit.go), so the same batch through Apply, with the same buffers,
// commits and says so.
func TestENOBUFSAfterCommit(t *testing.T) {
	const small = 208 << 10 // the usual rmem_default
	ns := testns.New(t)
	f, err := os.Open(netif.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lib, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.WithSockOptions(func(nc *netlink.Conn) error {
		return nc.SetReadBuffer(small)
	}))
	if err != nil {
		t.Fatal(err)
	}
	tbl := lib.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "lib"})
	ch := lib.AddChain(&nftables.Chain{Table: tbl, Name: "big"})
	for i := range 400 {
		lib.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(i+1))},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept},
		}})
	}
	if err := lib.Flush(); !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("the library's Flush of 400 rules with %d-byte buffers: %v, want ENOBUFS (trap 1 no longer reproduces?)", small, err)
	}
	if out := testns.NFT(t, ns, "list", "chain", "inet", "lib", "big"); strings.Count(out, "accept") != 400 {
		t.Fatalf("trap 1 is ENOBUFS after the commit, but the kernel does not hold the 400 rules:\n%s", out)
	}

	c, err := nft.Open(nft.Options{NetNS: testns.New(t), BufferBytes: small})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desired := bigTable(400, 0)
	if _, _, err := engine.ApplyTable(context.Background(), c, desired, plan(t, c, desired), engine.ByReadBack); err != nil {
		t.Fatalf("hostwall's apply of the same 400 rules with %d-byte buffers: %v", small, err)
	}
}

// TestRefusedBatchNamesTheChange: a batch the kernel refuses fails as a
// whole, and the error names the refused change — the rule and its chain —
// where the library's says only "no such file or directory" (trap 3).
func TestRefusedBatchNamesTheChange(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(3, 0)
	ch := desired.Chain("big")
	ch.Rules[1] = &ruleset.Rule{Verdict: ruleset.Verdict{Kind: ruleset.VerdictJump, Chain: "no-such-chain"}}
	before := testns.NFT(t, ns, "list", "ruleset")
	gen := generation(t, c)
	p := plan(t, c, desired)
	_, err := c.Apply(context.Background(), p)
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("apply = %v, want ENOENT", err)
	}
	var be *nft.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("apply = %T %v, want a *nft.BatchError", err, err)
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{`add a rule to chain "big": jump no-such-chain`, "nothing was committed", "committing a batch of"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if after := testns.NFT(t, ns, "list", "ruleset"); after != before {
		t.Errorf("a refused batch changed the ruleset:\n%s", after)
	}
	if g := generation(t, c); g != gen {
		t.Errorf("a refused batch moved the generation %d → %d", gen, g)
	}
}

// TestErrorRepliesOverflow: when so many messages are refused that their
// error replies overflow the socket, Apply still fails, says some errors
// were lost, and nothing is committed.
func TestErrorRepliesOverflow(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(400, 0)
	for i := range desired.Chain("big").Rules {
		desired.Chain("big").Rules[i] = &ruleset.Rule{Verdict: ruleset.Verdict{Kind: ruleset.VerdictJump, Chain: fmt.Sprintf("missing-%d", i)}}
	}
	gen := generation(t, c)
	restore := nft.SetCommitReceiveBytes(4096)
	defer restore()
	p := plan(t, c, desired)
	_, err := c.Apply(context.Background(), p)
	var be *nft.BatchError
	if !errors.As(err, &be) || !be.Lost {
		t.Fatalf("apply = %v, want a *nft.BatchError with Lost set", err)
	}
	t.Logf("overflowed: %v", err)
	if !strings.Contains(err.Error(), "overflowed the socket") {
		t.Errorf("the error does not say replies were lost: %v", err)
	}
	if g := generation(t, c); g != gen {
		t.Errorf("a refused batch moved the generation %d → %d", gen, g)
	}
	if out := testns.NFT(t, ns, "list", "ruleset"); strings.Contains(out, "hostwall") {
		t.Errorf("a refused batch left a table:\n%s", out)
	}
}

// TestLongSetComment: the kernel refuses a set whose comment does not fit
// its 256 bytes of user data with ERANGE, failing the whole batch (trap 12;
// a policy of 1,000 ports or a long selector names them all in its set's
// comment). The encoder shortens such comments; the planner does not
// compare them, so the table converges.
func TestLongSetComment(t *testing.T) {
	c, ns := kernel(t)
	// Without the workaround: the library as is.
	f, err := os.Open(netif.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tbl := raw.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "raw"})
	if err := raw.AddSet(&nftables.Set{Table: tbl, Name: "s", KeyType: nftables.TypeInetService, Comment: strings.Repeat("x", 300)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); !errors.Is(err, unix.ERANGE) {
		t.Errorf("a 300-byte set comment through the library: got %v, want ERANGE", err)
	}

	desired := ruleset.NewTable()
	long := "ports " + strings.Repeat("20000, ", 1000) + "Ωmega"
	desired.Sets = []*ruleset.Set{{Name: "p", Type: ruleset.TypeInetService, Interval: true, Comment: long,
		Elements: []ruleset.Element{ruleset.PortElement(ruleset.PortRange{Lo: 20000, Hi: 20999})}}}
	apply(t, c, desired)
	if p := plan(t, c, desired); !p.Empty() {
		t.Errorf("the shortened comment reads back as a change: %+v", p.Changes)
	}
	out := testns.NFT(t, ns, "list", "set", "inet", "hostwall", "p")
	i := strings.Index(out, `comment "`)
	if i < 0 {
		t.Fatalf("no comment listed:\n%s", out)
	}
	got := out[i+len(`comment "`):]
	got = got[:strings.IndexByte(got, '"')]
	if !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) || !strings.HasSuffix(got, "…") || len(got) > 247 {
		t.Errorf("comment listed as %q (%d bytes), want the start of the original, cut with …, at most 247 bytes", got, len(got))
	}
}

// TestAddressSetsLongGC (trap 14): address sets are made with the timeout
// flag and the longest gc-interval, so that the kernel's commit does not
// walk them for expired elements every second; their elements have no
// timeout (nothing expires), other sets are made as before, and the table
// reads back as it was planned.
func TestAddressSetsLongGC(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(1, 100)
	ports := &ruleset.Set{Name: "ports", Type: ruleset.TypeInetService, Interval: true,
		Elements: []ruleset.Element{ruleset.PortElement(ruleset.PortRange{Lo: 22, Hi: 22})}}
	v6 := &ruleset.Set{Name: "v6", Type: ruleset.TypeIPv6Addr, Interval: true,
		Elements: []ruleset.Element{ruleset.PrefixElement(netip.MustParsePrefix("2001:db8::/32"))}}
	desired.Sets = append(desired.Sets, ports, v6)
	apply(t, c, desired)
	for _, name := range []string{"blocklist", "v6"} {
		listing := testns.NFT(t, ns, "list", "set", "inet", "hostwall", name)
		if !strings.Contains(listing, "flags interval,timeout") || !strings.Contains(listing, "gc-interval 49d17h2m47s") {
			t.Errorf("set %s is not made with the long gc-interval:\n%s", name, listing)
		}
		if strings.Contains(listing, "expires") || strings.Contains(listing, "timeout 0") {
			t.Errorf("elements of %s have a timeout:\n%s", name, listing)
		}
	}
	if listing := testns.NFT(t, ns, "list", "set", "inet", "hostwall", "ports"); strings.Contains(listing, "timeout") || strings.Contains(listing, "gc-interval") {
		t.Errorf("the port set has a timeout or gc-interval:\n%s", listing)
	}
	if p := plan(t, c, desired); !p.Empty() {
		t.Errorf("the table does not read back as planned: %+v", p.Changes)
	}
	if diff := cmp.Diff(elementTexts(desired.Set("blocklist")), nftElements(t, ns, "set", "blocklist")); diff != "" {
		t.Errorf("nft lists the blocklist differently (-hostwall +nft):\n%s", diff)
	}
}

// TestReadLike: a set read that holds exactly the desired set's elements
// shares them (no second copy kept); one that differs keeps its own
// decoding, and the read is Read's either way.
func TestReadLike(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(3, 2000)
	other := &ruleset.Set{Name: "other", Type: ruleset.TypeIPv4Addr, Interval: true,
		Elements: []ruleset.Element{ruleset.PrefixElement(netip.MustParsePrefix("192.0.2.0/24"))}}
	desired.Sets = append(desired.Sets, other)
	desired.Sort()
	apply(t, c, desired)
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", "other", "{ 198.51.100.0/24 }")
	ctx := context.Background()
	like, _, err := c.ReadLike(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	read, _, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if like.String() != read.String() {
		t.Fatalf("ReadLike and Read differ:\n%s\n---\n%s", like, read)
	}
	shares := func(a, b *ruleset.Set) bool { return len(a.Elements) > 0 && &a.Elements[0] == &b.Elements[0] }
	if !shares(like.Set("blocklist"), desired.Set("blocklist")) {
		t.Error("the unchanged set does not share the desired elements")
	}
	if shares(like.Set("other"), desired.Set("other")) || len(like.Set("other").Elements) != 2 {
		t.Errorf("the set changed by nft shares the desired elements, or lost the change: %v", like.Set("other").Elements)
	}
	if shares(read.Set("blocklist"), desired.Set("blocklist")) {
		t.Error("Read shares elements it was given nothing to share with")
	}
}

// TestChainDepthLimit: the kernel takes a table whose jumps (a goto and a
// verdict map's element counted alike) reach a chain at depth
// compile.MaxChainDepth-1, and refuses one that reaches depth
// compile.MaxChainDepth — the bound compile checks before it (docs/kernel.md).
func TestChainDepthLimit(t *testing.T) {
	c, _ := kernel(t)
	table := func(depth int) *ruleset.Table {
		tbl := ruleset.NewTable()
		tbl.Chains = append(tbl.Chains, &ruleset.Chain{Name: "input", Base: &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: ruleset.HookInput, Policy: ruleset.PolicyAccept},
			Rules: []*ruleset.Rule{{Verdict: ruleset.VMap(ruleset.IIF, "vm")}}})
		to := ruleset.Jump("c1")
		tbl.Sets = append(tbl.Sets, &ruleset.Set{Name: "vm", Type: ruleset.TypeIfName, Map: true,
			Elements: []ruleset.Element{{From: ruleset.IfNameKey("eth0"), To: ruleset.IfNameKey("eth0"), Verdict: &to}}})
		for i := 1; i <= depth; i++ {
			ch := &ruleset.Chain{Name: fmt.Sprintf("c%d", i)}
			switch {
			case i == depth:
			case i%2 == 0:
				ch.Rules = []*ruleset.Rule{{Verdict: ruleset.Goto(fmt.Sprintf("c%d", i+1))}}
			default:
				ch.Rules = []*ruleset.Rule{{Verdict: ruleset.Jump(fmt.Sprintf("c%d", i+1))}}
			}
			tbl.Chains = append(tbl.Chains, ch)
		}
		tbl.Sort()
		return tbl
	}
	ok := table(compile.MaxChainDepth - 1)
	if _, _, err := engine.ApplyTable(context.Background(), c, ok, plan(t, c, ok), engine.ByReadBack); err != nil {
		t.Errorf("depth %d refused: %v", compile.MaxChainDepth-1, err)
	}
	deep := table(compile.MaxChainDepth)
	_, _, err := engine.ApplyTable(context.Background(), c, deep, plan(t, c, deep), engine.ByReadBack)
	if err == nil || !strings.Contains(err.Error(), "too many links") {
		t.Errorf("depth %d: %v, want the kernel's refusal (too many links)", compile.MaxChainDepth, err)
	}
}
