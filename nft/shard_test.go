package nft_test

import (
	"slices"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// A blocklist of both families, sharded small (ruleset.Sharding).
const shardedPolicy = `
host_endpoint "eth0" { interface = "eth0" }
network_set "bl" {
  labels = { bad = "yes" }
  nets   = ["10.0.0.0/30", "10.0.0.8/30", "10.0.0.16/30", "10.0.0.24/30", "10.0.0.32/30",
            "2001:db8::/64", "2001:db8:0:2::/64", "2001:db8:0:4::/64", "2001:db8:0:6::/64", "2001:db8:0:8::/64"]
}
policy "block" {
  order = 10
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
`

func compileSharded(t *testing.T) *ruleset.Table {
	t.Helper()
	res, diags := loader.Load([]loader.Source{{Path: "bl.hcl", Data: []byte(shardedPolicy)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tbl, diags := compile.Compile(res.Config, compile.Options{HostName: "h",
		Limits: compile.Limits{Sharding: ruleset.Sharding{Min: 2, Slots: 3, ChunkBits: 1}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return tbl
}

// TestDispatchMapDrift: what another program can do to a sharded set's
// dispatch maps is drift that a plan repairs in place: a map emptied (its
// keys were all that told an IPv6 map from an IPv4 one; read as IPv4, the
// plan replaced it, which the kernel refuses while a rule uses it) and an
// element given a verdict hostwall never writes (`continue`: the whole
// read failed on it, so nothing could repair it).
func TestDispatchMapDrift(t *testing.T) {
	c, ns := kernel(t)
	desired := compileSharded(t)
	var maps []*ruleset.Set
	for _, s := range desired.Sets {
		if s.Map && s.Interval {
			maps = append(maps, s)
		}
	}
	if len(maps) != 2 {
		t.Fatalf("want a dispatch map per family, have %d", len(maps))
	}
	for _, m := range maps {
		for _, drift := range []string{
			"flush map inet hostwall " + m.Name,
			"delete element inet hostwall " + m.Name + " { " + m.FormatElement(ruleset.Element{From: m.Elements[0].From, To: m.Elements[0].To}) + " }; " +
				"add element inet hostwall " + m.Name + " { " + m.FormatElement(ruleset.Element{From: m.Elements[0].From, To: m.Elements[0].To}) + " : continue }",
		} {
			apply(t, c, desired)
			testns.NFT(t, ns, drift)
			p := plan(t, c, desired)
			if p.Empty() || !p.ElementsOnly() {
				t.Fatalf("%s: want the map's elements put back, planned %+v", drift, p.Changes)
			}
			if !slices.ContainsFunc(p.Changes, func(ch planner.Change) bool { return ch.Name == m.Name }) {
				t.Fatalf("%s: the plan leaves the map alone: %+v", drift, p.Changes)
			}
			apply(t, c, desired) // and the plan after it is empty
		}
	}
}
