package loader

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadHCL checks that no input makes the loader panic. The seeds are the
// fixtures; `go test` runs them, `go test -fuzz FuzzLoadHCL` explores.
func FuzzLoadHCL(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*/*.hcl")
	more, _ := filepath.Glob("../examples/*/*.hcl")
	for _, p := range append(paths, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, diags := Load([]Source{{Path: "fuzz.hcl", Data: data}})
		if res == nil || res.Config == nil {
			t.Fatalf("Load returned no result (diags: %v)", diags)
		}
	})
}
