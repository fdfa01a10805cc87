package compile

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/loader"
)

const wildcardBase = `
settings { drop_log = false } # the drop log's rules: TestDropLog
host_endpoint "all" { interface = "*" }
host_endpoint "eth0" { interface = "eth0" }
policy "p" {
  apply_on_forward = true
  pre_dnat         = true
  ingress { action = "deny" }
}
policy "routed" {
  apply_on_forward = true
  ingress { action = "allow" }
}
`

// TestWorkloadRules: with workload interfaces, the input hook sends what
// arrives on them to workload-to-host after the endpoint map and before the
// wildcard endpoint; output and pre-DNAT let them by at the same place;
// the chain ends in the configured action.
func TestWorkloadRules(t *testing.T) {
	for act, end := range map[string]string{"": "counter drop", "drop": "counter drop", "accept": "counter accept", "return": "return"} {
		w := "workloads {\n  interface_prefixes = [\"veth\", \"cali\"]\n"
		if act != "" {
			w += "  to_host_action = \"" + act + "\"\n"
		}
		tbl, diags := compileHCL(t, "h", wildcardBase+w+"}\n")
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if !strings.Contains(diagText(diags), "Pre-DNAT policies do not see workload traffic") {
			t.Errorf("no warning that the wildcard's pre-DNAT policies skip workload traffic: %v", diags)
		}
		for chain, want := range map[string][]string{
			ChainInput: {"ct state established,related accept", "iifname vmap @hep-in",
				`iifname "cali*" jump workload-to-host`, `iifname "veth*" jump workload-to-host`, "jump hep/all/in"},
			ChainOutput: {"ct state established,related accept", "oifname vmap @hep-out",
				`oifname "cali*" accept`, `oifname "veth*" accept`, "jump hep/all/out"},
			ChainManglePrerouting: {"iifname vmap @hep-pre-in", `iifname "cali*" accept`, `iifname "veth*" accept`, "goto hep/all/pre-in"},
			ChainWorkloadToHost: {"icmpv6 type mld-listener-query accept", "icmpv6 type mld-listener-report accept",
				"icmpv6 type mld-listener-done accept", "icmpv6 type nd-router-solicit accept", "icmpv6 type nd-neighbor-solicit accept",
				"icmpv6 type nd-neighbor-advert accept", "ct state invalid drop", end},
		} {
			if got := rules(tbl, chain); !slices.Equal(got, want) {
				t.Errorf("action %q, chain %s:\n got %q\nwant %q", act, chain, got, want)
			}
		}
		// The forward hook is not changed: what workloads route is
		// forward policies' business.
		if got := rules(tbl, ChainFwdIn); !slices.Equal(got, []string{"iifname vmap @hep-fwd-in", "goto hep/all/fwd-in"}) {
			t.Errorf("fwd-in %q", got)
		}
		if c := tbl.Chain(ChainWorkloadToHost); c.Owner != OwnerWorkloads || !strings.Contains(c.Comment, "cali*, veth*") {
			t.Errorf("workload-to-host owner %q, comment %q", c.Owner, c.Comment)
		}
	}
}

// TestNoWorkloadsNoChange: without workload interfaces (no block, or an
// empty list) the table is what it was before workloads existed.
func TestNoWorkloadsNoChange(t *testing.T) {
	before, diags := compileHCL(t, "h", wildcardBase)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	after, diags := compileHCL(t, "h", wildcardBase+"workloads {\n  interface_prefixes = []\n  to_host_action = \"accept\"\n}\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if before.String() != after.String() {
		t.Errorf("an empty workloads block changed the table:\n%s\nvs\n%s", before, after)
	}
	if before.Chain(ChainWorkloadToHost) != nil || strings.Contains(before.String(), `*"`) {
		t.Errorf("workload objects without workloads:\n%s", before)
	}
}

// TestEndpointOnWorkloadInterface: a host endpoint of this host on a
// workload interface is an error naming both, in the files' own terms; an
// endpoint of another node is that node's business.
func TestEndpointOnWorkloadInterface(t *testing.T) {
	for _, tc := range []struct{ files map[string]string }{
		{map[string]string{"a.hcl": "host_endpoint \"c\" { interface = \"cali7\" }\nworkloads {\n  interface_prefixes = [\"cali\"]\n}\n"}},
		{map[string]string{
			"hep.yaml":   "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: c\nspec:\n  node: h\n  interfaceName: tap0\n",
			"felix.yaml": "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  interfacePrefix: tap\n",
		}},
	} {
		var srcs []loader.Source
		for p, d := range tc.files {
			srcs = append(srcs, loader.Source{Path: p, Data: []byte(d)})
		}
		res, diags := loader.Load(srcs)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		tbl, diags := Compile(res.Config, Options{HostName: "h"})
		if !diags.HasErrors() || tbl != nil {
			t.Fatalf("%v: compiled", tc.files)
		}
		msg := diagText(diags)
		calico := len(tc.files) == 2
		for _, want := range []string{"Host endpoint on a workload interface", map[bool]string{false: `interface "cali7"`, true: `spec.interfaceName "tap0"`}[calico],
			map[bool]string{false: "interface_prefixes, at a.hcl:2", true: "interfacePrefix, at felix.yaml:4"}[calico]} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if _, diags := Compile(res.Config, Options{HostName: "other"}); diags.HasErrors() && strings.Contains(tc.files["hep.yaml"], "node: h") {
			t.Errorf("another node's endpoint refused: %v", diags)
		}
	}
}

// TestWorkloadErrorNamesTheSource: the error names where the prefix comes
// from — a node's override, or Felix's default "cali" that an action alone
// brings in (with what to do about each).
func TestWorkloadErrorNamesTheSource(t *testing.T) {
	for _, tc := range []struct {
		files map[string]string
		want  []string
	}{
		{map[string]string{"a.hcl": "host_endpoint \"e\" { interface = \"eth0\" }\nworkloads {\n  interface_prefixes = [\"cali\"]\n}\nworkloads {\n  node = \"h\"\n  interface_prefixes = [\"eth\"]\n}\n"},
			[]string{"interface_prefixes, at a.hcl:5", `take "eth" out of interface_prefixes`}},
		{map[string]string{
			"hep.yaml":   "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: c\nspec:\n  node: h\n  interfaceName: cali7\n",
			"felix.yaml": "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  defaultEndpointToHostAction: Accept\n",
		}, []string{"Felix's default interfacePrefix", "felix.yaml:4", "set interfacePrefix to the prefixes of your workload interfaces"}},
	} {
		var srcs []loader.Source
		for p, d := range tc.files {
			srcs = append(srcs, loader.Source{Path: p, Data: []byte(d)})
		}
		res, diags := loader.Load(srcs)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		_, diags = Compile(res.Config, Options{HostName: "h"})
		for _, w := range tc.want {
			if !strings.Contains(diagText(diags), w) {
				t.Errorf("%v: %q does not say %q", tc.files, diagText(diags), w)
			}
		}
	}
}

// TestNodeWorkloads: a node's override changes that node only.
func TestNodeWorkloads(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "a.hcl", Data: []byte(wildcardBase +
		"workloads {\n  interface_prefixes = [\"cali\"]\n}\nworkloads {\n  node = \"n1\"\n  to_host_action = \"accept\"\n}\nworkloads {\n  node = \"n2\"\n  interface_prefixes = []\n}\n")}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for host, want := range map[string]string{"other": "counter drop", "n1": "counter accept", "n2": ""} {
		tbl, diags := Compile(res.Config, Options{HostName: host})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		got := ""
		if r := rules(tbl, ChainWorkloadToHost); len(r) > 0 {
			got = r[len(r)-1]
		}
		if got != want {
			t.Errorf("host %s: workload-to-host ends %q, want %q", host, got, want)
		}
	}
}

// TestWorkloadActionWithoutInterfaces warns of a native node override that
// sets an action where no prefix names a workload interface.
func TestWorkloadActionWithoutInterfaces(t *testing.T) {
	_, diags := compileHCL(t, "n1", "host_endpoint \"e\" { interface = \"eth0\" }\nworkloads {\n  node = \"n1\"\n  to_host_action = \"accept\"\n}\n")
	if !strings.Contains(diagText(diags), "Workload action without workload interfaces") {
		t.Errorf("no warning: %v", diags)
	}
}

// diagText is every diagnostic, one per line.
func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Error() + "\n")
	}
	return b.String()
}

// TestEndpointWithoutInterfaceName: Calico's host endpoint with
// expectedIPs alone is refused on its own host (hostwall does not find
// interfaces by address yet), and is only labels and addresses to the
// others — a fleet's datastore holds every host's endpoints, and one host's
// must not stop the others.
func TestEndpointWithoutInterfaceName(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "f.yaml", Data: []byte(`apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: db-1
  labels: {role: db}
spec:
  node: db-1
  expectedIPs: [10.0.0.21]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: web-1
spec:
  node: web-1
  interfaceName: eth0
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: from-db
spec:
  ingress: [{action: Allow, source: {selector: role == 'db'}}]
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, diags := Compile(res.Config, Options{HostName: "web-1"}); diags.HasErrors() {
		t.Errorf("on web-1: %v", diags)
	}
	_, diags = Compile(res.Config, Options{HostName: "db-1"})
	if errs := diags.Errs(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "without interfaceName") || !strings.Contains(errs[0].Error(), "f.yaml:4") {
		t.Errorf("on db-1: %v", diags)
	}
}
