package loader

import (
	"slices"
	"strings"
	"testing"
)

// TestDomains: domain names on a rule's remote side, in HCL and in
// Calico's YAML (destination.domains of egress rules): exact names, kept
// canonical; refused with file:line:col where they cannot stand — a
// wildcard, this host's side, beside nets or a selector, not a name.
func TestDomains(t *testing.T) {
	res, diags := Load([]Source{{Path: "d.hcl", Data: []byte(`
policy "out" {
  egress {
    action = "allow"
    protocol = "tcp"
    destination {
      domains = ["API.example.com.", "api.example.com", "mirror.example.org"]
      ports = [443]
    }
  }
  ingress {
    action = "allow"
    source { domains = ["monitor.example.net"] }
  }
}
`)}, {Path: "c.yaml", Data: []byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: calico-out
spec:
  types: [Egress]
  egress:
    - action: Allow
      destination:
        domains: [updates.example.com]
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got, want := res.Config.Domains(), []string{"api.example.com", "mirror.example.org", "monitor.example.net", "updates.example.com"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}
	// The round trip keeps them.
	back, diags := Load([]Source{{Path: "w.hcl", Data: WriteHCL(res.Config)}})
	if diags.HasErrors() || !slices.Equal(back.Config.Domains(), res.Config.Domains()) {
		t.Errorf("convert: %v, %q", diags, back.Config.Domains())
	}

	for name, c := range map[string]struct{ src, want, at string }{
		"wildcard": {"policy \"p\" {\n  egress {\n    action = \"allow\"\n    destination { domains = [\"*.example.com\"] }\n  }\n}\n",
			"needs DNS snooping", "x.hcl:4,30"},
		"this host's side": {"policy \"p\" {\n  egress {\n    action = \"allow\"\n    source { domains = [\"a.example.com\"] }\n  }\n}\n",
			"An egress rule's source is this host", "x.hcl:4,14"},
		"beside nets": {"policy \"p\" {\n  egress {\n    action = \"allow\"\n    destination {\n      nets = [\"192.0.2.0/24\"]\n      domains = [\"a.example.com\"]\n    }\n  }\n}\n",
			"cannot stand beside nets", "x.hcl:6,7"},
		"a number": {"policy \"p\" {\n  egress {\n    action = \"allow\"\n    destination { domains = [1] }\n  }\n}\n",
			"holds names as strings", "x.hcl:4,30"},
		"one label": {"policy \"p\" {\n  egress {\n    action = \"allow\"\n    destination { domains = [\"intranet\"] }\n  }\n}\n",
			"not a fully qualified name", "x.hcl:4,30"},
	} {
		_, diags := Load([]Source{{Path: "x.hcl", Data: []byte(c.src)}})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) || !strings.Contains(diags.Error(), c.at) {
			t.Errorf("%s: %v, want an error at %s saying %q", name, diags, c.at, c.want)
		}
	}
	_, diags = Load([]Source{{Path: "i.yaml", Data: []byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: p
spec:
  ingress:
    - action: Allow
      destination:
        domains: [a.example.com]
`)}})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "An ingress rule's destination is this host") || !strings.Contains(diags.Error(), "i.yaml:9,") {
		t.Errorf("Calico domains on an ingress rule's destination: %v", diags)
	}
}
