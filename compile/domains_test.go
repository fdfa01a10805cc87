package compile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

func elems(s *ruleset.Set) []string {
	var out []string
	for _, e := range s.Elements {
		for _, p := range []string{"192.0.2.10/31", "2001:db8::10/128"} {
			if e.Equal(ruleset.PrefixElement(netip.MustParsePrefix(p))) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestDomains: a rule's domain names become the addresses they resolved
// to (config.WithAddresses), one set per family as networks do; names
// without an address make the rule match nothing, with a warning naming
// them; and a configuration never resolved matches nothing by them
// either (never every address).
func TestDomains(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "d.hcl", Data: []byte(`
host_endpoint "eth0" { interface = "eth0" }
policy "out" {
  egress {
    action = "allow"
    protocol = "tcp"
    destination {
      domains = ["api.example.com", "gone.example.com"]
      ports = [443]
    }
  }
  egress {
    action = "allow"
    destination { domains = ["gone.example.com"] }
  }
}
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, none := res.Config.WithAddresses(map[string][]netip.Addr{
		"api.example.com": {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("192.0.2.11")},
	})
	if len(none) != 1 || none[0] != "gone.example.com" {
		t.Errorf("names without an address: %q", none)
	}
	tbl, diags := Compile(cfg, Options{HostName: "h"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v4, v6 := findSet(t, tbl, "dom-", "-4"), findSet(t, tbl, "dom-", "-6")
	if !slices.Equal(elems(v4), []string{"192.0.2.10/31"}) /* .10 and .11, merged */ || !slices.Equal(elems(v6), []string{"2001:db8::10/128"}) {
		t.Errorf("the names' sets hold %v and %v", elems(v4), elems(v6))
	}
	checkRules(t, tbl, "pol/out/out",
		"ip daddr @"+v4.Name+" tcp dport 443 counter accept",
		"ip6 daddr @"+v6.Name+" tcp dport 443 counter accept")
	if !strings.Contains(diags.Error(), "Domain names match nothing yet") || !strings.Contains(diags.Error(), "d.hcl:14,19") {
		t.Errorf("no warning for the rule whose names have no address: %v", diags)
	}
	// Named by the names: other addresses change the elements alone.
	again, _ := res.Config.WithAddresses(map[string][]netip.Addr{"api.example.com": {netip.MustParseAddr("192.0.2.99")}})
	if tbl2, _ := Compile(again, Options{HostName: "h"}); findSet(t, tbl2, "dom-", "-4").Name != v4.Name {
		t.Error("the names' set was renamed when their addresses changed")
	}
	// Not resolved at all: the rules match nothing.
	tbl, diags = Compile(res.Config, Options{HostName: "h"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := rules(tbl, "pol/out/out"); len(got) != 0 {
		t.Errorf("unresolved names compiled to %q", got)
	}
}
