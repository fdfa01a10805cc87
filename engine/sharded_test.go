package engine

import (
	"strings"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

// Status counts a rule that looks a sharded set up by its slot chains'
// counters, and two rules with the same rest in two policies each by its
// own: the slot chains are each rule's (compile/shard.go), not shared.
func TestCountersOfShardedRules(t *testing.T) {
	const src = `
host_endpoint "eth0" { interface = "eth0" }
network_set "bl" {
  labels = { bad = "yes" }
  nets   = ["10.0.0.0/30", "10.0.0.8/30", "10.0.0.16/30", "10.0.0.24/30", "10.0.0.32/30"]
}
policy "a" {
  order = 10
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
policy "b" {
  order = 20
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
`
	res, diags := loader.Load([]loader.Source{{Path: "p.hcl", Data: []byte(src)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	desired, diags := compile.Compile(res.Config, compile.Options{HostName: "h",
		Limits: compile.Limits{Sharding: ruleset.Sharding{Min: 2, Slots: 3, ChunkBits: 1}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	live := desired.Clone()
	// Each slot chain of policy a's rule counts k+1 packets, b's 10×(k+1).
	for _, pol := range []struct {
		chain string
		per   uint64
	}{{"pol/a/in", 1}, {"pol/b/in", 10}} {
		r := live.Chain(pol.chain).Rules[0]
		if r.Verdict.Family == "" {
			t.Fatalf("%s: %s does not dispatch", pol.chain, r)
		}
		for k := 0; k < 3; k++ {
			sc := live.Chain(ruleset.SlotChain(r.Verdict.Map, k))
			sc.Rules[0].Packets, sc.Rules[0].Bytes = pol.per*uint64(k+1), 100*pol.per*uint64(k+1)
		}
	}
	got := map[string]ChainCount{}
	for _, cc := range counters(live, desired) {
		if strings.HasPrefix(cc.Chain, "sel-") {
			t.Errorf("slot chain %s listed on its own", cc.Chain)
		}
		got[cc.Chain] = cc
	}
	for chain, want := range map[string]uint64{"pol/a/in": 6, "pol/b/in": 60} {
		cc := got[chain]
		// Its IPv4 rule dispatches; its IPv6 rule (an empty set) does not.
		if len(cc.Rules) != 2 || cc.Rules[0].Packets != want || cc.Packets != want || cc.Bytes != 100*want {
			t.Errorf("%s: counted %+v, want %d packets on its IPv4 rule", chain, cc, want)
		}
	}
}
