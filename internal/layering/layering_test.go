// Package layering holds a test of the dependency direction between
// hostwall's packages (docs/design.md).
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// netlinkCode is what only package nft may depend on.
var netlinkCode = []string{"github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/florianl/go-nflog"}

func TestPurePackagesHaveNoNetlink(t *testing.T) {
	for _, pkg := range []string{"config", "loader", "compile", "ruleset", "planner", "views", "engine", "agent", "observe", "metrics"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/hostwall/hostwall/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range netlinkCode {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("package %s depends on %s; only package nft may talk netlink", pkg, dep)
				}
			}
		}
	}
}

func TestRulesetIsStdlibOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/hostwall/hostwall/ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/hostwall/hostwall/ruleset" {
		t.Errorf("ruleset must import only the standard library, imports %v", deps)
	}
}

// TestFrontDoorsHoldNoTransaction: the CLI and the agent reach the state
// directory and the kernel only through the engine; the CLI imports nft
// only to open (and watch) the connection it hands over.
func TestFrontDoorsHoldNoTransaction(t *testing.T) {
	for pkg, banned := range map[string][]string{
		"cmd/hostwall": {"github.com/hostwall/hostwall/state"},
		"agent":        {"github.com/hostwall/hostwall/state", "github.com/hostwall/hostwall/nft", "github.com/hostwall/hostwall/compile"},
	} {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "github.com/hostwall/hostwall/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, imp := range strings.Fields(string(out)) {
			for _, b := range banned {
				if imp == b {
					t.Errorf("package %s imports %s; it reaches it through the engine", pkg, b)
				}
			}
		}
	}
}
