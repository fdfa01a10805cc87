package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNativeYAMLMatchesHCL: the quickstart written in native YAML loads to
// the same configuration as the HCL files.
func TestNativeYAMLMatchesHCL(t *testing.T) {
	hclRes, diags := LoadDir("../examples/quickstart", DirOptions{InsecureSkipPerms: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "native.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yamlRes, diags := Load([]Source{{Path: "native.yaml", Data: data}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Positions differ by nature; everything else must not.
	if diff := cmp.Diff(hclRes.Config, yamlRes.Config, ignoreRanges()); diff != "" {
		t.Errorf("native YAML and HCL differ (-hcl +yaml):\n%s", diff)
	}
}
