package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/planner"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostwall-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "hostwall")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hostwall: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

var testDirs sync.Map // test (*testing.T: each run of -count has its own) → state and run dirs

// dirsOf returns the test's own state and run directories: no test ever
// uses /var/lib/hostwall or /run/hostwall.
func dirsOf(t *testing.T) []string {
	if d, ok := testDirs.Load(t); ok {
		return d.([]string)
	}
	state, run := t.TempDir(), t.TempDir()
	testns.StopStragglers(t, run) // a trial's guard outliving the test
	d := []string{"HOSTWALL_STATE_DIR=" + state, "HOSTWALL_RUN_DIR=" + run}
	testDirs.Store(t, d)
	return d
}

// baseEnv is the test's environment without SSH_CONNECTION: a test run
// over SSH must not have its commands checked against that connection
// (the tests that want it set it).
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_CONNECTION=") {
			env = append(env, kv)
		}
	}
	return env
}

// hostwall runs the binary with args and optional stdin.
func hostwall(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return hostwallEnv(t, stdin, nil, args...)
}

// hostwallEnv is hostwall with extra environment.
func hostwallEnv(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	r := runHostwall(t, stdin, env, args...)
	if r.code == 0 && len(args) > 0 && args[0] == "apply" {
		converged(t, env, args[1:])
	}
	return r
}

// runHostwall is hostwallEnv without the check after an apply (for applies
// that race each other).
func runHostwall(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Errorf("running hostwall: %v", err)
		r.code = -1
	}
	return r
}

// valued are the global flags that take a value.
var valued = map[string]bool{"-c": true, "--config": true, "--netns": true, "--host-name": true, "--state-dir": true, "--run-dir": true,
	"--max-file-bytes": true, "--max-nets-file-bytes": true, "--max-policies": true, "--max-rules": true, "--max-set-elements": true, "--log-format": true}

// converged checks, after an apply of args that succeeded, that a plan
// reading the kernel in full (--refresh) finds nothing to change: whatever
// shortcut the apply took, the kernel holds what it reported. A trial's
// apply is checked by its test, which knows when it ends.
func converged(t *testing.T, env, args []string) {
	t.Helper()
	plan := []string{"plan", "--refresh", "--detailed-exitcode"}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--confirm-timeout":
			if i+1 < len(args) && args[i+1] != "0" && args[i+1] != "0s" {
				return
			}
			i++
		case a == "--auto-approve" || a == "--force" || a == "--wait" || a == "--refresh":
		case a == "--lock-timeout":
			i++
		case valued[a] && i+1 < len(args):
			plan = append(plan, a, args[i+1])
			i++
		case strings.HasPrefix(a, "-"):
			plan = append(plan, a)
		} // else a saved plan's file
	}
	if r := hostwallEnv(t, "", env, plan...); r.code != 0 {
		t.Errorf("after apply %s, plan --refresh finds the kernel different (exit %d):\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
}

func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const allow8080 = `
host_endpoint "eth0" { interface = "eth0" }
policy "web" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [8080] }
  }
  egress { action = "allow" }
}
`

const denyAll = `
host_endpoint "eth0" { interface = "eth0" }
policy "deny-all" {
  ingress { action = "deny" }
  egress { action = "deny" }
}
`

// lab is a server namespace with two interfaces towards a client namespace:
// eth0 (10.200.1.2, covered by a host endpoint) and eth1 (10.200.2.2, not).
type lab struct{ srv, cli string }

func newLab(t *testing.T) lab {
	t.Helper()
	l := lab{srv: testns.New(t), cli: testns.New(t)}
	testns.Veth(t, l.cli, "c0", "10.200.1.1/24", l.srv, "eth0", "10.200.1.2/24")
	testns.Veth(t, l.cli, "c1", "10.200.2.1/24", l.srv, "eth1", "10.200.2.2/24")
	// IPv6 too, without duplicate address detection so it is usable at once.
	testns.Run(t, "ip", "-n", l.cli, "addr", "add", "fd00:200:1::1/64", "dev", "c0", "nodad")
	testns.Run(t, "ip", "-n", l.srv, "addr", "add", "fd00:200:1::2/64", "dev", "eth0", "nodad")
	for _, port := range []int{22, 8080, 8081} {
		serveTCP(t, l.srv, port)
	}
	return l
}

// serveTCP accepts (and closes) TCP connections on port in namespace ns
// until the test ends.
func serveTCP(t *testing.T, ns string, port int) {
	t.Helper()
	ln, err := testns.ServeClosing(ns, fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

// connects reports whether a TCP connection from ns to addr is accepted. A
// dropped SYN shows as the dial timing out.
func connects(t *testing.T, ns, addr string) bool {
	t.Helper()
	return reached(t, ns, "dialing "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// reached runs try in namespace ns: true when it succeeds, false when it
// times out (what a firewall's drop looks like); anything else fails the
// test, naming what was tried.
func reached(t *testing.T, ns, what string, try func() error) bool {
	t.Helper()
	err := testns.Do(ns, try)
	var ne net.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	t.Fatalf("%s from %s: %v (neither through nor dropped)", what, ns, err)
	return false
}

func (l lab) expect(t *testing.T, cases map[string]bool) {
	t.Helper()
	for addr, want := range cases {
		ns := l.cli
		if strings.HasPrefix(addr, "127.") {
			ns = l.srv
		}
		if got := connects(t, ns, addr); got != want {
			t.Errorf("connection to %s: connected=%v, want %v", addr, got, want)
		}
	}
}

func (l lab) apply(t *testing.T, config string) {
	t.Helper()
	dir := writeConfig(t, map[string]string{"policy.hcl": config})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", l.srv, "--auto-approve", "--host-name", "srv"); r.code != 0 {
		t.Fatalf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestPackets sends real TCP connections through the applied ruleset.
func TestPackets(t *testing.T) {
	l := newLab(t)
	l.expect(t, map[string]bool{"10.200.1.2:8081": true}) // no firewall yet

	l.apply(t, allow8080)
	l.expect(t, map[string]bool{
		"10.200.1.2:8080":      true, // allowed by the policy
		"[fd00:200:1::2]:8080": true, // over IPv6: neighbour discovery passes the covered interface
		"[fd00:200:1::2]:8081": false,
		"10.200.1.2:8081":      false, // not allowed: default deny
		"10.200.1.2:22":        true,  // failsafe
		"10.200.2.2:8081":      true,  // eth1 has no host endpoint: untouched
		"127.0.0.1:8081":       true,  // nor has lo
	})

	l.apply(t, denyAll)
	l.expect(t, map[string]bool{
		"10.200.1.2:22":   true, // failsafe beats an explicit deny
		"10.200.1.2:8080": false,
		"10.200.2.2:8080": true,
	})
}

// TestCLI exercises the command-line contract against a namespace.
func TestCLI(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	good := writeConfig(t, map[string]string{"policy.hcl": allow8080})
	base := []string{"-c", good, "--netns", ns, "--host-name", "srv"}

	if r := hostwall(t, "", append([]string{"validate"}, base...)...); r.code != 0 || !strings.Contains(r.stdout, "Success!") {
		t.Errorf("validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", append([]string{"plan", "--detailed-exitcode"}, base...)...); r.code != 2 || !strings.Contains(r.stdout, "to add") {
		t.Errorf("plan with changes: exit %d, want 2\n%s", r.code, r.stdout)
	}
	r := hostwall(t, "", append([]string{"plan", "--json"}, base...)...)
	var p planner.JSONPlan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || !p.CreateTable || p.Summary.Add == 0 {
		t.Errorf("plan --json: %v\n%s", err, r.stdout)
	}
	if r := hostwall(t, "no\n", append([]string{"apply"}, base...)...); r.code != 1 || !strings.Contains(r.stdout, "Apply cancelled") {
		t.Errorf("apply answered no: exit %d\n%s", r.code, r.stdout)
	}
	if out := testns.NFT(t, ns, "list", "tables"); strings.Contains(out, "hostwall") {
		t.Fatalf("a cancelled apply changed the kernel:\n%s", out)
	}
	if r := hostwall(t, "yes\n", append([]string{"apply"}, base...)...); r.code != 0 || !strings.Contains(r.stdout, "Apply complete!") {
		t.Errorf("apply answered yes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", append([]string{"plan", "--detailed-exitcode"}, base...)...); r.code != 0 || !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("plan after apply: exit %d, want 0\n%s", r.code, r.stdout)
	}

	// The environment sets every flag.
	cmd := exec.Command(binary, "show")
	cmd.Env = append(append(baseEnv(), dirsOf(t)...), "HOSTWALL_NETNS="+ns)
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "chain pol/web/in") {
		t.Errorf("show with HOSTWALL_NETNS: %v\n%s", err, out)
	}

	// Bad input: every problem reported with file:line:col, nothing applied.
	before := testns.NFT(t, ns, "list", "ruleset")
	bad := writeConfig(t, map[string]string{"policy.hcl": strings.Replace(allow8080, "8080", `"80:70"`, 1) + "\npolicy \"x\" {\n  selector = \"role ==\"\n}\n"})
	r = hostwall(t, "", "apply", "-c", bad, "--netns", ns, "--auto-approve")
	if r.code != 1 {
		t.Errorf("apply of an invalid config exited %d, want 1", r.code)
	}
	for _, want := range []string{
		filepath.Join(bad, "policy.hcl") + ":7:28: Invalid port — ",
		filepath.Join(bad, "policy.hcl") + ":13:14: Invalid selector — ",
		"nothing was applied",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if after := testns.NFT(t, ns, "list", "ruleset"); after != before {
		t.Errorf("an invalid configuration changed the kernel")
	}
	if r := hostwall(t, "", "validate", "-c", bad); r.code != 1 {
		t.Errorf("validate of an invalid config exited %d, want 1", r.code)
	}
	if r := hostwall(t, "", "plan", "-c", filepath.Join(good, "missing")); r.code != 1 || !strings.Contains(r.stderr, "Cannot read the configuration directory") {
		t.Errorf("missing config dir: exit %d\n%s", r.code, r.stderr)
	}
	r = hostwall(t, "", "explain", "-c", good, "--host-name", "srv", "--iface", "eth0", "--in", "--proto", "tcp", "--src", "192.0.2.1", "--dport", "8080")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `allow: policy rule: tier "default", policy "web", ingress rule 1 (allow)`) {
		t.Errorf("explain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hostwall(t, "", "explain", "-c", good, "--iface", "eth0", "--in", "--proto", "tcp", "--dport", "8081", "--json")
	var ex struct{ Verdict string }
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || ex.Verdict != "deny" {
		t.Errorf("explain --json: %v %q", err, r.stdout)
	}
	if r := hostwall(t, "", "explain", "-c", good, "--iface", "eth0", "--proto", "tcp"); r.code != 1 || !strings.Contains(r.stderr, "exactly one of --in") {
		t.Errorf("explain without a direction: exit %d %s", r.code, r.stderr)
	}
	if r := hostwall(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "hostwall ") {
		t.Errorf("version: %q", r.stdout)
	}
}
