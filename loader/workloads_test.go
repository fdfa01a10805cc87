package loader_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
)

// TestWorkloadSettings: what each node sees of the workload fixtures,
// native and Calico, and the same after writing them out as HCL and YAML
// (convert) and loading them again.
func TestWorkloadSettings(t *testing.T) {
	type seen struct {
		prefixes []string
		action   config.ToHostAction
	}
	for file, want := range map[string]map[string]seen{
		"testdata/valid/workloads.hcl": {
			"any":   {[]string{"cali", "docker", "veth", "vnet"}, config.ToHostAccept}, // "cali0" adds nothing to "cali"
			"web-1": {[]string{"cali", "docker", "veth", "vnet"}, config.ToHostReturn},
			"web-2": {[]string{}, config.ToHostAccept},
		},
		"testdata/valid/workloads-calico.yaml": {
			"any":   {[]string{"cali", "tap", "vnet"}, config.ToHostReturn},
			"web-1": {[]string{"cali", "tap", "vnet"}, config.ToHostDrop},
			"web-2": {[]string{"veth"}, config.ToHostReturn},
		},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		res, diags := loader.Load([]loader.Source{{Path: file, Data: data}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		yml, err := loader.WriteYAML(res.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range []loader.Source{{Path: file, Data: data}, {Path: "out.hcl", Data: loader.WriteHCL(res.Config)}, {Path: "out.yaml", Data: yml}} {
			got, diags := loader.Load([]loader.Source{src})
			if diags.HasErrors() {
				t.Fatalf("%s (from %s): %v\n%s", src.Path, file, diags, src.Data)
			}
			for node, w := range want {
				eff := got.Config.ForHost(node).Workloads
				if !slices.Equal(eff.Prefixes, w.prefixes) || eff.Action() != w.action {
					t.Errorf("%s (from %s), node %s: prefixes %q, action %s; want %q, %s\n%s", src.Path, file, node, eff.Prefixes, eff.Action(), w.prefixes, w.action, src.Data)
				}
			}
		}
	}
}

// TestCalicoDefaultPrefix: a FelixConfiguration that sets
// defaultEndpointToHostAction and no interfacePrefix means Felix's
// default, "cali"; one that sets neither configures no workloads.
func TestCalicoDefaultPrefix(t *testing.T) {
	const doc = `apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  defaultEndpointToHostAction: Accept
`
	res, diags := loader.Load([]loader.Source{{Path: "felix.yaml", Data: []byte(doc)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if w := res.Config.ForHost("h").Workloads; !slices.Equal(w.Prefixes, []string{"cali"}) || w.Action() != config.ToHostAccept {
		t.Errorf("workloads %+v, want cali* accepted", w)
	}
	res, diags = loader.Load([]loader.Source{{Path: "felix.yaml", Data: []byte(strings.Replace(doc, "defaultEndpointToHostAction: Accept", "reportingInterval: 0s", 1))}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if w := res.Config.ForHost("h").Workloads; len(w.Prefixes) != 0 {
		t.Errorf("a FelixConfiguration without workload fields made workload interfaces %q", w.Prefixes)
	}
}

// TestGuideFelixConfiguration: the protect-hosts guide's
// FelixConfiguration loads with defaultEndpointToHostAction used (no
// longer among the fields ignored), and the one native file and Calico
// document that both set the general workloads are refused, naming both.
func TestGuideFelixConfiguration(t *testing.T) {
	const path = "../../shared/corpus/calico/05-protect-hosts-felixconfiguration.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, diags := loader.Load([]loader.Source{{Path: path, Data: data}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ignored := 0
	for _, d := range diags {
		if d.Summary == "FelixConfiguration fields ignored" {
			ignored++
			if strings.Contains(d.Detail, "defaultEndpointToHostAction;") || strings.Contains(d.Detail, "defaultEndpointToHostAction,") ||
				strings.Contains(d.Detail, "defaultEndpointToHostAction have") {
				t.Errorf("defaultEndpointToHostAction reported ignored: %s", d.Detail)
			}
			for _, f := range []string{"ipipEnabled", "logSeverityScreen", "reportingInterval"} {
				if !strings.Contains(d.Detail, f) {
					t.Errorf("%s not reported ignored: %s", f, d.Detail)
				}
			}
		}
	}
	if ignored != 1 {
		t.Errorf("%d \"fields ignored\" warnings, want 1 (for ipipEnabled, logSeverityScreen, reportingInterval)", ignored)
	}
	if w := res.Config.ForHost("my-host").Workloads; w.Action() != config.ToHostAccept || !slices.Equal(w.Prefixes, []string{"cali"}) {
		t.Errorf("workloads %+v, want cali* accepted", w)
	}

	_, diags = loader.Load([]loader.Source{{Path: path, Data: data}, {Path: "w.hcl", Data: []byte("workloads {\n  interface_prefixes = [\"veth\"]\n}\n")}})
	var dup *hcl.Diagnostic
	for _, d := range diags {
		if d.Summary == "Duplicate workloads" {
			dup = d
		}
	}
	if dup == nil || !strings.Contains(dup.Detail, "05-protect-hosts-felixconfiguration.yaml") || dup.Subject == nil || dup.Subject.Filename != "w.hcl" {
		t.Errorf("a workloads block beside the guide's FelixConfiguration: want a duplicate error naming both, got %v", diags)
	}
}

// TestTooManyPrefixes: more than MaxWorkloadPrefixes prefixes, natively or
// in Felix's comma-separated list, is an error (each is a rule in three
// base chains).
func TestTooManyPrefixes(t *testing.T) {
	var q, c []string
	for i := range loader.MaxWorkloadPrefixes + 1 {
		q = append(q, fmt.Sprintf("%q", fmt.Sprintf("p%d", i)))
		c = append(c, fmt.Sprintf("p%d", i))
	}
	for _, src := range []loader.Source{
		{Path: "w.hcl", Data: []byte("workloads {\n  interface_prefixes = [" + strings.Join(q, ", ") + "]\n}\n")},
		{Path: "f.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  interfacePrefix: " + strings.Join(c, ",") + "\n")},
	} {
		_, diags := loader.Load([]loader.Source{src})
		if !strings.Contains(diags.Error(), "Too many interface prefixes") {
			t.Errorf("%s: %v", src.Path, diags)
		}
	}
}
