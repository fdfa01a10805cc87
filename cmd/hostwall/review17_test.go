package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// TestRelativeStateDir: a trial applied with relative --state-dir and
// --run-dir, its guard killed, is finished from another directory by
// status with the same directories given absolutely: the previous
// generation comes back (the record held the relative path, read from
// elsewhere: no generation was found, and the table was removed).
func TestRelativeStateDir(t *testing.T) {
	l := newSSHLab(t)
	base := t.TempDir()
	testns.StopStragglers(t, base)
	run := func(dir string, args ...string) result {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = append(baseEnv(), "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		r := result{stdout: string(out), code: cmd.ProcessState.ExitCode()}
		if err != nil && r.code == 0 {
			t.Fatal(err)
		}
		return r
	}
	rel := []string{"--state-dir", "state", "--run-dir", "run", "--netns", l.srv, "--host-name", "srv"}
	abs := []string{"--state-dir", filepath.Join(base, "state"), "--run-dir", filepath.Join(base, "run"), "--netns", l.srv, "--host-name", "srv"}
	if r := run(base, append([]string{"apply", "--auto-approve", "--confirm-timeout", "0", "-c", l.cfgA}, rel...)...); r.code != 0 {
		t.Fatal(r.stdout)
	}
	if r := run(base, append([]string{"apply", "--auto-approve", "--force", "--confirm-timeout", "1s", "-c", l.cfgB}, rel...)...); r.code != 0 {
		t.Fatal(r.stdout)
	}
	out := run(base, append([]string{"status", "--json"}, rel...)...).stdout
	pid := 0
	if i := strings.Index(out, `"guard_pid": `); i >= 0 {
		for _, c := range out[i+len(`"guard_pid": `):] {
			if c < '0' || c > '9' {
				break
			}
			pid = pid*10 + int(c-'0')
		}
	}
	if pid <= 0 {
		t.Fatalf("no guard pid in the status:\n%s", out)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(1500 * time.Millisecond) // past the deadline, the guard gone
	r := run("/", append([]string{"status"}, abs...)...)
	if strings.Contains(r.stdout, "removed") || !strings.Contains(r.stdout, "generation 1 restored") {
		t.Errorf("status from elsewhere:\n%s", r.stdout)
	}
	if !l.holds(t, l.cfgA) {
		t.Error("the previous generation is not back")
	}
	if _, err := os.Stat("/state"); err == nil {
		t.Error("a state directory was made at /state")
	}
}

// TestStrayTrialRecord: a trial record in the namespace's directory with no
// trial pending — empty, garbage, a directory — is no trial: plan says
// none, status rolls nothing back.
func TestStrayTrialRecord(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	path := filepath.Join(namespace(t, l.srv).Dir, "trial.json")
	for name, make := range map[string]func() error{
		"empty":     func() error { return os.WriteFile(path, nil, 0o600) },
		"garbage":   func() error { return os.WriteFile(path, []byte("{not json"), 0o600) },
		"directory": func() error { return os.Mkdir(path, 0o700) },
	} {
		os.RemoveAll(path)
		if err := make(); err != nil {
			t.Fatal(err)
		}
		if r := hostwall(t, "", append([]string{"plan"}, l.args(l.cfgA)...)...); strings.Contains(r.stderr, "trial") {
			t.Errorf("%s: plan speaks of a trial:\n%s", name, r.stderr)
		}
		if r := hostwall(t, "", "status", "--netns", l.srv); strings.Contains(r.stdout+r.stderr, "rolled back") || strings.Contains(r.stdout, "TRIAL") {
			t.Errorf("%s: status:\n%s%s", name, r.stdout, r.stderr)
		}
		if !l.holds(t, l.cfgA) {
			t.Fatalf("%s: the kernel changed", name)
		}
	}
	os.RemoveAll(path)
}

// TestStatusSaysMismatch: status warns when the kernel does not hold the
// current generation — changed by another writer, or a current generation
// that is not recorded.
func TestStatusSaysMismatch(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	if r := hostwall(t, "", "status", "--netns", l.srv); strings.Contains(r.stderr, "does not hold") {
		t.Errorf("status right after the apply warns:\n%s", r.stderr)
	}
	testns.NFT(t, l.srv, "flush", "chain", "inet", "hostwall", "pol/p/in")
	if r := hostwall(t, "", "status", "--netns", l.srv); !strings.Contains(r.stderr, "the kernel does not hold generation 1 exactly") {
		t.Errorf("status after a chain was flushed:\n%s%s", r.stdout, r.stderr)
	}
	state, _ := stateDirs(t)
	os.WriteFile(filepath.Join(state, "current"), []byte("99\n"), 0o600)
	if r := hostwall(t, "", "status", "--netns", l.srv); !strings.Contains(r.stderr, "the current generation 99 cannot be read") {
		t.Errorf("status with generation 99 current:\n%s%s", r.stdout, r.stderr)
	}
}

// TestRollbackPromptHoldsNoLock: a rollback left at its prompt during a
// trial does not keep the trial's guard from rolling back at the
// deadline; answered afterwards, it says the trial ended and changes
// nothing more.
func TestRollbackPromptHoldsNoLock(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "2s")
	tr := trialOf(t, l.srv)
	cmd := exec.Command(binary, "rollback", "--netns", l.srv, "--confirm-timeout", "0")
	cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), dirsOf(t)...)
	stdin, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	await(t, time.Until(tr.Deadline)+guardSlack, "the guard rolls back while the prompt is open", func() bool { return l.holds(t, l.cfgA) })
	stdin.Write([]byte("yes\n"))
	stdin.Close()
	cmd.Wait()
	if !strings.Contains(out.String(), "ended while you were asked") || cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("the rollback answered after the deadline: exit %d\n%s", cmd.ProcessState.ExitCode(), out.String())
	}
	if !l.holds(t, l.cfgA) {
		t.Error("the rollback answered late changed the kernel")
	}
}

// TestDamagedIntentDuringOverdueTrial: a change record that does not read
// (a directory in its place) does not keep an overdue trial in force: the
// next command rolls the trial back, and says how to clear the record.
func TestDamagedIntentDuringOverdueTrial(t *testing.T) {
	l := newSSHLab(t)
	tr := l.trialWithoutGuard(t, "1s")
	state, _ := stateDirs(t)
	intent := filepath.Join(state, "intent-"+namespace(t, l.srv).FileName()+".json")
	if err := os.Mkdir(intent, 0o700); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(tr.Deadline) + 200*time.Millisecond) // past the deadline with no guard
	r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "0"}, l.args(l.cfgA)...)...)
	if !strings.Contains(r.stderr, "rm -r "+intent) {
		t.Errorf("apply with the intent damaged does not say how to clear it:\n%s", r.stderr)
	}
	if !l.holds(t, l.cfgA) || trialOf(t, l.srv) != nil {
		t.Error("the overdue trial stayed in force")
	}
}

// TestRollbackAtTheDeadline: a rollback asked for as the trial's guard
// rolls back goes where the trial went, not one generation further. (One
// asked for once the trial has ended goes one further from there, and
// says so.)
func TestRollbackAtTheDeadline(t *testing.T) {
	l := newSSHLab(t)
	cfgA2 := writeConfig(t, map[string]string{"a.hcl": strings.Replace(readFile(t, filepath.Join(l.cfgA, "a.hcl")), "8080", "8081", 1)})
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, cfgA2, "--confirm-timeout", "0")
	for _, early := range []time.Duration{100 * time.Millisecond, 30 * time.Millisecond, 5 * time.Millisecond} {
		l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "1s")
		tr := trialOf(t, l.srv)
		time.Sleep(time.Until(tr.Deadline.Add(-early)))
		r := hostwall(t, "", "rollback", "--auto-approve", "--confirm-timeout", "0", "--netns", l.srv)
		if r.code != 0 {
			t.Errorf("rollback %s before the deadline: exit %d\n%s%s", early, r.code, r.stdout, r.stderr)
		}
		await(t, guardSlack, "the trial is over", func() bool { return trialOf(t, l.srv) == nil })
		switch {
		case l.holds(t, cfgA2):
		case strings.Contains(r.stderr, "this rollback goes one further"):
			// The command looked only after the guard had ended the trial
			// (a loaded machine starts processes slowly): it went one
			// further, and said so.
			t.Logf("rollback %s before the deadline started after the trial ended", early)
			l.mustApply(t, cfgA2, "--confirm-timeout", "0")
		default:
			t.Fatalf("rollback %s before the deadline: the kernel does not hold the generation the trial returns to, and the rollback did not say it goes further\n%s%s", early, r.stdout, r.stderr)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestNoTrialForNoChange: an apply on trial that changes nothing in the
// kernel starts no trial (and no guard).
func TestNoTrialForNoChange(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	r := hostwall(t, "", append([]string{"apply", "--auto-approve", "--confirm-timeout", "5s"}, l.args(l.cfgA)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "there is no trial") || strings.Contains(r.stdout, "TRIAL") {
		t.Errorf("apply on trial of what the kernel holds: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if tr := trialOf(t, l.srv); tr != nil {
		t.Errorf("a trial was started: %+v", tr)
	}
}
