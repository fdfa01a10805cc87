// Package fuzz holds fuzz targets that span packages: any input, through
// loading and compiling, must give diagnostics, never a panic.
package fuzz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
)

// FuzzLoadCompileHCL feeds arbitrary bytes as a policy file through the
// loader, the compiler and the planner. The seeds are the loader fixtures
// and the examples; `go test` runs them, `go test -fuzz` explores.
func FuzzLoadCompileHCL(f *testing.F) {
	fuzzLoadCompile(f, "fuzz.hcl", "../../loader/testdata/*/*.hcl", "../../examples/*/*.hcl")
}

// FuzzLoadCompileYAML does the same for YAML files: native YAML and Calico
// resources, seeded with the loader fixtures and the Calico corpus.
func FuzzLoadCompileYAML(f *testing.F) {
	fuzzLoadCompile(f, "fuzz.yaml", "../../loader/testdata/*/*.yaml", "../../../shared/corpus/calico/*.yaml")
}

func fuzzLoadCompile(f *testing.F, name string, seeds ...string) {
	for _, pattern := range seeds {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, diags := loader.Load([]loader.Source{{Path: name, Data: data}})
		if res == nil || res.Config == nil {
			t.Fatalf("Load returned no result (diags: %v)", diags)
		}
		if diags.HasErrors() {
			return
		}
		desired, diags := compile.Compile(res.Config, compile.Options{HostName: "myhost"})
		if diags.HasErrors() {
			return
		}
		if p := planner.Diff(desired, nil); p.Empty() {
			t.Fatal("a plan against an empty kernel must create the table")
		}
	})
}
