package loader

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

type validationCase struct {
	Kind  string          `json:"kind"`
	Value json.RawMessage `json:"value"`
	Valid bool            `json:"valid"`
	Note  string          `json:"note"`
	Error string          `json:"error"`
}

// wrapVector turns a vector's value into a Calico document hostwall reads:
// resources as they are, parts of resources inside a minimal resource.
func wrapVector(kind string, v json.RawMessage) string {
	res := func(kind, metaAndSpec string) string {
		return `{"apiVersion": "projectcalico.org/v3", "kind": "` + kind + `", ` + metaAndSpec + `}`
	}
	rule := func(r string) string {
		return res("GlobalNetworkPolicy", `"metadata": {"name": "v"}, "spec": {"ingress": [`+r+`]}`)
	}
	switch kind {
	case "GlobalNetworkPolicy", "HostEndpoint", "GlobalNetworkSet", "NetworkPolicy":
		var m map[string]json.RawMessage
		json.Unmarshal(v, &m)
		m["apiVersion"] = json.RawMessage(`"projectcalico.org/v3"`)
		// A NetworkPolicy is skipped in files; its rules are validated as
		// a global policy's.
		if kind == "NetworkPolicy" {
			kind = "GlobalNetworkPolicy"
		}
		m["kind"] = json.RawMessage(`"` + kind + `"`)
		if _, ok := m["metadata"]; !ok {
			m["metadata"] = json.RawMessage(`{"name": "v"}`)
		}
		out, _ := json.Marshal(m)
		return string(out)
	case "Rule":
		return rule(string(v))
	case "EntityRule":
		return rule(`{"action": "Allow", "source": ` + string(v) + `}`)
	case "ICMPFields":
		return rule(`{"action": "Allow", "protocol": "ICMP", "icmp": ` + string(v) + `}`)
	case "Protocol":
		return rule(`{"action": "Allow", "protocol": ` + string(v) + `}`)
	case "HTTPMatch":
		return rule(`{"action": "Allow", "http": ` + string(v) + `}`)
	case "ProtoPort":
		return res("FelixConfiguration", `"metadata": {"name": "default"}, "spec": {"failsafeInboundHostPorts": [`+string(v)+`]}`)
	case "HostEndpointSpec":
		return res("HostEndpoint", `"metadata": {"name": "v"}, "spec": `+string(v))
	case "GlobalNetworkSetSpec":
		return res("GlobalNetworkSet", `"metadata": {"name": "v"}, "spec": `+string(v))
	}
	return ""
}

// TestCalicoValidationVectors runs all of Calico's validation cases. An
// invalid resource must be refused. A valid one must be accepted, or
// refused only with "Not supported" errors (a Calico feature hostwall does
// not implement, said out loud — never a wrong refusal).
func TestCalicoValidationVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "corpus", "calico-vectors", "calico-validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []validationCase }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) != 226 {
		t.Fatalf("got %d cases, want 226", len(file.Cases))
	}
	unsupported := map[string]int{}
	for i, c := range file.Cases {
		doc := wrapVector(c.Kind, c.Value)
		if doc == "" {
			t.Errorf("case %d: no wrapping for kind %s", i, c.Kind)
			continue
		}
		_, diags := Load([]Source{{Path: "vector.yaml", Data: []byte(doc)}})
		var errs []string
		onlyUnsupported := true
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			errs = append(errs, d.Summary+": "+d.Detail)
			if !strings.HasPrefix(d.Summary, "Not supported") {
				onlyUnsupported = false
			}
		}
		switch {
		case !c.Valid && len(errs) == 0:
			t.Errorf("case %d (%s, %q): accepted, Calico refuses it (%s)\n%s", i, c.Kind, c.Note, c.Error, doc)
		case c.Valid && len(errs) > 0 && !onlyUnsupported:
			t.Errorf("case %d (%s, %q): refused, Calico accepts it:\n  %s\n%s", i, c.Kind, c.Note, strings.Join(errs, "\n  "), doc)
		case c.Valid && len(errs) > 0:
			unsupported[strings.SplitN(errs[0], ":", 3)[1]]++
		}
	}
	t.Logf("valid in Calico but not supported by hostwall (refused with a Not supported error): %v", unsupported)
}
