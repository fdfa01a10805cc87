package compile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTiersAndPass(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
settings { drop_log = false } # the drop log's rules: TestDropLog
host_endpoint "eth0" {
  interface = "eth0"
  labels    = { role = "web" }
  profiles  = ["projectcalico-default-allow"]
}
tier "security" {
  order = 200
}
tier "late" {
  order          = 2000000
  default_action = "pass"
}
policy "guard" {
  tier = "security"
  ingress {
    action   = "pass"
    protocol = "tcp"
    destination { ports = [80] }
  }
  ingress {
    action = "deny"
    source { nets = ["192.0.2.0/24"] }
  }
}
policy "web" {
  selector = "role == 'web'"
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [80] }
  }
}
policy "nothing-here" {
  tier     = "late"
  selector = "role == 'db'"
  ingress { action = "allow" }
}
policy "watch" {
  tier = "late"
  ingress { action = "log" }
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	check := func(chain string, want ...string) { t.Helper(); checkRules(t, tbl, chain, want...) }
	hep := rules(tbl, "hep/eth0/in")
	if diff := cmp.Diff([]string{"jump hep/eth0/in/t/security", "jump hep/eth0/in/t/default", "jump hep/eth0/in/t/late", "counter accept", "counter drop"}, hep[len(hep)-5:]); diff != "" {
		t.Errorf("endpoint chain tail mismatch (-want +got):\n%s", diff) // each tier in turn, then the default-allow profile, then default deny
	}
	// security (200) → default (1,000,000) → late (2,000,000; default action pass).
	check("hep/eth0/in/t/security",
		"jump pol/guard/in",
		"tcp dport 80 return", // the pass rule, re-checked: on to the next tier
		"counter drop")        // end of tier
	check("pol/guard/in",
		"tcp dport 80 counter return",
		"ip saddr @"+findSet(t, tbl, "nets-", "-4").Name+" counter drop")
	check("hep/eth0/in/t/default", "jump pol/web/in", "counter drop")
	check("hep/eth0/in/t/late", "jump pol/watch/in", "counter return") // default action pass, last tier: on to the profiles
	if tbl.Chain("pol/nothing-here/in") != nil {
		t.Error("a policy selecting no endpoint got a chain")
	}
}

func TestNotMatchesICMPAndIPVersion(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
settings { drop_log = false } # the drop log's rules: TestDropLog
host_endpoint "eth0" { interface = "eth0" }
policy "p" {
  ingress {
    action       = "allow"
    protocol     = "tcp"
    source {
      not_nets  = ["10.0.0.0/8"]
      not_ports = [1, "5:6"]
    }
  }
  ingress {
    action       = "deny"
    not_protocol = "udp"
    ip_version   = 6
  }
  ingress {
    action   = "allow"
    protocol = "icmp"
    icmp {
      type = 3
      code = 4
    }
  }
  ingress {
    action   = "allow"
    protocol = "icmpv6"
    not_icmp {
      type = 128
      code = 0
    }
  }
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nets := findSet(t, tbl, "nets-", "-4").Name
	ports := ""
	for _, s := range tbl.Sets {
		if strings.Join(elements(s), ",") == "1,5-6" {
			ports = s.Name
		}
	}
	want := []string{
		"ip saddr != @" + nets + " tcp sport != @" + ports + " counter accept",
		"meta nfproto ipv6 meta l4proto != udp counter drop",
		"icmp type destination-unreachable icmp code frag-needed counter accept",
		"icmpv6 type != echo-request counter accept", // not (type 128 and code 0) …
		"icmpv6 code != no-route counter accept",     // … is one or the other
	}
	if diff := cmp.Diff(want, rules(tbl, "pol/p/in")); diff != "" {
		t.Errorf("pol/p/in mismatch (-want +got):\n%s", diff)
	}
}

func TestWildcardEndpoint(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host_endpoint "all" { interface = "*" }
host_endpoint "eth0" { interface = "eth0" }
`)
	if len(diags) != 1 || !strings.Contains(diags[0].Summary, "lo included") {
		t.Errorf("want the loud warning about lo, got %v", diags)
	}
	if diff := cmp.Diff([]string{"ct state established,related accept", "iifname vmap @hep-in", "jump hep/all/in"}, rules(tbl, ChainInput)); diff != "" {
		t.Errorf("input chain mismatch (-want +got):\n%s", diff)
	}
	if n := len(tbl.Set(MapIn).Elements); n != 1 {
		t.Errorf("the named endpoint keeps its own map entry; map has %d", n)
	}
}

func TestFleetExpectedIPsFeedSelectors(t *testing.T) {
	tbl, diags := compileHCL(t, "web-1", `
host_endpoint "web-1" {
  node      = "web-1"
  interface = "eth0"
  labels    = { role = "web" }
}
host_endpoint "db-1" {
  node         = "db-1"
  interface    = "eth0"
  labels       = { role = "db" }
  expected_ips = ["10.0.2.10", "fd00::10"]
}
host_endpoint "db-2" {
  node      = "db-2"
  interface = "eth0"
  labels    = { role = "db" }
}
policy "to-db" {
  selector = "role == 'web'"
  egress {
    action      = "allow"
    destination { selector = "role == 'db'" }
  }
}
`)
	if got := summaries(diags); !cmp.Equal(got, []string{"Selector matches a host endpoint without expected IPs"}) || !strings.Contains(diags[0].Detail, `"db-2"`) {
		t.Errorf("want a warning naming db-2, got %v", diags)
	}
	if diff := cmp.Diff([]string{"10.0.2.10"}, elements(findSet(t, tbl, "sel-", "-4"))); diff != "" {
		t.Errorf("selector set mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fd00::10"}, elements(findSet(t, tbl, "sel-", "-6"))); diff != "" {
		t.Errorf("selector set mismatch (-want +got):\n%s", diff)
	}
	if tbl.Chain("hep/db-1/out") != nil {
		t.Error("another node's endpoint is enforced here")
	}
}

func TestUnknownProfileDenies(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host_endpoint "eth0" {
  interface = "eth0"
  profiles  = ["kns.default"]
}
`)
	if got := summaries(diags); !cmp.Equal(got, []string{"Unknown profile denies"}) {
		t.Errorf("diagnostics %q", got)
	}
	if r := rules(tbl, "hep/eth0/in"); r[len(r)-1] != "counter drop" || strings.Contains(strings.Join(r, "\n"), "accept\n") && strings.HasSuffix(r[len(r)-2], "counter accept") {
		t.Errorf("an unknown profile must not allow: %q", r)
	}
}

func TestNeighborDiscoverySetting(t *testing.T) {
	tbl, _ := compileHCL(t, "h", `
host_endpoint "eth0" { interface = "eth0" }
settings {
  allow_ipv6_neighbor_discovery = false
}
`)
	if strings.Contains(strings.Join(rules(tbl, "hep/eth0/in"), "\n"), "icmpv6") {
		t.Error("allow_ipv6_neighbor_discovery = false must restore Calico's behaviour")
	}
}
