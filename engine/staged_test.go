package engine

import (
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
)

// TestStagedNotes: a plan marks each staged policy, which decides no
// packet, by what it would do, and each endpoint of the host in audit
// mode.
func TestStagedNotes(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "s.hcl", Data: []byte(`
host_endpoint "eth0" {
  interface = "eth0"
  mode = "audit"
}
host_endpoint "other" {
  node = "elsewhere"
  interface = "eth1"
  mode = "audit"
}
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
	got := strings.Join(stagedNotes(res.Config, "h", true), "\n")
	for _, want := range []string{`policy "web" would replace the enforced policy`, `policy "new" would be added`, `policy "old" would be deleted`, `audit mode: host endpoint "eth0"`} {
		if !strings.Contains(got, want) {
			t.Errorf("notes %q lack %q", got, want)
		}
	}
	if uncounted := strings.Join(stagedNotes(res.Config, "h", false), "\n"); !strings.Contains(uncounted, "not counted on live traffic") || strings.Contains(uncounted, "drops --staged") {
		t.Errorf("notes of a staged view left out: %q", uncounted)
	}
	if strings.Contains(got, `"other"`) {
		t.Errorf("notes %q name another host's endpoint", got)
	}
	if n := len(stagedNotes(res.Config.Enforced(), "elsewhere", true)); n != 2 {
		t.Errorf("%d notes on host elsewhere without staged policies, want its 2 audit endpoints", n)
	}
}
