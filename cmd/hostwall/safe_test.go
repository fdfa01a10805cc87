package main_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/state"
)

// sshLab is a server namespace with a TCP service on port 22 (a stand-in
// for sshd) and a client namespace, joined by a veth pair.
type sshLab struct {
	srv, cli string
	cfgA     string // failsafe on: port 22 reachable
	cfgB     string // failsafe off, everything denied: port 22 unreachable
}

func newSSHLab(t *testing.T) sshLab {
	t.Helper()
	l := sshLab{srv: testns.New(t), cli: testns.New(t)}
	testns.Veth(t, l.cli, "c0", "10.201.1.1/24", l.srv, "eth0", "10.201.1.2/24")
	serveTCP(t, l.srv, 22)
	l.cfgA = writeConfig(t, map[string]string{"a.hcl": `
host_endpoint "eth0" { interface = "eth0" }
policy "p" {
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
`})
	l.cfgB = writeConfig(t, map[string]string{"b.hcl": `
host_endpoint "eth0" { interface = "eth0" }
failsafe {
  inbound  = []
  outbound = []
}
policy "p" {
  ingress { action = "deny" }
}
`})
	return l
}

func (l sshLab) args(cfg string, more ...string) []string {
	return append([]string{"-c", cfg, "--netns", l.srv, "--host-name", "srv"}, more...)
}

func (l sshLab) sshWorks(t *testing.T) bool { return connects(t, l.cli, "10.201.1.2:22") }

// holds reports whether the kernel holds exactly the configuration cfg,
// read in full.
func (l sshLab) holds(t *testing.T, cfg string) bool {
	r := hostwall(t, "", append([]string{"plan", "--refresh", "--detailed-exitcode"}, l.args(cfg)...)...)
	if r.code == 1 {
		t.Fatalf("plan: %s", r.stderr)
	}
	return r.code == 0
}

func (l sshLab) mustApply(t *testing.T, cfg string, more ...string) {
	t.Helper()
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve"}, l.args(cfg, more...)...)...); r.code != 0 {
		t.Fatalf("apply exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
}

// namespace identifies the test namespace ns as hostwall does.
func namespace(t *testing.T, ns string) state.Namespace {
	t.Helper()
	n, err := state.OpenNamespace(ns, "/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func trialOf(t *testing.T, ns string) *state.Trial {
	t.Helper()
	store := &state.Store{Dir: strings.TrimPrefix(dirsOf(t)[0], "HOSTWALL_STATE_DIR=")}
	tr, err := state.Trials{NS: namespace(t, ns), Store: store}.Read()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// guardPID is the trial's guard: a pid of a process of its own (a pid of 0
// or less would signal a whole process group, or everything).
func guardPID(t *testing.T, tr *state.Trial) int {
	t.Helper()
	if tr == nil || tr.GuardPID <= 0 {
		t.Fatalf("the trial records no guard pid: %+v", tr)
	}
	return tr.GuardPID
}

// killGuard kills the trial's guard.
func killGuard(t *testing.T, tr *state.Trial) {
	t.Helper()
	syscall.Kill(guardPID(t, tr), syscall.SIGKILL)
}

// trialWithoutGuard applies cfgA, then cfgB on trial for timeout, and
// kills the trial's guard: a trial nothing holds the timer of.
func (l sshLab) trialWithoutGuard(t *testing.T, timeout string) *state.Trial {
	t.Helper()
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", timeout)
	tr := trialOf(t, l.srv)
	killGuard(t, tr)
	await(t, 2*time.Second, "the guard is dead", guardGone(t, tr))
	return tr
}

// guardGone reports whether the trial's guard has exited.
func guardGone(t *testing.T, tr *state.Trial) func() bool {
	pid := guardPID(t, tr)
	return func() bool { return syscall.Kill(pid, 0) != nil }
}

// guardSlack is how long past a trial's deadline the previous generation
// may take to come back in a test: a guard rolls back within tens of
// milliseconds on a quiet machine (docs/performance.md), but CI's two
// cores run every package's tests at once, and a starved guard is late,
// not absent. A guard that never acts fails all the same.
const guardSlack = 10 * time.Second

// await polls cond until it holds or the deadline passes.
func await(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestTrialSurvivesTheCLI: a trial that blocks new connections to port 22,
// the waiting CLI killed with SIGKILL: the detached guard restores the
// previous generation once the timeout is over (guardSlack).
func TestTrialSurvivesTheCLI(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	if !l.sshWorks(t) {
		t.Fatal("port 22 unreachable under generation 1")
	}
	const timeout = 2 * time.Second
	cmd := exec.Command(binary, append([]string{"apply", "--auto-approve", "--force", "--wait", "--confirm-timeout", timeout.String()}, l.args(l.cfgB)...)...)
	cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The trial is recorded before the change reaches the kernel (write
	// ahead): wait for the change itself.
	await(t, 5*time.Second, "the trial generation is in force", func() bool { return trialOf(t, l.srv) != nil && l.holds(t, l.cfgB) })
	tr := trialOf(t, l.srv)
	if l.sshWorks(t) {
		t.Fatal("port 22 is reachable under the trial generation")
	}
	cmd.Process.Kill() // SIGKILL: the operator's session is gone
	cmd.Wait()
	await(t, time.Until(tr.Deadline)+guardSlack, "the previous generation is back", func() bool { return l.holds(t, l.cfgA) })
	if !l.sshWorks(t) {
		t.Error("after the rollback a new connection to port 22 still fails")
	}
	r := hostwall(t, "", "status", "--json", "--netns", l.srv)
	var st struct {
		Current   int
		LastTrial *state.Outcome `json:"last_trial"`
	}
	json.Unmarshal([]byte(r.stdout), &st)
	if st.LastTrial == nil || st.LastTrial.Result != state.RolledBack {
		t.Errorf("status does not report the rollback: %s", r.stdout)
	}
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 3 || !strings.Contains(r.stderr, "ROLLED BACK") {
		t.Errorf("confirm after the rollback: exit %d %s, want 3", r.code, r.stderr)
	}
}

// TestTrialConfirmed: confirmed in time, the new generation stays.
func TestTrialConfirmed(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "2s")
	tr := trialOf(t, l.srv)
	if tr == nil {
		t.Fatal("no trial recorded")
	}
	if r := hostwall(t, "", "status", "--netns", l.srv); !strings.Contains(r.stdout, "TRIAL: generation 2") {
		t.Errorf("status does not show the trial:\n%s", r.stdout)
	}
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 0 {
		t.Fatalf("confirm: %s", r.stderr)
	}
	// Past the deadline the guard has looked and gone.
	await(t, time.Until(tr.Deadline)+3*time.Second, "the guard exits", guardGone(t, tr))
	if !l.holds(t, l.cfgB) || l.sshWorks(t) {
		t.Error("a confirmed trial was rolled back")
	}
}

// TestRollbackEndsTrial: hostwall rollback during a trial ends it at once:
// the previous generation is back, the trial is over (its guard exits), and
// confirm says the trial was rolled back.
func TestRollbackEndsTrial(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "5m")
	tr := trialOf(t, l.srv)
	if tr == nil {
		t.Fatal("no trial recorded")
	}
	r := hostwall(t, "", "rollback", "--auto-approve", "--netns", l.srv)
	if r.code != 0 || !strings.Contains(r.stdout, "ends the trial of generation 2") || !strings.Contains(r.stdout, "The trial of generation 2 is over") {
		t.Fatalf("rollback during the trial: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) || !l.sshWorks(t) || trialOf(t, l.srv) != nil {
		t.Error("the trial was not rolled back")
	}
	await(t, 5*time.Second, "the guard exits", guardGone(t, tr))
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 3 || !strings.Contains(r.stderr, "ROLLED BACK") {
		t.Errorf("confirm after the rollback: exit %d %s, want 3", r.code, r.stderr)
	}
}

// TestTrialGuardRestarted: the guard killed too; a guard started again from
// the recorded trial rolls back (at once, the deadline having passed).
func TestTrialGuardRestarted(t *testing.T) {
	l := newSSHLab(t)
	tr := l.trialWithoutGuard(t, "2s")
	if r := hostwall(t, "", "status", "--netns", l.srv); !strings.Contains(r.stdout, "TRIAL: generation 2") || !strings.Contains(r.stderr, "neither the guard") {
		t.Errorf("status during the trial does not warn that the guard is gone:\n%s%s", r.stdout, r.stderr)
	}
	time.Sleep(time.Until(tr.Deadline) + 200*time.Millisecond) // past the deadline with no guard: nothing may happen by itself
	if !l.holds(t, l.cfgB) {
		t.Fatal("the trial changed with no guard running")
	}
	if r := hostwall(t, "", append([]string{"guard"}, l.args(l.cfgB)...)...); r.code != 0 {
		t.Fatalf("guard: %s%s", r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) || !l.sshWorks(t) {
		t.Error("the restarted guard did not restore the previous generation")
	}
}

// TestOverdueTrialFinished: a trial past its deadline whose guard is gone
// (and no agent runs) is said by plan, which changes nothing, and rolled
// back by the next hostwall that takes the lock — status included — which
// says so.
func TestOverdueTrialFinished(t *testing.T) {
	l := newSSHLab(t)
	tr := l.trialWithoutGuard(t, "1s")
	time.Sleep(time.Until(tr.Deadline) + 200*time.Millisecond) // past the deadline with no guard: nothing happens by itself
	if !l.holds(t, l.cfgB) {
		t.Fatal("the trial changed with no guard running")
	}
	if r := hostwall(t, "", append([]string{"plan"}, l.args(l.cfgB)...)...); !strings.Contains(r.stderr, "was due to roll back") || !strings.Contains(r.stderr, "has not been rolled back") {
		t.Errorf("plan past the deadline does not say the trial is overdue:\n%s%s", r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgB) {
		t.Fatal("plan changed the kernel")
	}
	r := hostwall(t, "", "status", "--netns", l.srv)
	if !strings.Contains(r.stderr, "was rolled back: not confirmed by") || !strings.Contains(r.stdout, "rolled back") {
		t.Errorf("status past the deadline:\n%s%s", r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) || !l.sshWorks(t) || trialOf(t, l.srv) != nil {
		t.Error("the overdue trial was not rolled back")
	}
}

// TestKillDuringApply kills applies at random points: the kernel holds one
// configuration or the other exactly, and the state directory loads.
func TestKillDuringApply(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	rng := rand.New(rand.NewPCG(1, 1))
	killed, before := 0, 0
	for i := 0; i < 60; i++ {
		cfg := []string{l.cfgA, l.cfgB}[i%2]
		cmd := exec.Command(binary, append([]string{"apply", "--auto-approve", "--force", "--confirm-timeout", "0"}, l.args(cfg)...)...)
		cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(15000)) * time.Microsecond) // a random point in the apply (it takes a few ms)
		if cmd.Process.Kill() == nil {
			killed++
		}
		cmd.Wait()
		a, b := l.holds(t, l.cfgA), l.holds(t, l.cfgB)
		if a == b {
			t.Fatalf("kill %d: the kernel holds neither configuration exactly (or both)", i)
		}
		if (cfg == l.cfgA) != a {
			before++ // killed before its commit: the old configuration stayed
		}
		if r := hostwall(t, "", "status", "--netns", l.srv); r.code != 0 { // settles what the kill left
			t.Fatalf("kill %d: status: %s", i, r.stderr)
		}
		if dir := currentConfigDir(t); dir != map[bool]string{true: l.cfgA, false: l.cfgB}[a] {
			t.Fatalf("kill %d: the current generation's files are %s's, the kernel holds the other's", i, dir)
		}
	}
	t.Logf("%d applies killed at random points, %d of them before their commit", killed, before)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	for _, dir := range dirsOf(t) {
		d := dir[strings.Index(dir, "=")+1:]
		left, _ := filepath.Glob(filepath.Join(d, ".*"))
		more, _ := filepath.Glob(filepath.Join(d, "generations", ".*"))
		if left = append(left, more...); len(left) > 0 {
			t.Errorf("killed applies left %v behind", left)
		}
	}
}

// currentConfigDir is the configuration directory of the current
// generation.
func currentConfigDir(t *testing.T) string {
	t.Helper()
	var gens struct {
		Current     int
		Generations []struct {
			Number    int
			ConfigDir string `json:"config_dir"`
		}
	}
	if err := json.Unmarshal([]byte(hostwall(t, "", "generations", "--json").stdout), &gens); err != nil {
		t.Fatal(err)
	}
	for _, g := range gens.Generations {
		if g.Number == gens.Current {
			return g.ConfigDir
		}
	}
	t.Fatalf("no current generation among %+v", gens)
	return ""
}

// TestLockoutCheck: a configuration that drops the SSH_CONNECTION peer is
// refused with the deciding rule; one that keeps it applies; a
// configuration with no failsafe SSH and nothing allowing SSH is refused
// even without SSH_CONNECTION.
func TestLockoutCheck(t *testing.T) {
	l := newSSHLab(t)
	ssh := []string{"SSH_CONNECTION=10.201.1.1 50022 10.201.1.2 22"}
	r := hostwallEnv(t, "", ssh, append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, l.args(l.cfgB)...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "REFUSED") || !strings.Contains(r.stderr, `policy "p", ingress rule 1 (deny)`) {
		t.Errorf("apply dropping the SSH peer: exit %d\n%s", r.code, r.stderr)
	}
	if out := testns.NFT(t, l.srv, "list", "tables"); strings.Contains(out, "hostwall") {
		t.Fatal("a refused apply changed the kernel")
	}
	keeps := writeConfig(t, map[string]string{"k.hcl": `
host_endpoint "eth0" { interface = "eth0" }
failsafe {
  inbound = []
}
policy "admin" {
  ingress {
    action   = "allow"
    protocol = "tcp"
    source      { nets = ["10.201.1.1"] }
    destination { ports = [22] }
  }
}
`})
	if r := hostwallEnv(t, "", ssh, append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, l.args(keeps)...)...); r.code != 0 {
		t.Errorf("apply keeping the SSH peer: exit %d\n%s", r.code, r.stderr)
	}
	r = hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, l.args(l.cfgB)...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "failsafe does not keep tcp:22 open") {
		t.Errorf("apply with no way in over SSH: exit %d\n%s", r.code, r.stderr)
	}
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--force", "--confirm-timeout", "0"}, l.args(l.cfgB)...)...); r.code != 0 {
		t.Errorf("--force: exit %d %s", r.code, r.stderr)
	}
}

// TestSavedPlanAndLock: apply PLANFILE applies that plan — also after
// another program changed a table of its own (a busy host's generation
// moves all the time), since planning again gives exactly it — and
// refuses a stale one; a held lock is named, and waited for with
// --lock-timeout.
func TestSavedPlanAndLock(t *testing.T) {
	l := newSSHLab(t)
	planFile := filepath.Join(t.TempDir(), "p.json")
	if r := hostwall(t, "", append([]string{"plan", "-o", planFile}, l.args(l.cfgA)...)...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	testns.NFT(t, l.srv, "add", "table", "ip", "someone-else")
	if r := hostwall(t, "", append([]string{"apply", "--confirm-timeout", "0", planFile}, l.args(l.cfgA)...)...); r.code != 0 || !l.holds(t, l.cfgA) {
		t.Fatalf("a saved plan after another table changed: exit %d %s", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(l.cfgA, "extra.hcl"), []byte("network_set \"x\" {\n  nets = [\"192.0.2.0/24\"]\n}\n"), 0o644)
	hostwall(t, "", append([]string{"plan", "-o", planFile}, l.args(l.cfgA)...)...)
	testns.NFT(t, l.srv, "add", "chain", "inet", "hostwall", "someone-elses")
	r := hostwall(t, "", append([]string{"apply", "--confirm-timeout", "0", planFile}, l.args(l.cfgA)...)...)
	if r.code != 4 || !strings.Contains(r.stderr, "plan is stale") || !strings.Contains(r.stderr, "ruleset changed") {
		t.Errorf("stale by the kernel: exit %d %s", r.code, r.stderr)
	}
	hostwall(t, "", append([]string{"plan", "-o", planFile}, l.args(l.cfgA)...)...)
	os.WriteFile(filepath.Join(l.cfgA, "extra2.hcl"), []byte("network_set \"y\" {\n  nets = [\"198.51.100.0/24\"]\n}\n"), 0o644)
	r = hostwall(t, "", append([]string{"apply", "--confirm-timeout", "0", planFile}, l.args(l.cfgA)...)...)
	if r.code != 4 || !strings.Contains(r.stderr, "plan is stale") || !strings.Contains(r.stderr, "configuration") {
		t.Errorf("stale by the configuration: exit %d %s", r.code, r.stderr)
	}
	hostwall(t, "", append([]string{"plan", "-o", planFile}, l.args(l.cfgA)...)...)
	if r := hostwall(t, "", append([]string{"apply", "--confirm-timeout", "0", planFile}, l.args(l.cfgA)...)...); r.code != 0 || !l.holds(t, l.cfgA) {
		t.Fatalf("apply of a fresh saved plan: exit %d %s", r.code, r.stderr)
	}

	lock, err := namespace(t, l.srv).Lock(0, state.NewHolder(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	r = hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, l.args(l.cfgA)...)...)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("apply under a held lock: exit %d %s", r.code, r.stderr)
	}
	go func() { time.Sleep(300 * time.Millisecond); lock.Release() }()
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "0", "--lock-timeout", "5s"}, l.args(l.cfgA)...)...); r.code != 0 {
		t.Errorf("apply with --lock-timeout: exit %d %s", r.code, r.stderr)
	}
}

// TestRebootDuringTrial: the machine reboots during a trial — the kernel
// loses its ruleset, the run directory (a tmpfs) is emptied, the guard is
// gone. The guard started at boot finds the trial recorded in the state
// directory and ends on the previous generation.
func TestRebootDuringTrial(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "1m")
	tr := trialOf(t, l.srv)
	killGuard(t, tr)
	run := strings.TrimPrefix(dirsOf(t)[1], "HOSTWALL_RUN_DIR=")
	entries, _ := os.ReadDir(run)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(run, e.Name()))
	}
	testns.NFT(t, l.srv, "delete", "table", "inet", "hostwall")
	r := hostwall(t, "", append([]string{"guard"}, l.args(l.cfgB)...)...)
	if r.code != 0 {
		t.Fatalf("guard at boot: %s%s", r.stdout, r.stderr)
	}
	// A minute before the deadline, yet restored at once: a reboot during
	// a trial ends it.
	if !l.holds(t, l.cfgA) || !l.sshWorks(t) {
		t.Error("after a reboot during the trial, the previous generation is not back")
	}
	if r := hostwall(t, "", "status", "--netns", l.srv); !strings.Contains(r.stdout, "rolled back") {
		t.Errorf("status after the reboot: %s", r.stdout)
	}
}

// TestTrialWaitExitCode: an apply that waits for its trial exits 3 with a
// clear message when the trial is rolled back.
func TestTrialWaitExitCode(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--force", "--wait", "--confirm-timeout", "1s"}, l.args(l.cfgB)...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "ROLLED BACK") || !strings.Contains(r.stdout, "Confirm from a NEW connection") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) {
		t.Error("the previous generation is not back")
	}
	if r := hostwall(t, "", "generations", "--json"); !strings.Contains(r.stdout, `"reason": "apply (trial)"`) {
		t.Errorf("the trial generation is not listed: %s", r.stdout)
	}
}
