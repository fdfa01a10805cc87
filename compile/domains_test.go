package compile

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/explain"
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

// TestNetworkSetDomains: a network set's domain names (Calico's
// allowedEgressDomains) count for the destination selector of an egress
// allow rule alone, as in Calico: that rule's set holds their addresses
// beside the nets; an ingress rule's, or a deny's, does not.
func TestNetworkSetDomains(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "n.hcl", Data: []byte(`
host_endpoint "eth0" { interface = "eth0" }
network_set "partners" {
  labels = { partner = "yes" }
  nets = ["198.51.100.0/24"]
  domains = ["api.example.com"]
}
policy "p" {
  egress {
    action = "allow"
    destination { selector = "partner == 'yes'" }
  }
  egress {
    action = "deny"
    destination { selector = "partner == 'yes'" }
  }
  ingress {
    action = "allow"
    source { selector = "partner == 'yes'" }
  }
}
`)}, {Path: "c.yaml", Data: []byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: calico-partners
  labels: {partner: calico}
spec:
  allowedEgressDomains: [Updates.Example.com]
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := res.Config.Domains(); !slices.Equal(got, []string{"api.example.com", "updates.example.com"}) {
		t.Errorf("Domains() = %q", got)
	}
	cfg, _ := res.Config.WithAddresses(map[string][]netip.Addr{"api.example.com": {netip.MustParseAddr("192.0.2.10")}})
	tbl, diags := Compile(cfg, Options{HostName: "h"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	withNames, plain := findSet(t, tbl, "seld-", "-4"), findSet(t, tbl, "sel-", "-4")
	has := func(s *ruleset.Set, p string) bool {
		return slices.ContainsFunc(s.Elements, func(e ruleset.Element) bool { return e.Equal(ruleset.PrefixElement(netip.MustParsePrefix(p))) })
	}
	if !has(withNames, "192.0.2.10/32") || !has(withNames, "198.51.100.0/24") {
		t.Errorf("the egress allow's set lacks the name's address or the nets: %+v", withNames.Elements)
	}
	if has(plain, "192.0.2.10/32") || !has(plain, "198.51.100.0/24") {
		t.Errorf("the deny's and the ingress rule's set: %+v", plain.Elements)
	}
	// explain says the same.
	pkt := explain.Packet{Iface: "eth0", Proto: config.ProtoUDP, SPort: 40000, DPort: 9999, ICMPType: -1, ICMPCode: -1, State: explain.New}
	out4, in4 := pkt, pkt
	out4.Direction, out4.Src, out4.Dst = explain.Out, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.10")
	in4.Direction, in4.Src, in4.Dst = explain.In, netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("10.0.0.1")
	if r := explain.Explain(cfg, "h", out4); r.Verdict != explain.Allow || r.Decided.Rule != 1 {
		t.Errorf("explain, egress to the name's address: %s by %s", r.Verdict, r.Decided)
	}
	if r := explain.Explain(cfg, "h", in4); r.Verdict != explain.Deny {
		t.Errorf("explain, ingress from the name's address: %s by %s", r.Verdict, r.Decided)
	}
	out := strings.Join(rules(tbl, "pol/p/out"), "\n")
	if !strings.Contains(out, "ip daddr @"+withNames.Name+" counter accept") || !strings.Contains(out, "ip daddr @"+plain.Name+" counter jump") {
		t.Errorf("pol/p/out:\n%s", out)
	}
}
