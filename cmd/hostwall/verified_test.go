package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/nft"
)

const shortcut = "(From hostwall's last full check: neither the files nor the kernel's ruleset"

// TestNoOpPlanShortcut: after an apply (or a full plan that found nothing
// to do), plan answers "no changes" without compiling or reading the
// kernel, and only while that is true: a changed file, drift, any other
// nftables change in the namespace, --refresh, another binary, or a file
// the trust checks now refuse each take the long way, which sees what
// changed.
func TestNoOpPlanShortcut(t *testing.T) {
	ns := testns.New(t)
	dir := writeConfig(t, map[string]string{"policy.hcl": allow8080})
	plan := func(args ...string) result {
		t.Helper()
		return hostwall(t, "", append([]string{"plan", "-c", dir, "--netns", ns, "--host-name", "srv", "--detailed-exitcode"}, args...)...)
	}
	quick := func(what string, r result, want bool) {
		t.Helper()
		if got := strings.Contains(r.stdout, shortcut); got != want {
			t.Errorf("%s: shortcut taken = %v, want %v (exit %d)\n%s%s", what, got, want, r.code, r.stdout, r.stderr)
		}
	}
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--host-name", "srv", "--auto-approve"); r.code != 0 {
		t.Fatalf("apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := plan()
	quick("after the apply", r, true)
	if r.code != 0 {
		t.Errorf("after the apply: exit %d", r.code)
	}
	quick("--refresh", plan("--refresh"), false)

	// Another table in the namespace moves the generation: the long way,
	// no changes, and the shortcut again after that full check.
	testns.NFT(t, ns, "add", "table", "ip", "other")
	r = plan()
	quick("after another table changed", r, false)
	if r.code != 0 {
		t.Errorf("after another table changed: exit %d\n%s", r.code, r.stdout)
	}
	quick("after the full check", plan(), true)

	// Drift: a rule deleted outside hostwall.
	testns.NFT(t, ns, "flush", "chain", "inet", "hostwall", "pol/web/in")
	r = plan()
	quick("after drift", r, false)
	if r.code != 2 {
		t.Errorf("after drift: exit %d, want 2\n%s", r.code, r.stdout)
	}
	hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--host-name", "srv", "--auto-approve")
	quick("after the repair", plan(), true)

	// A changed file.
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(strings.Replace(allow8080, "8080", "8081", 1)), 0o644)
	r = plan()
	quick("after a file changed", r, false)
	if r.code != 2 || !strings.Contains(r.stdout, "8081") {
		t.Errorf("after a file changed: exit %d, want 2 and the new port\n%s", r.code, r.stdout)
	}
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(allow8080), 0o644)
	quick("the file back as it was", plan(), true)

	// Another host name on the command line.
	quick("another --host-name", hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--host-name", "other"), false)

	// Another binary (a rebuild).
	other := filepath.Join(t.TempDir(), "hostwall")
	testns.Run(t, "cp", binary, other)
	cmd := exec.Command(other, "plan", "-c", dir, "--netns", ns, "--host-name", "srv")
	cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...)
	out, _ := cmd.CombinedOutput()
	quick("another binary", result{stdout: string(out)}, false)

	// A file the trust checks refuse now: the shortcut must not skip them.
	if os.Geteuid() == 0 {
		plan() // the other binary's plan recorded its own check: one full check again
		quick("before chmod", plan(), true)
		os.Chmod(filepath.Join(dir, "policy.hcl"), 0o666)
		r = plan()
		if r.code != 1 || !strings.Contains(r.stderr, "Untrusted") {
			t.Errorf("a group- and world-writable file: exit %d, want 1 and the trust check's refusal\n%s%s", r.code, r.stdout, r.stderr)
		}
		os.Chmod(filepath.Join(dir, "policy.hcl"), 0o644)
	}
}

// TestShortcutNotFooledByANewNamespace: a namespace made again under the
// same name starts its generations again; even brought to the recorded
// generation, it is not the namespace hostwall verified, and plan sees the
// missing table.
func TestShortcutNotFooledByANewNamespace(t *testing.T) {
	testns.RequireRoot(t)
	name := "hwtest-samename-" + filepath.Base(t.TempDir())
	add := func() {
		testns.Run(t, "ip", "netns", "add", name)
	}
	add()
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	dir := writeConfig(t, map[string]string{"policy.hcl": allow8080})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", name, "--host-name", "srv", "--auto-approve"); r.code != 0 {
		t.Fatalf("apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var run string
	for _, e := range dirsOf(t) {
		if v, ok := strings.CutPrefix(e, "HOSTWALL_RUN_DIR="); ok {
			run = v
		}
	}
	data, err := os.ReadFile(filepath.Join(run, "verified-"+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Generation uint32 }
	json.Unmarshal(data, &rec)

	testns.Run(t, "ip", "netns", "del", name)
	add()
	c, err := nft.Open(nft.Options{NetNS: name})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; ; i++ {
		gen, err := c.Generation()
		if err != nil {
			t.Fatal(err)
		}
		if gen == rec.Generation {
			break
		}
		if gen > rec.Generation || i > 100 {
			t.Fatalf("cannot bring the new namespace to generation %d (at %d)", rec.Generation, gen)
		}
		testns.NFT(t, name, "add", "table", "ip", "t")
	}
	r := hostwall(t, "", "plan", "-c", dir, "--netns", name, "--host-name", "srv", "--detailed-exitcode")
	if r.code != 2 || strings.Contains(r.stdout, shortcut) {
		t.Errorf("the new namespace at the recorded generation: exit %d, want 2 (the table is missing)\n%s%s", r.code, r.stdout, r.stderr)
	}
}

const fromRecord = "(Planned against the sets hostwall verified at nftables generation"

// blocking denies what a nets file lists.
const blocking = `
network_set "blocklist" {
  labels    = { blocked = "true" }
  nets_file = "blocklist.txt"
}
policy "blocklist" {
  order = 10
  ingress {
    action = "deny"
    source { selector = "blocked == 'true'" }
  }
}
`

// TestPlanFromVerifiedSets: while the kernel has not moved since hostwall
// verified it, a change to a nets_file is planned against the recorded sets
// without reading the kernel, says so, and applies exactly (nft is the
// oracle); a change to rules, any other nftables change, a damaged record
// and --refresh take the long way, which sees the same.
func TestPlanFromVerifiedSets(t *testing.T) {
	ns := testns.New(t)
	dir := writeConfig(t, map[string]string{"policy.hcl": allow8080 + blocking, "blocklist.txt": "192.0.2.0/24\n198.51.100.7\n"})
	run := func(args ...string) result {
		t.Helper()
		return hostwall(t, "", append(args, "-c", dir, "--netns", ns, "--host-name", "srv")...)
	}
	list := func(nets ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte(strings.Join(nets, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kernelHas := func(what string, want, notWant string) {
		t.Helper()
		out := testns.NFT(t, ns, "list", "table", "inet", "hostwall")
		if !strings.Contains(out, want) || strings.Contains(out, notWant) {
			t.Errorf("%s: the kernel's table should hold %s and not %s:\n%s", what, want, notWant, out)
		}
	}
	if r := run("apply", "--auto-approve"); r.code != 0 {
		t.Fatalf("apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	list("192.0.2.0/24", "203.0.113.9")
	r := run("plan", "--detailed-exitcode")
	if r.code != 2 || !strings.Contains(r.stdout, fromRecord) || !strings.Contains(r.stdout, "- 198.51.100.7") || !strings.Contains(r.stdout, "+ 203.0.113.9") {
		t.Errorf("a changed nets_file: exit %d, want 2, planned from the record, one element out and one in\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("plan", "--detailed-exitcode", "--refresh"); r.code != 2 || strings.Contains(r.stdout, fromRecord) || !strings.Contains(r.stdout, "+ 203.0.113.9") {
		t.Errorf("--refresh: exit %d, want 2, from a read\n%s", r.code, r.stdout)
	}
	if r := run("apply", "--auto-approve"); r.code != 0 || !strings.Contains(r.stdout, fromRecord) {
		t.Fatalf("apply of a changed nets_file: exit %d, want 0 and planned from the record\n%s%s", r.code, r.stdout, r.stderr)
	}
	kernelHas("after the apply from the record", "203.0.113.9", "198.51.100.7")
	if r := run("plan", "--detailed-exitcode", "--refresh"); r.code != 0 {
		t.Errorf("after the apply from the record, a full read finds changes: exit %d\n%s", r.code, r.stdout)
	}

	// Another writer: the record no longer stands for the kernel.
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", setHolding(t, ns, "203.0.113.9"), "{ 198.18.0.1 }")
	list("192.0.2.0/24", "203.0.113.10")
	r = run("apply", "--auto-approve")
	if r.code != 0 || strings.Contains(r.stdout, fromRecord) || !strings.Contains(r.stdout, "- 198.18.0.1") {
		t.Errorf("after another writer: exit %d, want 0, from a read that removes its element\n%s%s", r.code, r.stdout, r.stderr)
	}
	kernelHas("after another writer", "203.0.113.10", "198.18.0.1")

	// A change to the rules: the long way.
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(strings.Replace(allow8080, "8080", "8081", 1)+blocking), 0o644)
	if r := run("plan", "--detailed-exitcode"); r.code != 2 || strings.Contains(r.stdout, fromRecord) {
		t.Errorf("a changed rule: exit %d, want 2 from a read\n%s", r.code, r.stdout)
	}
	if r := run("apply", "--auto-approve"); r.code != 0 {
		t.Fatalf("apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A damaged base beside the record: the long way, never a wrong plan.
	runDir := runDirOf(t)
	bases, _ := filepath.Glob(filepath.Join(runDir, "verified-*.base"))
	if len(bases) != 1 {
		t.Fatalf("want one recorded base in %s, found %v", runDir, bases)
	}
	os.WriteFile(bases[0], []byte("damaged"), 0o600)
	list("192.0.2.0/24")
	if r := run("plan", "--detailed-exitcode"); r.code != 2 || strings.Contains(r.stdout, fromRecord) || !strings.Contains(r.stdout, "- 203.0.113.10") {
		t.Errorf("a damaged base: exit %d, want 2 from a read\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// runDirOf is the run directory the test's hostwall commands use.
func runDirOf(t *testing.T) string {
	for _, e := range dirsOf(t) {
		if v, ok := strings.CutPrefix(e, "HOSTWALL_RUN_DIR="); ok {
			return v
		}
	}
	t.Fatal("no run directory")
	return ""
}

// TestRunDirKeepsNoDecoding: validate, explain and apply, run as root,
// leave nothing of the policy files' decoding in the run directory (an
// on-disk cache of it, cache-decoded-*, was written by every command and
// pruned by none).
func TestRunDirKeepsNoDecoding(t *testing.T) {
	ns := testns.New(t)
	dir := writeConfig(t, map[string]string{"policy.hcl": allow8080 + blocking, "blocklist.txt": "192.0.2.0/24\n"})
	for _, args := range [][]string{
		{"validate", "-c", dir},
		{"explain", "-c", dir, "--host-name", "srv", "--iface", "eth0", "--in", "--proto", "tcp", "--dport", "8080"},
		{"apply", "--auto-approve", "-c", dir, "--netns", ns, "--host-name", "srv"},
	} {
		if r := hostwall(t, "", args...); r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(runDirOf(t), "cache-*")); len(left) != 0 {
		t.Errorf("the run directory holds %v", left)
	}
}

// setHolding names the set of the hostwall table whose elements include
// addr, as nft lists it.
func setHolding(t *testing.T, ns, addr string) string {
	t.Helper()
	set := ""
	for _, line := range strings.Split(testns.NFT(t, ns, "list", "table", "inet", "hostwall"), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "set" {
			set = f[1]
		}
		if strings.Contains(line, addr) && set != "" {
			return set
		}
	}
	t.Fatalf("no set holds %s", addr)
	return ""
}

// TestNoOpApplyShortcut: an apply with nothing to do (the files and the
// kernel as at the last verified apply, and the current generation recorded
// from these files) says so without loading, compiling or committing, and
// records no generation; a generation missing for them, --refresh, another
// nftables change or a trial each take the long way.
func TestNoOpApplyShortcut(t *testing.T) {
	ns := testns.New(t)
	dir := writeConfig(t, map[string]string{"policy.hcl": allow8080})
	apply := func(env []string, args ...string) result {
		t.Helper()
		return hostwallEnv(t, "", env, append([]string{"apply", "-c", dir, "--netns", ns, "--host-name", "srv", "--auto-approve"}, args...)...)
	}
	quick := func(what string, r result, want bool) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		if got := strings.Contains(r.stdout, shortcut); got != want {
			t.Errorf("%s: shortcut taken = %v, want %v\n%s", what, got, want, r.stdout)
		}
	}
	quick("the first apply", apply(nil), false)
	quick("again", apply(nil), true)
	if n := generationCount(t); n != 1 {
		t.Errorf("%d generations after a no-op apply, want 1", n)
	}
	quick("--refresh", apply(nil, "--refresh"), false)

	// Another state directory has no generation of these files: the long
	// way records one (without a commit), and then the shortcut holds.
	other := []string{"HOSTWALL_STATE_DIR=" + t.TempDir()}
	quick("without a recorded generation", apply(other), false)
	r := hostwallEnv(t, "", other, "generations", "--json")
	if !strings.Contains(r.stdout, "no kernel change") {
		t.Errorf("the long way recorded no generation:\n%s%s", r.stdout, r.stderr)
	}
	quick("with it recorded", apply(other), true)

	testns.NFT(t, ns, "add", "table", "ip", "other")
	quick("after another table changed", apply(nil), false)
	quick("after that full check", apply(nil), true)

	// A trial: the long way refuses a second apply until it is decided.
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(strings.Replace(allow8080, "8080", "8081", 1)), 0o644)
	if r := apply(nil, "--confirm-timeout", "2s"); r.code != 0 {
		t.Fatalf("trial apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	tr := trialOf(t, ns)
	if tr == nil {
		t.Fatal("no trial recorded")
	}
	if r := apply(nil); r.code == 0 || !strings.Contains(r.stderr, "on trial") {
		t.Errorf("a no-op apply during a trial: exit %d, want the refusal\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", "confirm", "--netns", ns); r.code != 0 {
		t.Fatalf("confirm: %s", r.stderr)
	}
	await(t, time.Until(tr.Deadline)+3*time.Second, "the guard exits", guardGone(t, tr))
	quick("after the confirmed trial", apply(nil), true)
}
