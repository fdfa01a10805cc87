package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
)

// TestLimits: each limit refuses a configuration one past it, naming the
// count, the limit and the flag, and accepts one at it.
func TestLimits(t *testing.T) {
	var policies, rules, nets strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&policies, "policy \"p%d\" {}\n", i)
	}
	rules.WriteString("policy \"r\" {\n")
	for i := 0; i < 3; i++ {
		rules.WriteString("  ingress { action = \"allow\" }\n")
	}
	rules.WriteString("}\n")
	nets.WriteString("host_endpoint \"e\" { interface = \"eth0\" }\npolicy \"n\" {\n  ingress {\n    action = \"allow\"\n    source { nets = [")
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&nets, "\"10.%d.0.0/24\", ", 2*i) // not adjacent: three elements
	}
	nets.WriteString("] }\n  }\n}\n")
	for _, c := range []struct {
		name, src string
		limits    func(n int) Limits
		want      string
	}{
		{"policies", policies.String(), func(n int) Limits { return Limits{MaxPolicies: n} }, "policies, above the limit of %d. If that is intended, raise the limit with --max-policies"},
		{"rules", rules.String(), func(n int) Limits { return Limits{MaxRules: n} }, "rules in its policies (the limit is crossed here), above the limit of %d"},
		{"set elements", nets.String(), func(n int) Limits { return Limits{MaxSetElements: n} }, "set elements, above the limit of %d. If that is intended, raise the limit with --max-set-elements"},
	} {
		res, diags := loader.Load([]loader.Source{{Path: "x.hcl", Data: []byte(c.src)}})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", c.name, diags)
		}
		tbl, diags := Compile(res.Config, Options{HostName: "h"})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", c.name, diags)
		}
		n := 3
		if c.name == "set elements" {
			n = 0
			for _, s := range tbl.Sets {
				n += len(s.Elements)
			}
		}
		if _, diags := Compile(res.Config, Options{HostName: "h", Limits: c.limits(n)}); diags.HasErrors() {
			t.Errorf("%s at the limit (%d): %v", c.name, n, diags)
		}
		want := fmt.Sprintf("has %d ", n) + fmt.Sprintf(c.want, n-1)
		if _, diags := Compile(res.Config, Options{HostName: "h", Limits: c.limits(n - 1)}); !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s one past the limit: %v, want %q", c.name, diags, want)
		}
	}
}
