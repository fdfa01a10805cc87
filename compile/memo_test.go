package compile

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

// memoConfig is a blocklist of n networks from base, denied by a policy,
// and one more policy that changes with port.
func memoConfig(n, base, port int) string {
	var nets []string
	for i := range n {
		nets = append(nets, fmt.Sprintf("%q", fmt.Sprintf("10.%d.%d.0/25", (base+i)/256%256, (base+i)%256)))
	}
	return fmt.Sprintf(`
host_endpoint "e" {
  interface    = "eth0"
  expected_ips = ["192.0.2.1"]
  labels       = { blocked = "no" }
}
network_set "bl" {
  labels = { blocked = "yes" }
  nets   = [%s]
}
policy "block" {
  order = 1
  ingress {
    action = "deny"
    source { selector = "blocked == 'yes'" }
  }
}
policy "web" {
  order = 2
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [%d] }
  }
}
`, strings.Join(nets, ", "), port)
}

// mustCompile compiles a load for host "h" with m, failing the test on any
// error of either.
func mustCompile(t *testing.T, res *loader.Result, diags hcl.Diagnostics, m *Memo) *ruleset.Table {
	t.Helper()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tbl, diags := Compile(res.Config, Options{HostName: "h", Memo: m})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return tbl
}

// TestMemo: compiling with a Memo gives the very table compiling without
// one gives; an unchanged blocklist's set is the last compile's (its
// elements shared), a changed one is made again.
func TestMemo(t *testing.T) {
	memo := &Memo{}
	compileWith := func(src string, m *Memo) *ruleset.Table {
		t.Helper()
		res, diags := loader.Load([]loader.Source{{Path: "test.hcl", Data: []byte(src)}})
		return mustCompile(t, res, diags, m)
	}
	blocklist := func(tbl *ruleset.Table) *ruleset.Set {
		for _, s := range tbl.Sets {
			if len(s.Elements) > 1 && strings.HasPrefix(s.Name, "sel-") {
				return s
			}
		}
		t.Fatal("no blocklist set")
		return nil
	}
	var prev *ruleset.Set
	for i, c := range []struct {
		src    string
		shared bool
	}{
		{memoConfig(memoMin+10, 0, 80), false},
		{memoConfig(memoMin+10, 0, 81), true},  // another port, the same blocklist
		{memoConfig(memoMin+10, 5, 81), false}, // another blocklist
		{memoConfig(memoMin+10, 5, 82), true},  // and again the same
		{memoConfig(memoMin-10, 5, 82), false}, // too small to keep
		{memoConfig(memoMin-10, 5, 83), false},
	} {
		got := compileWith(c.src, memo)
		want := compileWith(c.src, nil)
		if d := cmp.Diff(want.String(), got.String()); d != "" {
			t.Fatalf("compile %d: the table differs with the memo (-without +with):\n%s", i, d)
		}
		if d := cmp.Diff(want.Sets, got.Sets); d != "" {
			t.Fatalf("compile %d: the sets differ with the memo (-without +with):\n%s", i, d)
		}
		s := blocklist(got)
		if shared := prev != nil && &s.Elements[0] == &prev.Elements[0]; shared != c.shared {
			t.Errorf("compile %d: elements shared with the last compile = %v, want %v", i, shared, c.shared)
		}
		prev = s
	}
}

// TestMemoNetsFile: through the loader's Memo, as the agent loads, a set
// drawn from a nets file is kept while the file and the set's inline
// networks are as they were, and made again when either changes; every
// table is the one compiling without memos gives.
func TestMemoNetsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	policy := func(inline string) string {
		return strings.Replace(memoConfig(0, 0, 80), "nets   = []", "nets = ["+inline+"]\n  nets_file = \"bl.txt\"", 1)
	}
	lines := func(base int) string {
		var b strings.Builder
		for i := range memoMin + 10 {
			fmt.Fprintf(&b, "10.%d.%d.0/25\n", (base+i)/256%256, (base+i)%256)
		}
		return b.String()
	}
	lm, cm := &loader.Memo{}, &Memo{}
	var prev *ruleset.Set
	for i, c := range []struct {
		inline, file string
		shared       bool
	}{
		{`"198.51.100.0/24"`, lines(0), false},
		{`"198.51.100.0/24"`, lines(0), true},
		{`"198.51.100.0/24"`, lines(7), false}, // the file changed
		{`"198.51.100.0/24"`, lines(7), true},
		{`"203.0.113.0/24"`, lines(7), false}, // the inline networks changed
		{`"203.0.113.0/24"`, lines(7), true},
	} {
		write("p.hcl", policy(c.inline))
		write("bl.txt", c.file)
		compileDir := func(lm *loader.Memo, cm *Memo) *ruleset.Table {
			t.Helper()
			res, diags := loader.LoadDir(dir, loader.DirOptions{InsecureSkipPerms: true, Memo: lm})
			return mustCompile(t, res, diags, cm)
		}
		got, want := compileDir(lm, cm), compileDir(nil, nil)
		if d := cmp.Diff(want.String(), got.String()); d != "" {
			t.Fatalf("compile %d: the table differs with the memos (-without +with):\n%s", i, d)
		}
		var s *ruleset.Set
		for _, set := range got.Sets {
			if len(set.Elements) > memoMin {
				s = set
			}
		}
		if s == nil {
			t.Fatalf("compile %d: no blocklist set", i)
		}
		if shared := prev != nil && &s.Elements[0] == &prev.Elements[0]; shared != c.shared {
			t.Errorf("compile %d: elements shared with the last compile = %v, want %v", i, shared, c.shared)
		}
		prev = s
	}
}

// TestMemoSharded: with the blocklist sharded, the memo keeps its split
// alone (its elements once, in slot order) and the next compile's slot sets
// share it; a compile under another sharding, or one where a pass rule
// keeps the set whole, makes it whole again from the split. Every table is
// the one compiling without a memo gives.
func TestMemoSharded(t *testing.T) {
	small := ruleset.Sharding{Min: memoMin, Slots: 4, ChunkBits: 3}
	other := ruleset.Sharding{Min: memoMin, Slots: 5, ChunkBits: 3}
	pass := func(src string) string { return strings.Replace(src, `action = "deny"`, `action = "pass"`, 1) }
	memo := &Memo{}
	var prev *ruleset.Set
	for i, c := range []struct {
		src       string
		sh        ruleset.Sharding
		sharded   bool
		shared    bool // the first slot's elements are the last compile's
		memoSplit bool // the memo keeps the split alone after
	}{
		{memoConfig(memoMin+10, 0, 80), small, true, false, true},
		{memoConfig(memoMin+10, 0, 81), small, true, true, true},
		{memoConfig(memoMin+10, 0, 81), other, true, false, true},
		{pass(memoConfig(memoMin+10, 0, 81)), other, false, false, false},
		{memoConfig(memoMin+10, 0, 81), other, true, false, true},
		{memoConfig(memoMin+10, 0, 82), other, true, true, true},
	} {
		res, diags := loader.Load([]loader.Source{{Path: "test.hcl", Data: []byte(c.src)}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		got, diags := Compile(res.Config, Options{HostName: "h", Memo: memo, Limits: Limits{Sharding: c.sh}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		want, _ := Compile(res.Config, Options{HostName: "h", Limits: Limits{Sharding: c.sh}})
		if d := cmp.Diff(want.String(), got.String()); d != "" {
			t.Fatalf("compile %d: the table differs with the memo (-without +with):\n%s", i, d)
		}
		var slot *ruleset.Set
		for _, s := range got.Sets {
			if strings.HasSuffix(s.Name, "-4/00") || (!c.sharded && strings.HasSuffix(s.Name, "-4") && len(s.Elements) > 0) {
				slot = s
			}
		}
		if slot == nil || len(slot.Elements) == 0 {
			t.Fatalf("compile %d: no blocklist set (sharded %v) or an empty first slot", i, c.sharded)
		}
		if shared := prev != nil && &slot.Elements[0] == &prev.Elements[0]; shared != c.shared {
			t.Errorf("compile %d: elements shared with the last compile = %v, want %v", i, shared, c.shared)
		}
		prev = slot
		splits := 0
		for _, m := range memo.sets.Values() {
			if m.split != nil {
				if m.set.Elements != nil {
					t.Errorf("compile %d: the memo keeps a split set's elements twice", i)
				}
				splits++
			}
		}
		if (splits > 0) != c.memoSplit {
			t.Errorf("compile %d: the memo keeps %d splits, want some = %v", i, splits, c.memoSplit)
		}
	}
}

// TestRecipeMerged: a recipe hands out what Normalize merged of its set,
// as counting the set made again from the recipe finds it, whether the
// compile made the set or took it from the memo (whole or split).
func TestRecipeMerged(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range memoMin + 10 {
		fmt.Fprintf(&lines, "10.%d.%d.0/25\n", i/256%256, i%256)
		if i%7 == 0 { // overlapping the line before: merged
			fmt.Fprintf(&lines, "10.%d.%d.64/26\n", i/256%256, i%256)
		}
	}
	policy := strings.Replace(memoConfig(0, 0, 80), "nets   = []", "nets = [\"10.0.0.0/24\"]\n  nets_file = \"bl.txt\"", 1)
	for name, data := range map[string]string{"p.hcl": policy, "bl.txt": lines.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lm, cm := &loader.Memo{}, &Memo{}
	for i, sh := range []ruleset.Sharding{{}, {}, {Min: memoMin, Slots: 4, ChunkBits: 3}, {Min: memoMin, Slots: 4, ChunkBits: 3}} {
		res, diags := loader.LoadDir(dir, loader.DirOptions{InsecureSkipPerms: true, Memo: lm})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		var recipes []Recipe
		if _, diags := Compile(res.Config, Options{HostName: "h", Memo: cm, Recipes: &recipes, Limits: Limits{Sharding: sh}}); diags.HasErrors() {
			t.Fatal(diags)
		}
		if len(recipes) == 0 {
			t.Fatal("no recipe")
		}
		fileNets := map[string][]netip.Prefix{}
		for _, ns := range res.Config.NetworkSets {
			if ns.NetsFile != "" {
				fileNets[ns.NetsFile] = ns.Nets[ns.InlineNets:]
			}
		}
		for _, r := range recipes {
			s := &ruleset.Set{Type: r.Family.AddrType(), Interval: true, Elements: r.Elements(func(f string) []netip.Prefix { return fileNets[f] })}
			want := s.NormalizeCounting()
			if r.Merged == nil || !maps.Equal(r.Merged, want) {
				t.Errorf("compile %d: recipe %s hands out %d merged elements, counting finds %d", i, r.Set, len(r.Merged), len(want))
			}
			if r.Family == ruleset.IPv4 && len(want) == 0 {
				t.Errorf("compile %d: nothing merged: the test tests nothing", i)
			}
		}
	}
}
