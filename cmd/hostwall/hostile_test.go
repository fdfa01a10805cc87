package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// hostileFiles make a file of the configuration that must be refused, not
// read: each returns what the refusal says.
var hostileFiles = []struct {
	name string
	make func(t *testing.T, dir string) string
}{
	{"FIFO as a policy file", func(t *testing.T, dir string) string {
		mkfifo(t, filepath.Join(dir, "x.hcl"))
		return "is a FIFO (named pipe), not a regular file"
	}},
	{"device as a policy file", func(t *testing.T, dir string) string {
		// A root-owned character device (/dev/console, say) passes the
		// ownership checks; reading one blocks or never ends.
		if err := syscall.Mknod(filepath.Join(dir, "x.hcl"), syscall.S_IFCHR|0o600, 1<<8|5); err != nil {
			t.Fatal(err)
		}
		return "is a character device, not a regular file"
	}},
	{"directory as a policy file", func(t *testing.T, dir string) string {
		os.Mkdir(filepath.Join(dir, "x.hcl"), 0o755)
		return "is a directory, not a regular file"
	}},
	{"FIFO as a nets_file", func(t *testing.T, dir string) string {
		mkfifo(t, filepath.Join(dir, "list.txt"))
		os.WriteFile(filepath.Join(dir, "x.hcl"), []byte("network_set \"n\" {\n  nets_file = \"list.txt\"\n}\n"), 0o644)
		return "list.txt is a FIFO (named pipe), not a regular file"
	}},
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileFiles: validate refuses each hostile file by name at once;
// the agent, started on it or seeing it appear, keeps the last good
// generation, says why, and answers status.
func TestHostileFiles(t *testing.T) {
	for _, h := range hostileFiles {
		t.Run(h.name, func(t *testing.T) {
			ns := nsWithEth0(t)
			dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
			hostwall(t, "", "apply", "--auto-approve", "-c", dir, "--netns", ns, "--host-name", "srv")

			a := startAgent(t, ns, dir)
			a.expect(t, "READY=1")
			says := h.make(t, dir)
			if r := hostwall(t, "", "validate", "-c", dir); r.code != 1 || !strings.Contains(r.stderr, says) {
				t.Errorf("validate: exit %d, want 1 saying %q:\n%s", r.code, says, r.stderr)
			}
			if m := a.expect(t, "STATUS=INVALID"); !strings.Contains(m, says) || !strings.Contains(m, "keeping generation 1") {
				t.Errorf("status after the file appeared: %q", m)
			}
			statusAnswers(t, ns)
			a.cmd.Process.Signal(syscall.SIGTERM)
			a.expect(t, "STOPPING=1")
			a.cmd.Wait()

			// A boot on it: the kernel empty, the agent comes up on the
			// last good generation.
			testns.NFT(t, ns, "delete", "table", "inet", "hostwall")
			b := startAgent(t, ns, dir)
			b.expect(t, "READY=1")
			if m := b.expect(t, "STATUS="); !strings.Contains(m, "generation 1") || !strings.Contains(m, says) {
				t.Errorf("status after a start on the file: %q", m)
			}
			if out := testns.NFT(t, ns, "list", "chain", "inet", "hostwall", "pol/p/in"); !strings.Contains(out, "dport 80 ") {
				t.Errorf("the last good generation is not in force:\n%s", out)
			}
			statusAnswers(t, ns)
		})
	}
}

// statusAnswers checks that status answers within a generous bound: an
// agent wedged on a file would hold the lock.
func statusAnswers(t *testing.T, ns string) {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- runHostwall(t, "", nil, "status", "--netns", ns) }()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("status: exit %d\n%s", r.code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("status does not answer")
	}
}
