package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
)

// TestNoWayInWildcardStandIn: the "*" endpoint is judged on an interface
// name no workload prefix takes in. With prefix "eth" the stand-in eth0
// met the workload action, and a configuration whose only way in for SSH
// is a policy of the "*" endpoint was refused on a host whose uplink is
// ens3 (found by a review).
func TestNoWayInWildcardStandIn(t *testing.T) {
	const base = `
host_endpoint "all" { interface = "*" }
failsafe {
  inbound = []
}
workloads {
  interface_prefixes = ["eth", "cali"]
}
`
	for policy, refused := range map[string]bool{
		"policy \"ssh\" {\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [22] }\n  }\n}\n": false,
		"policy \"web\" {\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [80] }\n  }\n}\n": true,
	} {
		res, diags := loader.Load([]loader.Source{{Path: "a.hcl", Data: []byte(base + policy)}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		err := noWayIn(res.Config, "h")
		if (err != nil) != refused || refused && !strings.Contains(err.Error(), "REFUSED") {
			t.Errorf("%s: noWayIn = %v, want refused %v", strings.SplitN(policy, "\n", 2)[0], err, refused)
		}
	}
	if got := wildcardStandIn(res0(t, base).ForHost("h").Workloads); got != "ens3" {
		t.Errorf("stand-in %q, want ens3 (eth0 is a workload interface)", got)
	}
}

func res0(t *testing.T, src string) *config.Config {
	t.Helper()
	res, diags := loader.Load([]loader.Source{{Path: "a.hcl", Data: []byte(src)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return res.Config
}

// TestNoWayInAudit: an endpoint in audit mode lets SSH in, but counts as a
// way in only when every endpoint of the host audits: beside an enforcing
// endpoint that closes SSH (which may be how SSH comes in), or with a
// ghost interface, it does not.
func TestNoWayInAudit(t *testing.T) {
	const web = "failsafe {\n  inbound = []\n  outbound = []\n}\npolicy \"web\" {\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [80] }\n  }\n}\n"
	for endpoints, refused := range map[string]bool{
		"host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  mode = \"audit\"\n}\n":                                                                          false,
		"host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  mode = \"audit\"\n}\nhost_endpoint \"eth1\" {\n  interface = \"eth1\"\n  mode = \"audit\"\n}\n": false,
		"host_endpoint \"eth0\" { interface = \"eth0\" }\nhost_endpoint \"eth1\" {\n  interface = \"eth1\"\n  mode = \"audit\"\n}\n":                         true,
		"host_endpoint \"eth0\" { interface = \"eth0\" }\nhost_endpoint \"ghost\" {\n  interface = \"nosuch0\"\n  mode = \"audit\"\n}\n":                     true,
	} {
		err := noWayIn(res0(t, web+endpoints), "h")
		if (err != nil) != refused {
			t.Errorf("%s: noWayIn = %v, want refused %v", endpoints, err, refused)
		}
	}
}

// TestCandidateSourcesBounded: a 60,000-network set offers the lockout
// check a few candidates, not 60,000 (each one a packet explained against
// the whole configuration: over a minute, found by review), and a set
// that lets SSH in still offers one that is let in.
func TestCandidateSourcesBounded(t *testing.T) {
	var big strings.Builder
	for i := range 60000 {
		fmt.Fprintf(&big, "%q, ", fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	cfg := res0(t, `
host_endpoint "eth0" { interface = "eth0" }
failsafe {
  inbound = []
}
network_set "blocked" {
  labels = { list = "blocked" }
  nets   = [`+big.String()+`]
}
network_set "bastions" {
  labels = { role = "bastion" }
  nets   = ["198.51.100.7/32"]
}
policy "block" {
  order = 1
  ingress {
    action = "deny"
    source { selector = "list == 'blocked'" }
  }
}
policy "ssh" {
  order = 2
  ingress {
    action   = "allow"
    protocol = "tcp"
    source { selector = "role == 'bastion'" }
    destination { ports = [22] }
  }
}
`)
	if n := len(candidateSources(cfg, "h")); n > 40 {
		t.Errorf("%d candidates for a 60,000-network set", n)
	}
	if err := noWayIn(cfg, "h"); err != nil {
		t.Errorf("SSH from the bastions' set: %v", err)
	}
}
