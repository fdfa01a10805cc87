package loader

import (
	"fmt"
	"strings"
	"testing"
)

// TestCalicoAsCalicoctlReads: field names in any case, and booleans and
// numbers as label values, load as calicoctl reads them (encoding/json
// matches keys case-insensitively; a string field takes a scalar's text);
// a skipped kind written so does not fail the directory.
func TestCalicoAsCalicoctlReads(t *testing.T) {
	src := `apiVersion: projectcalico.org/v3
Kind: HostEndpoint
Metadata:
  Name: web-eth0
  Labels:
    apply-dos-mitigation: true
    rack: 10
spec:
  Node: web-1
  InterfaceName: eth0
---
APIVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: dos
Spec:
  Order: 5
  Selector: apply-dos-mitigation == 'true' && rack == '10'
  Ingress:
  - Action: Deny
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
Metadata:
  name: skipped
  namespace: default
`
	res, diags := Load([]Source{{Path: "calico.yaml", Data: []byte(src)}})
	if diags.HasErrors() {
		t.Fatalf("%v", diags)
	}
	cfg := res.Config
	if len(cfg.Endpoints) != 1 || cfg.Endpoints[0].Labels["apply-dos-mitigation"] != "true" || cfg.Endpoints[0].Labels["rack"] != "10" || cfg.Endpoints[0].Interface != "eth0" {
		t.Fatalf("endpoints %+v", cfg.Endpoints)
	}
	if len(cfg.Policies) != 1 || cfg.Policies[0].Order == nil || *cfg.Policies[0].Order != 5 || !cfg.Policies[0].Selector.Matches(cfg.Endpoints[0].Labels) {
		t.Fatalf("policies %+v", cfg.Policies)
	}
	// A number not written as it is read is read all the same, with a
	// warning naming both.
	_, diags = Load([]Source{{Path: "n.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: e\n  labels:\n    ratio: 1.50\nspec:\n  node: n\n  interfaceName: eth0\n")}})
	if diags.HasErrors() || !strings.Contains(diags.Error(), `Label "ratio" is written 1.50 and read as "1.5"`) {
		t.Errorf("ratio: 1.50: %v", diags)
	}
	// Both spellings of one field are one field given twice.
	_, diags = Load([]Source{{Path: "twice.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: t\nspec:\n  order: 1\n  Order: 2\n")}})
	if !strings.Contains(diags.Error(), `"order" appears twice`) {
		t.Errorf("order and Order: %v", diags)
	}
}

// TestLabelValueMessages: outside Calico resources a label value must be
// a string, and the message says how in the file's own syntax, with the
// value; invalid UTF-8 is refused in YAML as in HCL.
func TestLabelValueMessages(t *testing.T) {
	for _, tc := range []struct{ path, src, want string }{
		{"a.hcl", "host_endpoint \"e\" {\n  interface = \"eth0\"\n  labels = { dos = true }\n}\n", `Label "dos" has the value true, which is not a string; quote it, as in dos = "true".`},
		{"a.yaml", "host_endpoint:\n  e:\n    interface: eth0\n    labels: {rack: 10}\n", `Label "rack" has the value 10, which is not a string; quote it, as in rack: "10".`},
		{"b.yaml", "host_endpoint:\n  e:\n    interface: eth0\n    labels: {rack: \"a\xffb\"}\n", `b.yaml:4:22: Not UTF-8 — The byte 0xff here is not UTF-8`},
		{"c.yaml", "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: e\n  labels:\n    role: web\n    nothing: null\n    list: [a, b]\n    map: {a: b}\nspec:\n  node: n\n  interfaceName: eth0\n",
			`c.yaml:8:11: Label value must be a string — Label "list" has a list, not a string value.`},
		{"c.yaml", "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: e\n  labels:\n    role: web\n    nothing: null\n    list: [a, b]\n    map: {a: b}\nspec:\n  node: n\n  interfaceName: eth0\n",
			`c.yaml:9:10: Label value must be a string — Label "map" has a mapping, not a string value.`},
		{"h.hcl", "host_endpoint \"e\" {\n  interface = \"eth0\"\n  labels = {\n    role = \"web\"\n    dos  = true\n  }\n}\n", `h.hcl:5:12: Label value must be a string — Label "dos" has the value true`},
		{"bom.yaml", "\uFEFFhost_endpoint:\n  e:\n    interface: eth0\n    labels: {rack: 10}\n", `bom.yaml:4:`},
	} {
		_, diags := Load([]Source{{Path: tc.path, Data: []byte(tc.src)}})
		var text []string
		for _, d := range diags {
			text = append(text, fmt.Sprintf("%s:%d:%d: %s — %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary, d.Detail))
		}
		if !strings.Contains(strings.Join(text, "\n"), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.path, diags, tc.want)
		}
	}
}

// TestDidYouMeanValues: a misspelt value is answered with the one meant,
// in the file's own spelling.
func TestDidYouMeanValues(t *testing.T) {
	for _, tc := range []struct{ path, src, want string }{
		{"a.hcl", "policy \"p\" {\n  ingress { action = \"alow\" }\n}\n", `action "alow" is not one of "allow", "deny", "log", "pass". Did you mean "allow"?`},
		{"a.hcl", "policy \"p\" {\n  ingress {\n    action   = \"allow\"\n    protocol = \"tpc\"\n  }\n}\n", `Did you mean "tcp"?`},
		{"c.yaml", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: p\nspec:\n  ingress:\n  - action: allow\n", `action "allow" is not Allow, Deny, Log or Pass (exact case). Did you mean "Allow"?`},
		{"n.yaml", "policy:\n  p:\n    ingres:\n      - action: allow\n", `The key "ingres" is not expected here; this mapping takes`},
		{"n.yaml", "policy:\n  p:\n    ingres:\n      - action: allow\n", `Did you mean "ingress"?`},
	} {
		_, diags := Load([]Source{{Path: tc.path, Data: []byte(tc.src)}})
		if !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.path, diags, tc.want)
		}
	}
}

// TestValueMessages: the wrong kind of value, a number out of range and a
// bad network are told with the value, in the file's syntax, without Go's
// words.
func TestValueMessages(t *testing.T) {
	for _, tc := range []struct{ path, src, want string }{
		{"a.yaml", "policy:\n  p:\n    order: first\n", `"order" must be a number, not the string "first"; such as order: 100.`},
		{"a.hcl", "policy \"p\" {\n  order = \"first\"\n}\n", `"order" must be a number, not the string "first"; such as order = 100.`},
		{"a.hcl", "policy \"p\" {\n  order = 1e400\n}\n", `"order" is 1e+400, beyond what a number here can be`},
		{"a.hcl", "network_set \"n\" {\n  nets = [\"10.0.0.0/33\"]\n}\n", `"10.0.0.0/33" is not a valid CIDR: /33 is beyond the 32 bits of an IPv4 address`},
		{"a.hcl", "network_set \"n\" {\n  nets = [\"10.0.0.0/x\"]\n}\n", `the prefix length "x" is not a whole number`},
		{"a.hcl", "network_set \"n\" {\n  nets = [\"10.0.0.300/8\"]\n}\n", `"10.0.0.300" is not an IP address`},
	} {
		_, diags := Load([]Source{{Path: tc.path, Data: []byte(tc.src)}})
		if !strings.Contains(diags.Error(), tc.want) || strings.Contains(diags.Error(), "netip") || strings.Contains(diags.Error(), "cty") {
			t.Errorf("%s: %v\nwant %s", tc.path, diags, tc.want)
		}
	}
}
