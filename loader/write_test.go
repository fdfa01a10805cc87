package loader_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
)

// TestConvertRoundTrip writes every example, valid fixture and valid Calico
// corpus file as HCL and as YAML, loads the result, and checks that it
// compiles to exactly the same table.
func TestConvertRoundTrip(t *testing.T) {
	var inputs [][]string
	dirs, _ := filepath.Glob("../examples/*")
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.hcl"))
		inputs = append(inputs, files)
	}
	fixtures, _ := filepath.Glob("testdata/valid/*")
	for _, f := range fixtures {
		inputs = append(inputs, []string{f})
	}
	corpus, _ := filepath.Glob("../../shared/corpus/calico/*.yaml")
	for _, f := range corpus {
		inputs = append(inputs, []string{f})
	}
	tested := 0
	for _, files := range inputs {
		var srcs []loader.Source
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			srcs = append(srcs, loader.Source{Path: f, Data: data})
		}
		res, diags := loader.Load(srcs)
		if diags.HasErrors() {
			continue // invalid corpus files and pending features
		}
		tested++
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			want := compiled(t, srcs)
			yml, err := loader.WriteYAML(res.Config)
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []loader.Source{{Path: "out.hcl", Data: loader.WriteHCL(res.Config)}, {Path: "out.yaml", Data: yml}} {
				if _, diags := loader.Load([]loader.Source{out}); diags.HasErrors() {
					t.Fatalf("%s does not load: %v\n%s", out.Path, diags, out.Data)
				}
				if diff := cmp.Diff(want, compiled(t, []loader.Source{out})); diff != "" {
					t.Errorf("%s compiles differently (-original +converted):\n%s\n%s", out.Path, diff, out.Data)
				}
			}
		})
	}
	if tested < 15 {
		t.Errorf("only %d inputs round-tripped", tested)
	}
}

// compiled loads srcs and compiles the configuration, checking that
// compiling leaves it as it was: the agent's loads share their objects
// (loader.Memo), so compiling may only read them. The configuration as it
// was is a second load of the same files.
func compiled(t *testing.T, srcs []loader.Source) string {
	t.Helper()
	load := func() *config.Config {
		t.Helper()
		res, diags := loader.Load(srcs)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return res.Config
	}
	cfg, before := load(), load()
	host := "myhost"
	if cfg.Host != nil && cfg.Host.Name != "" {
		host = cfg.Host.Name
	}
	tbl, diags := compile.Compile(cfg, compile.Options{HostName: host})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if d := cmp.Diff(before, cfg, cmp.Comparer(func(a, b *config.Selector) bool {
		return a == nil && b == nil || a != nil && b != nil && a.String() == b.String()
	}),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("compiling changed the configuration (-before +after):\n%s", d)
	}
	return tbl.String()
}
