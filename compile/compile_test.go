package compile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

func compileHCL(t *testing.T, host, src string) (*ruleset.Table, hcl.Diagnostics) {
	t.Helper()
	res, diags := loader.Load([]loader.Source{{Path: "test.hcl", Data: []byte(src)}})
	if diags.HasErrors() {
		t.Fatalf("loading: %v", diags)
	}
	return Compile(res.Config, Options{HostName: host})
}

// checkRules fails t unless chain's rules in tbl are want.
func checkRules(t *testing.T, tbl *ruleset.Table, chain string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, rules(tbl, chain)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", chain, diff)
	}
}

// rules returns the rules of a chain as text, or nil when it is missing.
func rules(t *ruleset.Table, chain string) []string {
	c := t.Chain(chain)
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.String())
	}
	return out
}

func TestEndpointChainOrder(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host { labels = { role = "web" } }
host_endpoint "eth0" { interface = "eth0" }
policy "b" {
  ingress { action = "allow" }
}
policy "a" {
  ingress { action = "allow" }
}
policy "late" {
  order = 200
  ingress { action = "allow" }
}
policy "early" {
  order = 1.5
  ingress { action = "allow" }
}
policy "not-me" {
  selector = "role == 'db'"
  order    = 1
  ingress { action = "allow" }
}
policy "out-only" {
  egress { action = "allow" }
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Established traffic is accepted by the base chain, before dispatch.
	if diff := cmp.Diff([]string{"ct state established,related accept", "iifname vmap @hep-in"}, rules(tbl, ChainInput)); diff != "" {
		t.Errorf("input chain mismatch (-want +got):\n%s", diff)
	}
	want := []string{
		"icmpv6 type nd-router-solicit accept", // IPv6 neighbour discovery
		"icmpv6 type nd-router-advert accept",
		"icmpv6 type nd-neighbor-solicit accept",
		"icmpv6 type nd-neighbor-advert accept",
		"ct state invalid counter drop", // counted, never logged
		"jump failsafe-in",
		"jump hep/eth0/in/t/default",
		// No profile: default deny, logged (settings.drop_log is on by default).
		`limit rate 5/second log prefix "hostwall drop default-deny eth0 ingress" group 9631`,
		"counter drop",
	}
	if diff := cmp.Diff(want, rules(tbl, "hep/eth0/in")); diff != "" {
		t.Errorf("hep/eth0/in mismatch (-want +got):\n%s", diff)
	}
	wantTier := []string{
		"jump pol/early/in", // order 1.5
		"jump pol/late/in",  // order 200
		"jump pol/a/in",     // unset order sorts last, then by name
		"jump pol/b/in",
		`limit rate 5/second log prefix "hostwall drop end-of-tier default eth0 ingress" group 9631`,
		"counter drop", // end of tier
	}
	if diff := cmp.Diff(wantTier, rules(tbl, "hep/eth0/in/t/default")); diff != "" {
		t.Errorf("tier chain mismatch (-want +got):\n%s", diff)
	}
	wantOut := []string{"jump pol/out-only/out",
		`limit rate 5/second log prefix "hostwall drop end-of-tier default eth0 egress" group 9631`, "counter drop"}
	if diff := cmp.Diff(wantOut, rules(tbl, "hep/eth0/out/t/default")); diff != "" {
		t.Errorf("hep/eth0/out mismatch (-want +got):\n%s", diff)
	}
	if tbl.Chain("pol/not-me/in") != nil {
		t.Error("a policy whose selector does not match the endpoint got a chain")
	}
}

func TestEndpointsOfOtherNodesAreNotEnforced(t *testing.T) {
	src := `
host_endpoint "mine" {
  interface = "eth0"
  node      = "web-1"
}
host_endpoint "theirs" {
  interface = "eth1"
  node      = "db-1"
}
host_endpoint "anyone" { interface = "eth2" }
`
	tbl, _ := compileHCL(t, "web-1", src)
	var ifaces []string
	for _, e := range tbl.Set(MapIn).Elements {
		ifaces = append(ifaces, strings.TrimRight(e.From, "\x00")+"→"+e.Verdict.Chain)
	}
	want := []string{"eth0→hep/mine/in", "eth2→hep/anyone/in"}
	if diff := cmp.Diff(want, ifaces); diff != "" {
		t.Errorf("dispatch map mismatch (-want +got):\n%s", diff)
	}
	if tbl.Chain("hep/theirs/in") != nil {
		t.Error("an endpoint of another node got a chain")
	}
}

func TestSeveralEndpointsOnOneInterface(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host_endpoint "zeta" { interface = "eth0" }
host_endpoint "alpha" { interface = "eth0" }
`)
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || !strings.Contains(diags[0].Detail, `"alpha" applies`) {
		t.Errorf("want one warning naming alpha as the winner, got %v", diags)
	}
	if tbl.Chain("hep/alpha/in") == nil || tbl.Chain("hep/zeta/in") != nil {
		t.Error("the lexically smallest endpoint name must win")
	}
}

func TestRuleFamilies(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host_endpoint "eth0" { interface = "eth0" }
network_set "ns" {
  labels = { a = "b" }
  nets   = ["10.1.0.0/16", "10.1.2.0/24", "fd00::/8"]
}
policy "p" {
  ingress {
    action = "allow"
    source { nets = ["192.0.2.0/24"] }
  }
  ingress {
    action = "deny"
    protocol = "tcp"
    source { selector = "a == 'b'" }
    destination { ports = [22] }
  }
  ingress {
    action   = "allow"
    protocol = "icmpv6"
    source { nets = ["192.0.2.0/24"] }
  }
  ingress {
    action   = "allow"
    protocol = "udp"
    destination { ports = ["1000:2000"] }
  }
}
`)
	got := rules(tbl, "pol/p/in")
	sel4, sel6 := findSet(t, tbl, "sel-", "-4"), findSet(t, tbl, "sel-", "-6")
	nets4 := findSet(t, tbl, "nets-", "-4")
	want := []string{
		"ip saddr @" + nets4.Name + " counter accept",
		"ip saddr @" + sel4.Name + " tcp dport 22 counter jump " + tbl.Chain("pol/p/in").Rules[1].Verdict.Chain, // logs, then drops
		"ip6 saddr @" + sel6.Name + " tcp dport 22 counter jump " + tbl.Chain("pol/p/in").Rules[2].Verdict.Chain,
		"udp dport 1000-2000 counter accept",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pol/p/in mismatch (-want +got):\n%s", diff)
	}
	// Overlapping networks are merged: the kernel refuses overlapping intervals.
	if diff := cmp.Diff([]string{"10.1.0.0/16"}, elements(sel4)); diff != "" {
		t.Errorf("selector set mismatch (-want +got):\n%s", diff)
	}
	if got := summaries(diags); !cmp.Equal(got, []string{"Rule can never match", "Deny rule shadowed by a failsafe port"}) {
		t.Errorf("want warnings for the deny on tcp/22 and the icmpv6 rule with IPv4 networks, got %q", got)
	}
}

func TestFailsafe(t *testing.T) {
	tbl, _ := compileHCL(t, "h", `host_endpoint "eth0" { interface = "eth0" }`)
	fs := rules(tbl, FailsafeIn)
	if len(fs) != 3 || !strings.HasPrefix(fs[0], "tcp dport @ports-") || fs[1] != "udp dport 68 counter accept" ||
		!strings.HasPrefix(fs[2], "tcp sport @ports-") || !strings.HasSuffix(fs[2], " tcp flags ! syn counter accept") {
		t.Errorf("default inbound failsafe = %q", fs)
	}
	// The other direction's TCP ports by source port, without SYN: the
	// segments of failsafe connections that predate connection tracking.
	pickup := rules(tbl, FailsafeOut)
	if last := pickup[len(pickup)-1]; last != strings.Replace(fs[0], "dport", "sport", 1)[:len(fs[0])-len(" counter accept")]+" tcp flags ! syn counter accept" {
		t.Errorf("default outbound failsafe = %q; want the inbound TCP ports by source port, without SYN, last", pickup)
	}
	ports := tbl.Set(strings.TrimSuffix(strings.TrimPrefix(fs[0], "tcp dport @"), " counter accept"))
	want := []string{"22", "179", "2379-2380", "5473", "6443", "6666-6667"}
	if diff := cmp.Diff(want, elements(ports)); diff != "" {
		t.Errorf("Calico's default failsafe TCP ports mismatch (-want +got):\n%s", diff)
	}

	tbl, _ = compileHCL(t, "h", `
host_endpoint "eth0" { interface = "eth0" }
failsafe {
  inbound  = []
  outbound = ["udp:10.0.0.0/8:53"]
}`)
	if tbl.Chain(FailsafeIn) != nil || strings.Contains(strings.Join(rules(tbl, "hep/eth0/in"), "\n"), "failsafe") {
		t.Error("inbound = [] must disable the inbound failsafe")
	}
	out := rules(tbl, FailsafeOut)
	if len(out) != 1 || !strings.HasPrefix(out[0], "ip daddr @nets-") || !strings.HasSuffix(out[0], "udp dport 53 counter accept") {
		t.Errorf("outbound failsafe with a network = %q", out)
	}
}

func TestNoEndpointsEnforcesNothing(t *testing.T) {
	tbl, _ := compileHCL(t, "h", `
policy "p" {
  ingress { action = "deny" }
}`)
	if n := len(tbl.Set(MapIn).Elements) + len(tbl.Set(MapOut).Elements); n != 0 {
		t.Errorf("no host endpoint, yet %d interfaces are dispatched", n)
	}
	for _, c := range tbl.Chains {
		if c.Base != nil && c.Base.Policy != ruleset.PolicyAccept {
			t.Errorf("base chain %s has policy %s; interfaces without endpoints must pass", c.Name, c.Base.Policy)
		}
	}
}

func findSet(t *testing.T, tbl *ruleset.Table, prefix, suffix string) *ruleset.Set {
	t.Helper()
	for _, s := range tbl.Sets {
		if strings.HasPrefix(s.Name, prefix) && strings.HasSuffix(s.Name, suffix) {
			return s
		}
	}
	t.Fatalf("no set %s…%s in %v", prefix, suffix, tbl)
	return nil
}

func elements(s *ruleset.Set) []string {
	var out []string
	for _, e := range s.Elements {
		out = append(out, s.FormatElement(e))
	}
	return out
}

func summaries(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		out = append(out, d.Summary)
	}
	return out
}

// TestMatchesNothingWarns: what would silently match nothing is a
// warning — a port name no endpoint defines (with the name meant, when
// one is close), no host endpoint for this host, an empty configuration.
func TestMatchesNothingWarns(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"undefined port", `
host_endpoint "eth0" {
  interface = "eth0"
  ports     = [{ name = "https", protocol = "tcp", port = 443 }]
}
policy "p" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = ["htps"] }
  }
}`, `Undefined port name — Rule 1 of the ingress rules of policy "p" names port "htps" in its destination ports, and no host endpoint defines a port of that name: it matches nothing. Did you mean "https"?`},
		{"undefined excluded port", `
host_endpoint "eth0" { interface = "eth0" }
policy "p" {
  ingress {
    action      = "deny"
    protocol    = "tcp"
    source { not_ports = ["eighty"] }
  }
}`, `names port "eighty" in its source not_ports, and no host endpoint defines a port of that name: it excludes nothing.`},
		{"endpoints of other nodes", `
host_endpoint "a" {
  node      = "web-1"
  interface = "eth0"
}
host_endpoint "b" {
  node      = "web-2"
  interface = "eth0"
}`, `Nothing is filtered on this host — None of the 2 host endpoints is for host "h" (their nodes: "web-1", "web-2")`},
		{"no endpoints", `
policy "p" {
  ingress { action = "deny" }
}`, `Nothing is filtered on this host — The configuration has no host endpoint, so hostwall filters no traffic on host "h".`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := compileHCL(t, "h", tc.src)
			var got []string
			for _, d := range diags {
				got = append(got, d.Summary+" — "+d.Detail)
				if d.Severity != hcl.DiagWarning {
					t.Errorf("not a warning: %s", d.Error())
				}
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("diagnostics\n%s\nwant one containing\n%s", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}

// TestShadowWarning: a deny of a failsafe port by name is warned of, with
// advice that fits whether a failsafe block exists; the usual "allow ssh
// and https, deny the rest" is not.
func TestShadowWarning(t *testing.T) {
	const ep = "host_endpoint \"eth0\" { interface = \"eth0\" }\n"
	for _, tc := range []struct{ name, src, want string }{
		{"deny the rest", ep + `policy "p" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [22, 443] }
  }
  ingress { action = "deny" }
}`, ""},
		{"deny ssh, default failsafe", ep + `policy "p" {
  ingress {
    action      = "deny"
    protocol    = "tcp"
    destination { ports = [22] }
  }
}`, "denies port 22, which failsafe entry tcp:22 keeps open: failsafe ports are accepted before any policy. To close it, add a failsafe block"},
		{"deny ssh, failsafe block", ep + `failsafe {
  inbound  = ["tcp:22"]
  outbound = []
}
policy "p" {
  ingress {
    action      = "deny"
    protocol    = "tcp"
    destination { ports = [22] }
  }
}`, "To close it, remove the entry from the failsafe block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := compileHCL(t, "h", tc.src)
			var got []string
			for _, d := range diags {
				if d.Summary == "Deny rule shadowed by a failsafe port" {
					got = append(got, d.Detail)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("warned: %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("warnings %q; want one containing %q", got, tc.want)
			}
		})
	}
}
