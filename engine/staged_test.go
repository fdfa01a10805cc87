package engine

import (
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
)

// TestStagedNotes: a plan marks each staged policy, which the kernel holds
// nothing of, by what it would do.
func TestStagedNotes(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "s.hcl", Data: []byte(`
policy "web" {
  ingress { action = "allow" }
}
policy "web" {
  staged = true
  ingress { action = "deny" }
}
policy "new" {
  staged = true
  ingress { action = "deny" }
}
policy "old" {
  ingress { action = "allow" }
}
policy "old" {
  staged = "delete"
}
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := strings.Join(stagedNotes(res.Config), "\n")
	for _, want := range []string{`policy "web" would replace the enforced policy`, `policy "new" would be added`, `policy "old" would be deleted`} {
		if !strings.Contains(got, want) {
			t.Errorf("notes %q lack %q", got, want)
		}
	}
	if n := len(stagedNotes(res.Config.Enforced())); n != 0 {
		t.Errorf("%d notes without staged policies", n)
	}
}
