package views_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/views"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// examples lists every example with the host name it is compiled for.
var examples = map[string]string{"quickstart": "web-1", "fleet": "db-1"}

func desiredOf(t *testing.T, dir, host string) *ruleset.Table {
	t.Helper()
	res, diags := loader.LoadDir(dir, loader.DirOptions{InsecureSkipPerms: true}) // the checkout may belong to anyone
	if diags.HasErrors() {
		t.Fatalf("loading %s: %v", dir, diags)
	}
	tbl, diags := compile.Compile(res.Config, compile.Options{HostName: host})
	if diags.HasErrors() {
		t.Fatalf("compiling %s: %v", dir, diags)
	}
	return tbl
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./views -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestExamplePlans renders the first plan of every example (against a
// kernel without our table) as text and JSON.
func TestExamplePlans(t *testing.T) {
	dirs, _ := filepath.Glob("../examples/*")
	if len(dirs) != len(examples) {
		t.Fatalf("examples/ holds %d examples, the test knows %d: add the new one to the examples map", len(dirs), len(examples))
	}
	for name, host := range examples {
		t.Run(name, func(t *testing.T) {
			p := planner.Diff(desiredOf(t, filepath.Join("..", "examples", name), host), nil)
			var human, js bytes.Buffer
			views.PlanHuman(&human, p, views.Style{})
			if err := views.PlanJSON(&js, p); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".plan.txt", human.Bytes())
			golden(t, name+".plan.json", js.Bytes())
		})
	}
}

// asLive turns a desired table into what the kernel would hold: handles,
// stored IDs, no comments.
func asLive(t *ruleset.Table) *ruleset.Table {
	live := t.Clone()
	h := uint64(1)
	for _, c := range live.Chains {
		c.Comment, c.Owner = "", ""
		for _, r := range c.Rules {
			r.Handle, r.StoredID = h, r.ID(c.Name)
			h++
		}
	}
	for _, s := range live.Sets {
		s.Comment, s.Owner = "", ""
	}
	return live
}

// TestUpdatePlan renders an in-place update: a CIDR added to a network set,
// a rule added to a policy, a rule made by hand, and a policy removed.
func TestUpdatePlan(t *testing.T) {
	live := asLive(desiredOf(t, "../examples/quickstart", "web-1"))
	foreign := &ruleset.Rule{Handle: 999, Matches: []ruleset.Match{ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: 9999, Hi: 9999}}}, Verdict: ruleset.Accept()}
	hep := live.Chain("hep/eth0/in")
	hep.Rules = append(hep.Rules[:3], append([]*ruleset.Rule{foreign}, hep.Rules[3:]...)...)

	dir := t.TempDir()
	for _, f := range []string{"host.hcl", "policies.hcl"} {
		data, err := os.ReadFile(filepath.Join("../examples/quickstart", f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		s = strings.Replace(s, `"203.0.113.16/28"`, `"203.0.113.16/28", "203.0.113.64/26"`, 1)
		s = strings.Replace(s, `  egress {`, "  ingress {\n    action   = \"allow\"\n    protocol = \"udp\"\n    destination { ports = [53] }\n  }\n  egress {", 1)
		if i := strings.Index(s, "# Log what reaches"); i >= 0 {
			s = s[:i]
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := planner.Diff(desiredOf(t, dir, "web-1"), live)
	var human, js bytes.Buffer
	views.PlanHuman(&human, p, views.Style{})
	if err := views.PlanJSON(&js, p); err != nil {
		t.Fatal(err)
	}
	golden(t, "update.plan.txt", human.Bytes())
	golden(t, "update.plan.json", js.Bytes())
}

func TestNoChanges(t *testing.T) {
	desired := desiredOf(t, "../examples/quickstart", "web-1")
	p := planner.Diff(desired, asLive(desired))
	var out bytes.Buffer
	views.PlanHuman(&out, p, views.Style{})
	if got, want := out.String(), "No changes. The kernel matches the configuration.\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// countingWriter counts the writes that reach it.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestPlanHumanBuffers: a plan of thousands of lines reaches the output in
// a few large writes, not a write per line (a terminal or pipe pays per
// write; W1's plan was 10,827 writes).
func TestPlanHumanBuffers(t *testing.T) {
	ch := &ruleset.Chain{Name: "big"}
	for i := range 5000 {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Verdict: ruleset.Jump(strings.Repeat("x", i%7+1))})
	}
	desired := ruleset.NewTable()
	desired.Chains = []*ruleset.Chain{ch}
	p := planner.Diff(desired, nil)
	w := &countingWriter{}
	views.PlanHuman(w, p, views.Style{})
	lines := strings.Count(w.String(), "\n")
	if lines < 5000 {
		t.Fatalf("the plan has %d lines, want a line per rule", lines)
	}
	if max := w.Len()/(32<<10) + 2; w.writes > max {
		t.Errorf("%d lines of plan took %d writes, want at most %d", lines, w.writes, max)
	}
}
