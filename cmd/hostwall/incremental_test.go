package main_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

const blocklistPolicy = `
host { name = "srv" }
host_endpoint "eth0" { interface = "eth0" }
network_set "bl" {
  labels    = { bad = "yes" }
  nets      = ["192.0.2.0/24"]
  nets_file = "bl.txt"
}
policy "block" {
  order = 10
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
policy "web" {
  order = 20
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [22, 443] }
  }
}
`

// asLongWay: generation n is the long way's: the same files and rendering
// as a full apply of dir into another namespace.
func asLongWay(t *testing.T, dir string, n int) {
	t.Helper()
	other := testns.New(t)
	testns.Run(t, "ip", "-n", other, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	otherState := t.TempDir()
	if r := hostwallEnv(t, "", []string{"HOSTWALL_STATE_DIR=" + otherState, "HOSTWALL_RUN_DIR=" + t.TempDir()},
		"apply", "-c", dir, "--netns", other, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("full apply elsewhere: %d %s", r.code, r.stderr)
	}
	state := strings.TrimPrefix(dirsOf(t)[0], "HOSTWALL_STATE_DIR=")
	for _, f := range []string{"ruleset.nft", "files/001-bl.txt"} {
		got, err1 := os.ReadFile(filepath.Join(state, "generations", fmt.Sprintf("%06d", n), f))
		want, err2 := os.ReadFile(filepath.Join(otherState, "generations", "000001", f))
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("generation %d's %s differs from the long way's (%v, %v)", n, f, err1, err2)
		}
	}
}

// TestIncrementalApply: after a full apply, a change to the nets file
// alone is applied without loading the policy files, to the same kernel
// table, generation and rendering as the long way; every other kind of
// change, and every case the shortcut cannot vouch for, takes the long way
// and ends in the same place.
func TestIncrementalApply(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": "10.0.0.0/8\n"})
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(env ...string) result {
		t.Helper()
		return hostwallEnv(t, "", env, "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0")
	}
	converged := func(when string) {
		t.Helper()
		if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
			t.Fatalf("%s: plan --refresh exited %d:\n%s%s", when, r.code, r.stdout, r.stderr)
		}
	}
	incremental := func(r result) bool { return strings.Contains(r.stdout, "without loading the policy files") }

	if r := apply(); r.code != 0 || incremental(r) {
		t.Fatalf("first apply: exit %d, incremental %v:\n%s%s", r.code, incremental(r), r.stdout, r.stderr)
	}

	write("bl.txt", "10.0.0.0/8\n198.51.100.0/24 # added\n")
	r := apply()
	if r.code != 0 || !incremental(r) {
		t.Fatalf("a nets file change: exit %d, incremental %v:\n%s%s", r.code, incremental(r), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "+ 198.51.100.0/24") || !strings.Contains(r.stdout, "Generation 2.") {
		t.Errorf("the incremental apply's output:\n%s", r.stdout)
	}
	if set := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); !strings.Contains(set, "198.51.100.0/24") {
		t.Errorf("the kernel lacks the added network:\n%s", set)
	}
	converged("after the incremental apply")
	asLongWay(t, dir, 2)
	if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--detailed-exitcode"); r.code != 0 || !strings.Contains(r.stdout, "From hostwall's last full check") {
		t.Errorf("plan after the incremental apply does not take the no-change shortcut (exit %d):\n%s", r.code, r.stdout)
	}

	// Each of these takes the long way, and still ends converged.
	line := 0
	change := func() {
		line++
		write("bl.txt", "10.0.0.0/8\n203.0.113."+string(rune('0'+line))+"/32\n")
	}
	for _, tc := range []struct {
		name  string
		setup func() []string // returns extra environment
	}{
		{"a policy file changed too", func() []string {
			write("policy.hcl", blocklistPolicy+"\n# edited\n")
			return nil
		}},
		{"the connection is not to port 22", func() []string {
			return []string{"SSH_CONNECTION=192.0.2.9 40000 192.0.2.1 2222"}
		}},
		{"the kernel's ruleset moved", func() []string {
			testns.NFT(t, ns, "add", "table", "ip", "someone-else")
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			change()
			env := tc.setup()
			r := apply(env...)
			if r.code != 0 || incremental(r) {
				t.Fatalf("exit %d, incremental %v:\n%s%s", r.code, incremental(r), r.stdout, r.stderr)
			}
			converged(tc.name)
		})
	}
	// --refresh reads the kernel.
	change()
	if r := hostwallEnv(t, "", nil, "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0", "--refresh"); r.code != 0 || incremental(r) {
		t.Fatalf("--refresh: exit %d, incremental %v", r.code, incremental(r))
	}
	// A nets file that does not parse: the long way's error, file:line,
	// and nothing applied.
	before := testns.NFT(t, ns, "list", "table", "inet", "hostwall")
	write("bl.txt", "10.0.0.0/8\nnot-a-network\n")
	if r := apply(); r.code != 1 || !strings.Contains(r.stderr, "bl.txt:2:1") {
		t.Errorf("a bad nets file: exit %d:\n%s", r.code, r.stderr)
	}
	if after := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); after != before {
		t.Error("a bad nets file changed the kernel")
	}
	// A comment added: the files changed, the sets did not.
	write("bl.txt", "10.0.0.0/8\n# nothing new\n")
	apply()
	write("bl.txt", "10.0.0.0/8\n# nothing new, again\n")
	if r := apply(); r.code != 0 || incremental(r) || !strings.Contains(r.stdout, "No changes") {
		t.Errorf("a comment added: exit %d, incremental %v:\n%s", r.code, incremental(r), r.stdout)
	}
	// Failsafe without tcp:22: the lockout check must see the networks.
	write("policy.hcl", blocklistPolicy+"failsafe {\n  inbound = [\"udp:68\"]\n}\n")
	if r := apply(); r.code != 0 {
		t.Fatalf("failsafe without ssh: %d %s", r.code, r.stderr)
	}
	change()
	if r := apply(); r.code != 0 || incremental(r) {
		t.Errorf("failsafe without tcp:22: exit %d, incremental %v:\n%s%s", r.code, incremental(r), r.stdout, r.stderr)
	}
	converged("at the end")
}

// TestIncrementalPatched: a nets file change is applied by its lines when
// the current generation holds the file as it was and every network taken
// away was an element by itself; otherwise the sets are made again from
// the files. Either way the kernel, the generation and the record for the
// next change are the long way's: each step converges (plan --refresh),
// its generation renders as a full apply does, and the next step, planned
// from the record, converges too.
func TestIncrementalPatched(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": "10.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n"})
	state := strings.TrimPrefix(dirsOf(t)[0], "HOSTWALL_STATE_DIR=")
	gen := 1
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("first apply: %d %s", r.code, r.stderr)
	}
	for _, step := range []struct {
		name, list, how string // how: "patched", "remade", "unchanged"
		before          func()
	}{
		{name: "one network for another", list: "11.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n", how: "patched"},
		{name: "a network bridging two", list: "11.0.0.0/30\n10.0.0.8/30\n10.0.0.12/30\n10.0.0.16/30\n", how: "patched"},
		{name: "taking away one of those merged", list: "11.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n", how: "remade"},
		{name: "a network touching the inline one", list: "11.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n192.0.3.0/24\n", how: "patched"},
		{name: "and taken away again", list: "11.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n", how: "remade"},
		{name: "lines moved, one added", list: "10.0.0.16/30\n10.0.0.8/30\n11.0.0.0/30\n2001:db8::/32\n", how: "patched"},
		{name: "the generation's copy damaged", list: "10.0.0.16/30\n10.0.0.8/30\n11.0.0.4/30\n2001:db8::/32\n", how: "remade",
			before: func() {
				copy := filepath.Join(state, "generations", fmt.Sprintf("%06d", gen), "files", "001-bl.txt")
				if err := os.WriteFile(copy, []byte("10.0.0.16/30\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "after the long way", list: "10.0.0.8/30\n11.0.0.4/30\n2001:db8::/32\n", how: "patched"},
		// No element changes, and only planned: plan records what it found
		// in the kernel, but no generation, so the current one holds the
		// file before this edit.
		{name: "the inline network listed too", list: "10.0.0.8/30\n11.0.0.4/30\n2001:db8::/32\n192.0.2.0/25\n", how: "unchanged"},
		{name: "a copy of another content", list: "10.0.0.8/30\n2001:db8::/32\n192.0.2.0/25\n", how: "remade"},
		{name: "patched again", list: "10.0.0.8/30\n2001:db8::/48\n192.0.2.0/25\n", how: "patched"},
		// A list generator's change: its header and a network at the end.
		{name: "a header and a network appended", list: "# generated 1\n10.0.0.8/30\n2001:db8::/48\n192.0.2.0/25\n10.9.0.0/30\n", how: "patched"},
		{name: "the header again, another appended", list: "# generated 2\n10.0.0.8/30\n2001:db8::/48\n192.0.2.0/25\n10.9.0.0/30\n10.9.0.8/30\n", how: "patched"},
	} {
		if step.before != nil {
			step.before()
		}
		if err := os.WriteFile(filepath.Join(dir, "bl.txt"), []byte(step.list), 0o644); err != nil {
			t.Fatal(err)
		}
		if step.how == "unchanged" {
			if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns); r.code != 0 || !strings.Contains(r.stdout, "No changes") {
				t.Fatalf("%s: exit %d:\n%s%s", step.name, r.code, r.stdout, r.stderr)
			}
			continue
		}
		r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0")
		gen++
		how := map[bool]string{true: "patched", false: "remade"}[strings.Contains(r.stdout, "the lines that changed were applied")]
		if r.code != 0 || !strings.Contains(r.stdout, "without loading the policy files") || how != step.how {
			t.Fatalf("%s: exit %d, %s, want %s:\n%s%s", step.name, r.code, how, step.how, r.stdout, r.stderr)
		}
		if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
			t.Fatalf("%s: plan --refresh exited %d:\n%s%s", step.name, r.code, r.stdout, r.stderr)
		}
		asLongWay(t, dir, gen)
	}
}

// TestIncrementalRace: another writer commits while an incremental apply
// waits at its prompt, after it checked the kernel's generation and before
// its batch. The kernel refuses the batch (its generation is in it), and
// the apply takes the long way from there: it loads and compiles the
// files and plans again against the kernel. The change is applied, the
// other writer's table is left alone, and the result converges.
func TestIncrementalRace(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": "10.0.0.0/30\n10.0.0.8/30\n"})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("first apply: %d %s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("11.0.0.0/30\n10.0.0.8/30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "apply", "-c", dir, "--netns", ns, "--confirm-timeout", "0")
	cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read up to the prompt: the plan is made, the generation checked.
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), "Enter a value:") {
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("no prompt (%v):\n%s%s", err, out.String(), stderr.String())
		}
	}
	if !strings.Contains(out.String(), "the lines that changed were applied") {
		t.Fatalf("not an incremental apply:\n%s", out.String())
	}
	testns.NFT(t, ns, "add", "table", "ip", "someone-else")
	io.WriteString(stdin, "yes\n")
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	out.Write(rest)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the apply after the race: %v\n%s%s", err, out.String(), stderr.String())
	}
	if !strings.Contains(out.String(), "Apply complete!") {
		t.Errorf("the apply's output:\n%s", out.String())
	}
	table := testns.NFT(t, ns, "list", "table", "inet", "hostwall")
	if !strings.Contains(table, "11.0.0.0/30") || strings.Contains(table, "10.0.0.0/30") {
		t.Errorf("the kernel does not hold the change:\n%s", table)
	}
	testns.NFT(t, ns, "list", "table", "ip", "someone-else") // still there
	// The record made for the refused batch was dropped, the long way's kept.
	run := strings.TrimPrefix(dirsOf(t)[1], "HOSTWALL_RUN_DIR=")
	if left, _ := filepath.Glob(filepath.Join(run, ".*staged*")); len(left) != 0 {
		t.Errorf("staged records left in the run directory: %v", left)
	}
	if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
		t.Errorf("plan --refresh after the race exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestIncrementalSharded: TestIncrementalPatched's shortcut with the
// blocklist sharded (ruleset.Sharding, set small here: sets of 4 networks
// and more in 3 slots, chunks of 2 on average, so that changes start and
// end chunks): each change reaches the kernel as the long way would have
// made it, and a change that takes the set across the sharding's size
// (chains and rules change) takes the long way.
func TestIncrementalSharded(t *testing.T) {
	ns := shardSmall(t)
	list := func(from, n int) string {
		var b strings.Builder
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, "10.%d.%d.0/30\n", i/200, i%200)
		}
		return b.String()
	}
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": list(0, 40)})
	gen := 1
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("first apply: %d %s", r.code, r.stderr)
	}
	sets, maps := testns.NFT(t, ns, "list", "sets", "inet"), testns.NFT(t, ns, "list", "maps", "inet")
	if !strings.Contains(sets, "/02 {") || !strings.Contains(maps, "type ipv4_addr : verdict") {
		t.Fatalf("the blocklist is not sharded in the kernel:\n%s%s", sets, maps)
	}
	for _, step := range []struct {
		name, list, how string // how: "patched", "remade", "long"
	}{
		{name: "one network for another", list: list(1, 40), how: "patched"},
		{name: "ten more", list: list(1, 50), how: "patched"},
		{name: "twenty others", list: list(21, 50), how: "patched"},
		{name: "a network bridging two", list: list(21, 50) + "10.0.21.4/30\n", how: "patched"},
		{name: "taking it away again", list: list(21, 50), how: "remade"},
		{name: "down to the inline network and two", list: list(21, 2), how: "long"},
		{name: "and up again", list: list(0, 60), how: "long"},
		{name: "patched once more", list: list(0, 59) + "11.0.0.0/30\n", how: "patched"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "bl.txt"), []byte(step.list), 0o644); err != nil {
			t.Fatal(err)
		}
		r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0")
		gen++
		how := "long"
		if strings.Contains(r.stdout, "without loading the policy files") {
			how = map[bool]string{true: "patched", false: "remade"}[strings.Contains(r.stdout, "the lines that changed were applied")]
		}
		if r.code != 0 || how != step.how {
			t.Fatalf("%s: exit %d, %s, want %s:\n%s%s", step.name, r.code, how, step.how, r.stdout, r.stderr)
		}
		if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
			t.Fatalf("%s: plan --refresh exited %d:\n%s%s", step.name, r.code, r.stdout, r.stderr)
		}
		asLongWay(t, dir, gen)
	}
}

// TestIncrementalKeptWhole: a set that a pass rule looks up is kept whole
// whatever its size (compile/shard.go); a change to its nets file alone is
// still applied by the shortcut, as before sharding.
func TestIncrementalKeptWhole(t *testing.T) {
	ns := shardSmall(t)
	policy := strings.Replace(blocklistPolicy, `action = "deny"`, `action = "pass"`, 1)
	dir := writeConfig(t, map[string]string{"policy.hcl": policy, "bl.txt": "10.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n10.0.0.24/30\n10.0.0.32/30\n"})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("first apply: %d %s", r.code, r.stderr)
	}
	if sets := testns.NFT(t, ns, "list", "sets", "inet"); strings.Contains(sets, "/00 {") {
		t.Fatalf("a set a pass rule looks up is sharded:\n%s", sets)
	}
	if err := os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("10.0.0.0/30\n10.0.0.8/30\n10.0.0.16/30\n10.0.0.24/30\n10.0.0.40/30\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0")
	if r.code != 0 || !strings.Contains(r.stdout, "the lines that changed were applied") {
		t.Fatalf("exit %d, not patched:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan --refresh exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	asLongWay(t, dir, 2)
}

// shardSmall makes every hostwall the test runs shard sets of 4 networks
// and more into 3 slots, in chunks of 2 on average, and returns a new
// namespace with an eth0.
func shardSmall(t *testing.T) string {
	t.Setenv("HOSTWALL_SHARD_MIN", "4")
	t.Setenv("HOSTWALL_SHARD_SLOTS", "3")
	t.Setenv("HOSTWALL_SHARD_CHUNK_BITS", "1")
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	return ns
}
