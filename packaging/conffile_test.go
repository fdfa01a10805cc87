package packaging_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
)

// TestDefaultConfiguration: the installed configuration enforces nothing
// (no host endpoint), and its commented example, uncommented, is valid and
// protects eth0.
func TestDefaultConfiguration(t *testing.T) {
	data, err := os.ReadFile("etc/hostwall.hcl")
	if err != nil {
		t.Fatal(err)
	}
	load := func(src string) int {
		t.Helper()
		res, diags := loader.Load([]loader.Source{{Path: "hostwall.hcl", Data: []byte(src)}})
		if diags.HasErrors() {
			t.Fatalf("does not load: %v\n%s", diags, src)
		}
		if _, diags := compile.Compile(res.Config, compile.Options{HostName: "h"}); diags.HasErrors() {
			t.Fatalf("does not compile: %v", diags)
		}
		return len(res.Config.Endpoints)
	}
	if n := load(string(data)); n != 0 {
		t.Errorf("the default configuration has %d host endpoints; it must enforce nothing", n)
	}
	// The example: the commented lines from `host_endpoint` on.
	i := strings.Index(string(data), "# host_endpoint")
	if i < 0 {
		t.Fatal("no commented example")
	}
	var example []string
	for _, l := range strings.Split(string(data[i:]), "\n") {
		example = append(example, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
	}
	if n := load(strings.Join(example, "\n")); n != 1 {
		t.Errorf("the uncommented example has %d host endpoints, want 1", n)
	}
}
