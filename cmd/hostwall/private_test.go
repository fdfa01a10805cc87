package main_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

func stateDirs(t *testing.T) (stateDir, runDir string) {
	d := dirsOf(t)
	return strings.TrimPrefix(d[0], "HOSTWALL_STATE_DIR="), strings.TrimPrefix(d[1], "HOSTWALL_RUN_DIR=")
}

// TestStateIsPrivate: after an agent, applies, a trial with its guard and a
// confirm, every directory hostwall created under the state and run
// directories is 0700 and every file (the lock, trials, generations, the
// guard's log, the control socket) 0600.
func TestStateIsPrivate(t *testing.T) {
	l := newSSHLab(t)
	a := startAgent(t, l.srv, l.cfgA)
	a.expect(t, "READY=1")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "60s")
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 0 {
		t.Fatalf("confirm: %s%s", r.stdout, r.stderr)
	}
	stateDir, runDir := stateDirs(t)
	n := 0
	for _, root := range []string{stateDir, runDir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, ierr := d.Info()
			if ierr != nil {
				return nil // gone meanwhile: a temporary file the agent renamed
			}
			want := os.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", p, got, want)
			}
			n++
			return nil
		})
	}
	if n < 10 {
		t.Errorf("only %d entries checked; the walk missed the state", n)
	}
}

// TestStateDirsTightenedOrRefused: existing state and run directories open
// to others are tightened to 0700 with a notice; one owned by another user
// is refused, naming the fix.
func TestStateDirsTightenedOrRefused(t *testing.T) {
	testns.RequireRoot(t)
	stateDir, runDir := stateDirs(t)
	os.Chmod(stateDir, 0o755)
	os.Chmod(runDir, 0o777)
	r := hostwall(t, "", "status")
	if r.code != 0 {
		t.Fatalf("status: %s%s", r.stdout, r.stderr)
	}
	for _, d := range []string{stateDir, runDir} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %04o after status, want 0700", d, fi.Mode().Perm())
		}
		if !strings.Contains(r.stderr, d+" had mode") {
			t.Errorf("no notice for %s:\n%s", d, r.stderr)
		}
	}
	os.Chown(stateDir, 65534, 65534)
	r = hostwall(t, "", "status")
	if r.code == 0 || !strings.Contains(r.stderr, "owned by uid 65534") || !strings.Contains(r.stderr, "chown -R 0:0 "+stateDir) {
		t.Errorf("a state directory owned by nobody was accepted: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// A link, in a directory anyone can write, to a directory of root's:
	// refused, and the target left as it was.
	evil, target := filepath.Join(t.TempDir(), "evil"), t.TempDir()
	os.Mkdir(evil, 0o777)
	os.Chmod(evil, 0o777)
	os.Chmod(target, 0o755)
	link := filepath.Join(evil, "state")
	os.Symlink(target, link)
	r = hostwall(t, "", "status", "--state-dir", link)
	if fi, _ := os.Stat(target); r.code == 0 || !strings.Contains(r.stderr, "evil is writable by group or others") || fi.Mode().Perm() != 0o755 {
		t.Errorf("a state directory linked from a world-writable directory: exit %d, target mode %04o\n%s", r.code, fi.Mode().Perm(), r.stderr)
	}
}
