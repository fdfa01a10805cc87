package main_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/state"
)

// runningAgent is `hostwall agent` started for a test.
type runningAgent struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	notify *net.UnixConn
}

// syncBuffer is the agent's stderr, read by the test while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged awaits a log line containing s.
func (a *runningAgent) logged(t *testing.T, timeout time.Duration, s string) {
	t.Helper()
	await(t, timeout, "the agent logs "+strconv.Quote(s), func() bool { return strings.Contains(a.log.String(), s) })
}

// startAgent runs the agent on dir in namespace ns, with NOTIFY_SOCKET
// pointing at a socket the test reads.
func startAgent(t *testing.T, ns, dir string, more ...string) *runningAgent {
	t.Helper()
	return launchAgent(t, nil, nil, ns, dir, more...)
}

// startAgentInside is startAgent with the agent's process inside ns too,
// so that what it listens on (--metrics-listen) is the namespace's.
func startAgentInside(t *testing.T, ns, dir string, more ...string) *runningAgent {
	t.Helper()
	return launchAgent(t, []string{"ip", "netns", "exec", ns}, nil, ns, dir, more...)
}

// launchAgent runs the agent after the command wrap (none: directly), with
// env added to its environment, in a process group of its own that is
// killed when the test ends.
func launchAgent(t *testing.T, wrap, env []string, ns, dir string, more ...string) *runningAgent {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &runningAgent{log: &syncBuffer{}, notify: conn}
	host := []string{"--host-name", "srv"}
	if slices.Contains(more, "--node") || slices.Contains(more, "--host-name") {
		host = nil // the test names the host
	}
	argv := append(append(append(wrap, binary, "agent", "-c", dir, "--netns", ns, "--log-format", "json"), host...), more...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Env = append(append(append(baseEnv(), "NOTIFY_SOCKET="+sock), env...), dirsOf(t)...)
	a.cmd.Stderr = a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL); a.cmd.Wait() })
	return a
}

// next returns the next sd_notify message.
func (a *runningAgent) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	a.notify.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := a.notify.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v\nagent log:\n%s", err, a.log)
	}
	return string(buf[:n])
}

// expect reads messages until one starts with prefix, returning it.
func (a *runningAgent) expect(t *testing.T, prefix string) string {
	t.Helper()
	var seen []string
	for i := 0; i < 20; i++ {
		m := a.next(t)
		if strings.HasPrefix(m, prefix) {
			return m
		}
		seen = append(seen, m)
	}
	t.Fatalf("no message starting %q; saw %q", prefix, seen)
	return ""
}

func generationCount(t *testing.T) int {
	t.Helper()
	r := hostwall(t, "", "generations", "--json")
	var out struct{ Generations []json.RawMessage }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("generations: %v %s", err, r.stdout)
	}
	return len(out.Generations)
}

const agentPolicy = `
host_endpoint "eth0" { interface = "eth0" }
policy "p" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [%d] }
  }
}
`

// nsWithEth0 is a new namespace holding an interface eth0 for the agent's
// host endpoint.
func nsWithEth0(t *testing.T) string {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	return ns
}

func policyFor(port int) string { return strings.Replace(agentPolicy, "%d", strconv.Itoa(port), 1) }

func itoa(n int) string { return strconv.Itoa(n) }

// TestAgentNotify checks the sd_notify sequence for start, reload, an
// invalid edit, the watchdog and stop, and that the ruleset stays after
// the stop.
func TestAgentNotify(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	t.Setenv("WATCHDOG_USEC", "1000000")
	a := startAgent(t, ns, dir)
	if m := a.next(t); m != "STATUS=starting" {
		t.Errorf("first message %q, want STATUS=starting", m)
	}
	a.expect(t, "READY=1")
	if m := a.expect(t, "STATUS="); !strings.Contains(m, "generation 1") || !strings.Contains(m, "rules") {
		t.Errorf("status after start: %q", m)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	if m := a.next(t); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	a.expect(t, "READY=1")
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte("policy \"p\" {\n  selector = \"role ==\"\n}\n"), 0o644)
	if m := a.expect(t, "STATUS=INVALID"); !strings.Contains(m, "p.hcl:2:14: Invalid selector") || !strings.Contains(m, "keeping generation 1") {
		t.Errorf("status after an invalid edit: %q", m)
	}
	start := time.Now()
	a.expect(t, "WATCHDOG=1")
	a.expect(t, "WATCHDOG=1")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two watchdog pings took %s with WATCHDOG_USEC=1s, want them every 0.5s", d)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.expect(t, "STOPPING=1")
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("agent exit: %v", err)
	}
	if out := testns.NFT(t, ns, "list", "tables"); !strings.Contains(out, "hostwall") {
		t.Error("the ruleset vanished when the agent stopped")
	}
}

// TestAgentStartsOnBrokenFiles: a boot with a broken file (the kernel
// empty, as after a reboot) still comes up firewalled, on the last good
// generation, and says why in STATUS=.
func TestAgentStartsOnBrokenFiles(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	hostwall(t, "", "apply", "--auto-approve", "-c", dir, "--netns", ns, "--host-name", "srv")
	testns.NFT(t, ns, "delete", "table", "inet", "hostwall")
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte("policy \"p\" {\n  selector = \"role ==\"\n}\n"), 0o644)

	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	if m := a.expect(t, "STATUS="); !strings.Contains(m, "generation 1") || !strings.Contains(m, "p.hcl:2:14: Invalid selector") {
		t.Errorf("status after a start on broken files: %q", m)
	}
	if out := testns.NFT(t, ns, "list", "chain", "inet", "hostwall", "pol/p/in"); !strings.Contains(out, "dport 80 ") {
		t.Errorf("the last good generation is not in force:\n%s", out)
	}
}

// TestAgentEdits: each way of changing the directory — in place, an
// editor's rename-save, sed -i, a dpkg-style .dpkg-new rename, the
// directory removed and created again — leads to exactly one apply, and the
// kernel then matches the files.
func TestAgentEdits(t *testing.T) {
	ns := nsWithEth0(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "hostwall")
	os.Mkdir(dir, 0o755)
	file := filepath.Join(dir, "p.hcl")
	os.WriteFile(file, []byte(policyFor(80)), 0o644)
	a := startAgent(t, ns, dir, "--debounce", "100ms")
	a.expect(t, "READY=1")
	port := 80
	edits := []struct {
		name string
		do   func(content string)
	}{
		{"in place", func(c string) { os.WriteFile(file, []byte(c), 0o644) }},
		{"editor rename-save", func(c string) {
			os.WriteFile(filepath.Join(dir, ".p.hcl.swp"), []byte("swap"), 0o644)
			os.Rename(file, file+"~")
			os.WriteFile(file, []byte(c), 0o644)
			os.Remove(file + "~")
			os.Remove(filepath.Join(dir, ".p.hcl.swp"))
		}},
		{"sed -i", func(c string) {
			testns.Run(t, "sed", "-i", "s/ports = \\[[0-9]*\\]/ports = ["+itoa(port)+"]/", file)
		}},
		{"dpkg-new rename", func(c string) {
			os.WriteFile(file+".dpkg-new", []byte(c), 0o644)
			os.Rename(file+".dpkg-new", file)
		}},
		{"directory removed and recreated", func(c string) {
			os.RemoveAll(dir)
			os.Mkdir(dir, 0o755)
			os.WriteFile(file, []byte(c), 0o644)
		}},
	}
	for _, e := range edits {
		before := generationCount(t)
		port++
		e.do(policyFor(port))
		args := []string{"plan", "--detailed-exitcode", "-c", dir, "--netns", ns, "--host-name", "srv"}
		deadline := time.Now().Add(5 * time.Second)
		for hostwall(t, "", args...).code != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the kernel does not match the files within 5s\nagent log:\n%s", e.name, a.log)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
		time.Sleep(400 * time.Millisecond) // settle: long enough for a stray second apply to show
		if n := generationCount(t); n != before+1 {
			t.Errorf("%s: %d applies, want exactly one\nagent log:\n%s", e.name, n-before, a.log)
		}
	}
}

// TestAgentRepairsDrift: changes made with nft to our table — a rule
// added, the whole table deleted — are repaired and logged with nft's
// name; the time from change to repair is reported.
func TestAgentRepairsDrift(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	for _, c := range []struct {
		name     string
		change   []string
		repaired func(table string) bool
	}{
		{"rule added", []string{"add", "rule", "inet", "hostwall", "pol/p/in", "tcp", "dport", "9999", "accept"},
			func(table string) bool {
				return strings.Contains(table, "dport 80 ") && !strings.Contains(table, "9999")
			}},
		{"table deleted", []string{"delete", "table", "inet", "hostwall"},
			func(table string) bool { return strings.Contains(table, "dport 80 ") }},
	} {
		changed := time.Now()
		testns.NFT(t, ns, c.change...)
		deadline := changed.Add(15 * time.Second)
		for {
			out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "hostwall").Output()
			if c.repaired(string(out)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not repaired within 15s\nagent log:\n%s", c.name, a.log)
			}
			time.Sleep(5 * time.Millisecond) // polling the kernel with a deadline
		}
		t.Logf("%s: repaired %s after the change (nft's run included)", c.name, time.Since(changed).Round(time.Millisecond))
	}
	a.logged(t, 5*time.Second, "repaired drift")
	if !strings.Contains(a.log.String(), `"why":"changed by nft (pid `) {
		t.Errorf("the repair does not name nft as the changer:\n%s", a.log)
	}
}

// TestAgentTrialAfterRestart: agent and guard killed during a trial; the
// agent started again rolls the trial back at its deadline, ending on the
// previous generation, and does not re-apply the rolled-back files.
func TestAgentTrialAfterRestart(t *testing.T) {
	l := newSSHLab(t)
	a := startAgent(t, l.srv, l.cfgA)
	a.expect(t, "READY=1")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "2s")
	tr := trialOf(t, l.srv)
	if !l.holds(t, l.cfgB) {
		t.Fatal("the trial is not in force")
	}
	a.cmd.Process.Kill()
	a.cmd.Wait()
	killGuard(t, tr)
	b := startAgent(t, l.srv, l.cfgA)
	b.expect(t, "READY=1")
	if !l.holds(t, l.cfgB) {
		t.Fatal("the restarted agent ended the trial before its deadline")
	}
	await(t, time.Until(tr.Deadline)+guardSlack, "the previous generation is back", func() bool { return l.holds(t, l.cfgA) })
	if !l.sshWorks(t) {
		t.Error("port 22 still unreachable after the rollback")
	}
	b.logged(t, 5*time.Second, "trial rolled back")
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 3 || !strings.Contains(r.stderr, "ROLLED BACK") {
		t.Errorf("confirm through the agent after the rollback: exit %d, %s; want 3 and the rollback named", r.code, r.stderr)
	}
}

func agentStatus(t *testing.T, l sshLab) engine.Status {
	t.Helper()
	r := hostwall(t, "", "status", "--json", "--netns", l.srv)
	var s engine.Status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 0 {
		t.Fatalf("status exited %d: %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	return s
}

// TestAgentControl: status, confirm and reload through the control socket
// (root-only, 0600), with per-rule counters that count real packets; a
// second agent is refused; without an agent, status falls back and reload
// says so.
func TestAgentControl(t *testing.T) {
	l := newSSHLab(t)
	a := startAgent(t, l.srv, l.cfgA)
	a.expect(t, "READY=1")
	run := strings.TrimPrefix(dirsOf(t)[1], "HOSTWALL_RUN_DIR=")
	sock := state.RunDir{Dir: run}.SocketPath(l.srv)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v %v, want a socket with mode 0600", sock, fi, err)
	}

	for i := 0; i < 3; i++ { // accepted by the policy, refused by the host: 3 SYNs counted
		testns.Do(l.cli, func() error {
			if c, err := net.DialTimeout("tcp", "10.201.1.2:8080", time.Second); err == nil {
				c.Close()
			}
			return nil
		})
	}
	s := agentStatus(t, l)
	if s.Agent != a.cmd.Process.Pid || s.Generation != 1 || s.LastApply == nil || s.LastApply.Result != "applied" {
		t.Errorf("status = %+v, want agent %d on generation 1, last apply applied", s, a.cmd.Process.Pid)
	}
	var counted uint64
	for _, c := range s.Chains {
		for _, r := range c.Rules {
			if c.Chain == "pol/p/in" && strings.Contains(r.Rule, "dport 8080") {
				counted = r.Packets
				if c.Description != `policy "p", ingress` {
					t.Errorf("pol/p/in described as %q", c.Description)
				}
			}
		}
	}
	if counted < 3 {
		t.Errorf("the allow rule for 8080 counted %d packets, want at least 3; counters: %+v", counted, s.Chains)
	}

	second := startAgent(t, l.srv, l.cfgA)
	if err := second.cmd.Wait(); err == nil || !strings.Contains(second.log.String(), "another agent is running") {
		t.Errorf("a second agent on the namespace was not refused: %v\n%s", err, second.log)
	}

	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "60s")
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 0 || !strings.Contains(r.stdout, "Generation 2 confirmed") {
		t.Fatalf("confirm through the agent: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if s := agentStatus(t, l); s.Trial != nil || s.LastTrial == nil || !strings.Contains(s.LastTrial.Detail, "through the agent") {
		t.Errorf("after confirm: trial %+v, last trial %+v", s.Trial, s.LastTrial)
	}
	if r := hostwall(t, "", "reload", "--netns", l.srv); r.code != 0 || !strings.Contains(r.stdout, "generation 3 is in force") {
		t.Fatalf("reload: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) {
		t.Error("after reload the kernel does not hold the agent's files")
	}

	// Only root and the agent's user are served, whatever the socket's mode.
	os.Chmod(filepath.Dir(run), 0o755)
	os.Chmod(run, 0o755)
	os.Chmod(sock, 0o666)
	os.Chmod(filepath.Dir(binary), 0o755)
	nobody := exec.Command(binary, "status", "--netns", l.srv, "--run-dir", run, "--state-dir", t.TempDir())
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := nobody.CombinedOutput(); err == nil || !strings.Contains(string(out), "uid 65534 may not control the firewall") {
		t.Errorf("uid 65534 was served: %v\n%s", err, out)
	}

	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
	if r := hostwall(t, "", "reload", "--netns", l.srv); r.code == 0 || !strings.Contains(r.stderr, "no agent is running") {
		t.Errorf("reload without an agent: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", "status", "--netns", l.srv); r.code != 0 || !strings.Contains(r.stdout, "Agent: not running") || !strings.Contains(r.stdout, "dport 8080") {
		t.Errorf("status without an agent: %d %s%s", r.code, r.stdout, r.stderr)
	}
}

// kernelGeneration is the namespace's nftables ruleset generation, as plan
// reports it.
func kernelGeneration(t *testing.T, ns, dir string) uint32 {
	t.Helper()
	r := hostwall(t, "", "plan", "--json", "-c", dir, "--netns", ns, "--host-name", "srv")
	var p struct{ Generation uint32 }
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("plan --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return p.Generation
}

// TestAgentRestartKeepsRuleset: restarting the agent (as a package upgrade
// does) commits no transaction at all: the ruleset is never missing.
func TestAgentRestartKeepsRuleset(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	before := kernelGeneration(t, ns, dir)
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	b := startAgent(t, ns, dir)
	b.expect(t, "READY=1")
	if after := kernelGeneration(t, ns, dir); after != before {
		t.Errorf("the restart moved the ruleset generation %d → %d: it changed the kernel", before, after)
	}
}

// TestAgentNetsFile: editing a nets file is a configuration change like
// any other: one apply, and the kernel's set holds the new network.
func TestAgentNetsFile(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{
		"p.hcl": `
host_endpoint "eth0" { interface = "eth0" }
network_set "blocklist" {
  labels    = { bad = "yes" }
  nets_file = "blocklist.txt"
}
policy "block" {
  ingress {
    action = "deny"
    source { selector = "bad == 'yes'" }
  }
}
`,
		"blocklist.txt": "# bad actors\n203.0.113.0/24\n",
	})
	a := startAgent(t, ns, dir, "--debounce", "100ms")
	a.expect(t, "READY=1")
	before := generationCount(t)
	f, err := os.OpenFile(filepath.Join(dir, "blocklist.txt"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("198.51.100.7\n")
	f.Close()
	await(t, 5*time.Second, "the kernel holds the new network", func() bool {
		return strings.Contains(testns.NFT(t, ns, "list", "table", "inet", "hostwall"), "198.51.100.7")
	})
	await(t, 5*time.Second, "the generation is recorded", func() bool { return generationCount(t) > before })
	if n := generationCount(t); n != before+1 {
		t.Errorf("%d applies, want one\n%s", n-before, a.log)
	}
	// Set elements alone: verified by the generation, and the table kept
	// with them is the next plan's base — for a network taken away, and
	// for a rule changed after it (whose handles it keeps).
	a.logged(t, 5*time.Second, `"verified":"by generation"`)
	if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), []byte("198.51.100.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the kernel no longer holds the network taken away", func() bool {
		return !strings.Contains(testns.NFT(t, ns, "list", "table", "inet", "hostwall"), "203.0.113.0/24")
	})
	policy, err := os.ReadFile(filepath.Join(dir, "p.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(strings.Replace(string(policy), `action = "deny"`, `action = "log"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, 5*time.Second, "the rule is changed", func() bool {
		return strings.Contains(testns.NFT(t, ns, "list", "table", "inet", "hostwall"), `log prefix "hostwall block ingress/1: "`)
	})
	a.logged(t, 5*time.Second, `"verified":"by reading back"`)
	if r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--refresh", "--detailed-exitcode"); r.code != 0 {
		t.Errorf("after the agent's applies, plan --refresh exited %d:\n%s%s\nagent log:\n%s", r.code, r.stdout, r.stderr, a.log)
	}
}

// TestAgentFollowsTheHostBlock: without --host-name, the host block's name
// picks the host's endpoints, and it is read again with every change of the
// files, not once at start.
func TestAgentFollowsTheHostBlock(t *testing.T) {
	ns := nsWithEth0(t)
	fleet := func(host string) map[string]string {
		return map[string]string{"fleet.hcl": "host {\n  name = \"" + host + "\"\n}\n" + `
host_endpoint "web-1-eth0" {
  node      = "web-1"
  interface = "eth0"
}
policy "p" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [8080] }
  }
}
`}
	}
	dir := writeConfig(t, fleet("db-1"))
	a := startAgent(t, ns, dir, "--host-name", "", "--debounce", "100ms")
	a.expect(t, "READY=1")
	if table := testns.NFT(t, ns, "list", "ruleset"); strings.Contains(table, "hep/web-1-eth0/") {
		t.Fatalf("db-1 enforces web-1's endpoint:\n%s", table)
	}
	os.WriteFile(filepath.Join(dir, "fleet.hcl"), []byte(fleet("web-1")["fleet.hcl"]), 0o644)
	await(t, 5*time.Second, "the agent, now web-1, enforces web-1's endpoint", func() bool {
		return strings.Contains(testns.NFT(t, ns, "list", "ruleset"), "hep/web-1-eth0/")
	})
}

// TestAgentVouchesForOtherTables: while the agent runs, other programs'
// transactions on their own tables do not cost a command its shortcut —
// the agent, which follows the kernel's events, tells it that table inet
// hostwall was left alone — and a change to hostwall's table does (plan
// reads the kernel, or the agent repairs first). Without the agent the
// same plan reads the kernel.
func TestAgentVouchesForOtherTables(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	args := []string{"-c", dir, "--netns", ns, "--host-name", "srv"}
	testns.NFT(t, ns, "add", "table", "ip", "busy")
	for i := range 3 {
		testns.NFT(t, ns, "add", "chain", "ip", "busy", "c"+itoa(i))
		r := hostwall(t, "", append([]string{"plan", "--detailed-exitcode"}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "the agent saw the kernel's transactions since") {
			t.Errorf("plan after another table's change: exit %d, no word of the agent:\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	testns.NFT(t, ns, "add", "chain", "ip", "busy", "last")
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, args...)...); r.code != 0 ||
		!strings.Contains(r.stdout+r.stderr, "the agent saw the kernel's transactions since") {
		t.Errorf("no-op apply after another table's change: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A stopped agent answers nothing: the command reads the kernel.
	a.cmd.Process.Signal(syscall.SIGSTOP)
	testns.NFT(t, ns, "add", "chain", "ip", "busy", "stopped")
	if r := hostwall(t, "", append([]string{"plan", "--detailed-exitcode"}, args...)...); r.code != 0 || strings.Contains(r.stdout+r.stderr, "the agent saw") {
		t.Errorf("plan with the agent stopped: exit %d, or it claims the agent's word:\n%s%s", r.code, r.stdout, r.stderr)
	}
	a.cmd.Process.Signal(syscall.SIGCONT)
	a.cmd.Process.Kill()
	a.cmd.Wait()
	testns.NFT(t, ns, "add", "chain", "ip", "busy", "after")
	if r := hostwall(t, "", append([]string{"plan", "--detailed-exitcode"}, args...)...); r.code != 0 || strings.Contains(r.stdout+r.stderr, "the agent saw") {
		t.Errorf("plan without the agent: exit %d, or it claims the agent's word:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAgentLogsCurrentGeneration: a verification after a CLI rollback
// logs the generation the rollback made current, not the one the agent
// applied last (found by a review).
func TestAgentLogsCurrentGeneration(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(policyFor(81)), 0o644)
	a.logged(t, 10*time.Second, `"generation":2`)
	if r := hostwall(t, "", "rollback", "1", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	a.logged(t, 10*time.Second, `"msg":"verified","why":"changed by hostwall`)
	for _, line := range strings.Split(a.log.String(), "\n") {
		if strings.Contains(line, `"msg":"verified","why":"changed by hostwall`) && !strings.Contains(line, `"generation":1,`) {
			t.Errorf("the verification after the rollback logs another generation: %s", line)
		}
	}
}
