package compile

import (
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
)

// TestNodeFailsafe: a per-node override (Calico's FelixConfiguration
// "node.<name>", or a failsafe block with node) replaces that node's lists
// it names, and only there.
func TestNodeFailsafe(t *testing.T) {
	res, diags := loader.Load([]loader.Source{
		{Path: "a.hcl", Data: []byte("host_endpoint \"e\" { interface = \"eth0\" }\nfailsafe {\n  inbound = [\"tcp:22\"]\n}\n")},
		{Path: "b.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: node.web-1\nspec:\n  failsafeInboundHostPorts:\n  - {protocol: TCP, port: 2222}\n")},
		{Path: "c.hcl", Data: []byte("failsafe {\n  node = \"db-1\"\n  outbound = []\n}\n")},
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Each direction also takes the other's TCP ports by source port,
	// without SYN (failsafeChain).
	for host, want := range map[string][2]string{
		"web-1": {"tcp dport 2222 counter accept\ntcp sport @ports-4usnzaa2 tcp flags ! syn counter accept",
			"udp dport @ports-2geynfbx counter accept\ntcp dport @ports-4usnzaa2 counter accept\ntcp sport 2222 tcp flags ! syn counter accept"},
		"db-1": {"tcp dport 22 counter accept", "tcp sport 22 tcp flags ! syn counter accept"},
		"other": {"tcp dport 22 counter accept\ntcp sport @ports-4usnzaa2 tcp flags ! syn counter accept",
			"udp dport @ports-2geynfbx counter accept\ntcp dport @ports-4usnzaa2 counter accept\ntcp sport 22 tcp flags ! syn counter accept"},
	} {
		tbl, diags := Compile(res.Config, Options{HostName: host})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		in := strings.Join(rules(tbl, FailsafeIn), "\n")
		out := strings.Join(rules(tbl, FailsafeOut), "\n")
		if in != want[0] || out != want[1] {
			t.Errorf("host %s: failsafe in %q, out %q; want in %q, out %q", host, in, out, want[0], want[1])
		}
	}
}
