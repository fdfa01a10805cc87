package metrics

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// fleetConfig is policies policies of rules ingress rules each (every
// third a deny), selecting one host endpoint, and an egress allow.
func fleetConfig(policies, rules int) string {
	var b strings.Builder
	b.WriteString("host_endpoint \"eth0\" { interface = \"eth0\" }\npolicy \"out\" {\n  egress { action = \"allow\" }\n}\n")
	for p := range policies {
		fmt.Fprintf(&b, "policy \"p%03d\" {\n", p)
		for r := range rules {
			action := "allow"
			if r%3 == 0 {
				action = "deny"
			}
			fmt.Fprintf(&b, "  ingress {\n    action = %q\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n", action, 1+p*rules+r)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// asLive is tbl as the kernel would list it: every rule with its ID, a
// handle and a count.
func asLive(tbl *ruleset.Table) []*ruleset.Chain {
	var out []*ruleset.Chain
	h := uint64(0)
	for _, ch := range tbl.Chains {
		lc := &ruleset.Chain{Name: ch.Name}
		for _, r := range ch.Rules {
			h++
			lr := r.Clone()
			lr.StoredID, lr.Handle, lr.Packets, lr.Bytes = r.ID(ch.Name), h, 1, 100
			lc.Rules = append(lc.Rules, lr)
		}
		out = append(out, lc)
	}
	return out
}

// TestSeriesCount: the series of 100 policies of 100 rules (10,000 rules)
// on one host endpoint, as docs/observability.md gives them: two per
// policy and direction, two more per rule with --metrics-per-rule, and a
// handful per endpoint — bounded by the configuration, never by traffic.
// promtool finds the exposition clean.
func TestSeriesCount(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "fleet.hcl", Data: []byte(fleetConfig(100, 100))}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tbl, diags := compile.Compile(res.Config, compile.Options{HostName: "h"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	x := observe.NewIndex(1, tbl)
	live := asLive(tbl)
	for perRule, want := range map[bool]int{
		// 101 policy directions × 2; per endpoint and direction: end of
		// tier, default deny and invalid × 2; failsafe: 2 directions × 2.
		false: 101*2 + 2*3*2 + 2*2,
		true:  101*2 + 10_001*2 + 2*3*2 + 2*2,
	} {
		if got := len(Series(x, x.Counts(live), perRule)); got != want {
			t.Errorf("per rule %v: %d series, want %d", perRule, got, want)
		}
	}
	k := &Kernel{Read: nil, Index: func() (*observe.Index, error) { return x, nil }, PerRule: true}
	k.Read = func(context.Context) ([]*ruleset.Chain, error) { return live, nil }
	reg := prometheus.NewRegistry()
	reg.MustRegister(k)
	NewAgent(reg)
	text, err := Text(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, `hostwall_rule_packets_total{action="deny",direction="ingress",policy="p042",rule="1",tier="default"} 1`) {
		t.Errorf("no per-rule series for p042's first rule in:\n%.2000s", text)
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("HOSTWALL_REQUIRE_ROOT_TESTS") != "" {
			t.Fatal("promtool is missing: apt-get install -y prometheus (make test does)")
		}
		t.Skip("promtool is missing (apt-get install -y prometheus; make test does)")
	}
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestREADMEAlerts: the example alerts of the README's Monitoring section
// are rules Prometheus loads (promtool check rules).
func TestREADMEAlerts(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "Example alerts:\n\n```yaml\n")
	if i < 0 {
		t.Fatal("README.md has no \"Example alerts:\" YAML block")
	}
	block := text[i+len("Example alerts:\n\n```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("HOSTWALL_REQUIRE_ROOT_TESTS") != "" {
			t.Fatal("promtool is missing: apt-get install -y prometheus (make test does)")
		}
		t.Skip("promtool is missing (apt-get install -y prometheus; make test does)")
	}
	f := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(f, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the README's alerts: %v\n%s", err, out)
	}
}
