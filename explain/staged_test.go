package explain_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/explain"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

const stagedBase = `
host_endpoint "eth0" { interface = "eth0" }
policy "web" {
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [8080, 8081] }
  }
}
`

// stagedCalico stages, in Calico's YAML, a replacement of web that denies
// 8080 (Set) and the deletion of policy "ops" (Delete).
const stagedCalico = `apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: web
spec:
  stagedAction: Set
  ingress:
    - action: Deny
      protocol: TCP
      destination:
        ports: [8080]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: ops
spec:
  stagedAction: Delete
`

const opsPolicy = `
policy "ops" {
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [9100] }
  }
}
`

// TestStagedPolicies: staged policies — native (staged = true, "delete")
// and Calico's StagedGlobalNetworkPolicy (stagedAction Set, Delete) —
// compile alike (the staged view's chains; that they change no verdict is
// the differential test's to show, TestStagedCounts the counting), and
// explain gives the staged view's verdict beside the enforced one when
// they differ.
func TestStagedPolicies(t *testing.T) {
	load := func(srcs ...loader.Source) *config.Config {
		t.Helper()
		res, diags := loader.Load(srcs)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return res.Config
	}
	native := stagedBase + opsPolicy + `
policy "web" {
  staged = true
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
policy "ops" {
  staged = "delete"
}
`
	plain := load(loader.Source{Path: "a.hcl", Data: []byte(stagedBase + opsPolicy)})
	without, _ := compile.Compile(plain, compile.Options{HostName: "h"})
	var tables []string
	for name, cfg := range map[string]*config.Config{
		"native": load(loader.Source{Path: "a.hcl", Data: []byte(native)}),
		"calico": load(loader.Source{Path: "a.hcl", Data: []byte(stagedBase + opsPolicy)}, loader.Source{Path: "s.yaml", Data: []byte(stagedCalico)}),
	} {
		tbl, _ := compile.Compile(cfg, compile.Options{HostName: "h"})
		tables = append(tables, tbl.String())
		if tbl.String() == without.String() {
			t.Errorf("%s: the staged view was not compiled", name)
		}
		pkt := func(port uint16) explain.Packet {
			return explain.Packet{Iface: "eth0", Direction: explain.In, Proto: config.ProtoTCP, DPort: port, ICMPType: -1, ICMPCode: -1, State: explain.New}
		}
		// 8080: enforced allow by web/1, staged deny by the new web/1.
		r := explain.Explain(cfg, "h", pkt(8080))
		if r.Verdict != explain.Allow || r.Decided.Policy != "web" || r.Staged == nil || r.Staged.Verdict != explain.Deny ||
			r.Staged.Decided.Kind != explain.PolicyRule || r.Staged.Decided.Action != config.Deny {
			t.Errorf("%s: 8080: %+v, staged %+v; want allow, staged deny by web", name, r, r.Staged)
		}
		// 8081: enforced allow by web; staged, web no longer allows it:
		// the end of the tier.
		if r := explain.Explain(cfg, "h", pkt(8081)); r.Verdict != explain.Allow || r.Staged == nil || r.Staged.Decided.Kind != explain.EndOfTier {
			t.Errorf("%s: 8081: %+v, staged %+v; want allow, staged end of tier", name, r, r.Staged)
		}
		// 9100: enforced allow by ops; staged, ops is deleted.
		if r := explain.Explain(cfg, "h", pkt(9100)); r.Verdict != explain.Allow || r.Decided.Policy != "ops" || r.Staged == nil || r.Staged.Verdict != explain.Deny {
			t.Errorf("%s: 9100: %+v, staged %+v; want allow by ops, staged deny", name, r, r.Staged)
		}
		// 22: failsafe either way: no staged result.
		if r := explain.Explain(cfg, "h", pkt(22)); r.Staged != nil {
			t.Errorf("%s: 22: a staged result %+v where both views agree", name, r.Staged)
		}
		// Native YAML, keyed by name, cannot hold them; HCL can.
		if _, err := loader.WriteYAML(cfg); err == nil || !strings.Contains(err.Error(), "convert --to hcl") {
			t.Errorf("%s: WriteYAML = %v, want it refused", name, err)
		}
		// The round trip keeps them.
		back := load(loader.Source{Path: "c.hcl", Data: loader.WriteHCL(cfg)})
		if n, m := len(back.Policies), len(cfg.Policies); n != m || !back.HasStaged() {
			t.Errorf("%s: convert kept %d of %d policies (staged: %v)", name, n, m, back.HasStaged())
		}
	}
	if tables[0] != tables[1] {
		t.Errorf("native and Calico staging compile differently:\n%s\n---\n%s", tables[0], tables[1])
	}

	for src, wantErr := range map[string]string{
		"policy \"a\" {\n  staged = \"yes\"\n}\n":                                                                                          `staged is true (the policy would be added`,
		"policy \"a\" {\n  staged = true\n}\npolicy \"a\" {\n  staged = true\n}\n":                                                         "Duplicate staged policy",
		"policy \"a\" {\n  ingress { action = \"allow\" }\n}\npolicy \"a\" {\n  staged = \"delete\"\n  ingress { action = \"deny\" }\n}\n": "A staged delete holds no policy",
		"policy \"ghost\" {\n  staged = \"delete\"\n}\n":                                                                                   "Staged delete of no policy",
	} {
		_, diags := loader.Load([]loader.Source{{Path: "b.hcl", Data: []byte(src)}})
		if !strings.Contains(diags.Error(), wantErr) || !strings.Contains(diags.Error(), "b.hcl:") {
			t.Errorf("%q: %v, want %q", src, diags, wantErr)
		}
	}
	bad := strings.Replace(stagedCalico, "stagedAction: Delete", "stagedAction: Remove", 1)
	if _, diags := loader.Load([]loader.Source{{Path: "s.yaml", Data: []byte(bad)}}); !strings.Contains(diags.Error(), `spec.stagedAction is Set or Delete (as Calico validates it), not "Remove"`) {
		t.Errorf("stagedAction Remove: %v", diags)
	}
}

// TestStagedCalicoRollout: a rollout staged in Calico's resources
// (testdata/calico-staged) loads, and behaves as staged in the kernel:
// every packet's fate is the one without the staged resources (and
// explain's), and the staged view's counters count, per endpoint and
// direction, exactly the packets explain says it would decide otherwise.
func TestStagedCalicoRollout(t *testing.T) {
	testns.RequireRoot(t)
	data, err := os.ReadFile(filepath.Join("testdata", "calico-staged", "rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, diags := loader.Load([]loader.Source{{Path: "rollout.yaml", Data: data}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg := res.Config
	if n := len(cfg.Policies) - len(cfg.Enforced().Policies); n != 3 {
		t.Fatalf("%d staged policies loaded, want 3", n)
	}
	in := func(remote int, proto string, dport uint16, id uint16) tcase {
		c := tcase{Link: 0, Proto: proto, Remote: remote, DPort: dport, ID: id, ICMPType: -1, ICMPCode: -1}
		if proto == "icmp" {
			c.ICMPType, c.ICMPCode = 8, 0
		}
		return c
	}
	cases := []tcase{
		in(2, "tcp", 6379, 31001), // allowed; staged: would newly drop
		in(5, "tcp", 6379, 31002), // allowed either way
		in(3, "icmp", 0, 31003),   // allowed; staged: would newly drop
		in(2, "tcp", 80, 31004),   // denied either way
		{Link: 0, Out: true, Proto: "udp", Remote: 2, DPort: 5353, ID: 31005}, // allowed; staged: egress would newly drop
	}
	want := []bool{true, true, true, false, true}
	l := newLab(t)
	got := l.applyAndSend(t, cfg, "h", cases, defaultBarrier)
	wantStaged := map[ruleset.Origin]uint64{}
	for i, c := range cases {
		r := explain.Explain(cfg, "h", c.packet())
		if got[i] != want[i] || (r.Verdict == explain.Allow) != want[i] {
			t.Errorf("case %+v: kernel allowed=%v, explain %s by %s; want allowed=%v", c, got[i], r.Verdict, r.Decided, want[i])
		}
		if o, ok := stagedChange(l.staged, c, r); ok {
			wantStaged[o]++
		}
	}
	if n := wantStaged[ruleset.Origin{Kind: ruleset.OriginStagedChange, Endpoint: "db-eth0", Direction: "ingress", Action: "deny"}]; n != 2 {
		t.Errorf("explain finds %d ingress packets the staged view would newly drop, want 2 (%v)", n, wantStaged)
	}
	gotStaged := l.stagedCounts(t)
	if n := l.withoutOwn(t, gotStaged, wantStaged); n > 0 {
		t.Logf("egress counts of %d interfaces left out: the server sent packets of its own there", n)
	}
	if !maps.Equal(gotStaged, wantStaged) {
		t.Errorf("the staged view's counters %v, explain says %v", gotStaged, wantStaged)
	}
	// Without the staged resources, the same fates.
	if again := l.applyAndSend(t, cfg.Enforced(), "h", cases, defaultBarrier); !slices.Equal(again, got) {
		t.Errorf("without the staged resources: %v, with them %v", again, got)
	}
}
