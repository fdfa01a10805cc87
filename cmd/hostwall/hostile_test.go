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
	{"a kernel file as a policy file", func(t *testing.T, dir string) string {
		// Regular, root's, and a read blocks until the kernel logs (and
		// takes the message away).
		if err := os.Symlink("/proc/kmsg", filepath.Join(dir, "x.hcl")); err != nil {
			t.Fatal(err)
		}
		return "x.hcl is on procfs, the kernel's, not a file of a configuration"
	}},
	{"directory as a policy file", func(t *testing.T, dir string) string {
		os.Mkdir(filepath.Join(dir, "x.hcl"), 0o755)
		return "is a directory, not a regular file"
	}},
	{"HCL nested 300,000 deep", func(t *testing.T, dir string) string {
		os.WriteFile(filepath.Join(dir, "x.hcl"), deepFile("x = ", "[", "1", "]", 300_000), 0o644)
		return "x.hcl:1:37: Nested too deep"
	}},
	{"YAML nested 1,000,000 deep", func(t *testing.T, dir string) string {
		os.WriteFile(filepath.Join(dir, "x.yaml"), deepFile("a: ", "{b: ", "1", "}", 1_000_000), 0o644)
		return "x.yaml:1:"
	}},
	{"FIFO as a nets_file", func(t *testing.T, dir string) string {
		mkfifo(t, filepath.Join(dir, "list.txt"))
		os.WriteFile(filepath.Join(dir, "x.hcl"), []byte("network_set \"n\" {\n  nets_file = \"list.txt\"\n}\n"), 0o644)
		return "list.txt is a FIFO (named pipe), not a regular file"
	}},
}

// deepFile is head, then open n times, inner and close n times.
func deepFile(head, open, inner, close string, n int) []byte {
	return []byte(head + strings.Repeat(open, n) + inner + strings.Repeat(close, n) + "\n")
}

// TestDeepFilesMemory: validate refuses files nested 300,000 and 1,000,000
// deep — as HCL lists, objects and blocks, as YAML flow collections,
// indentation and compact sequences — at once and in little memory (the
// parsers held every level: 1.4 GB for 30,000, or a crash).
func TestDeepFilesMemory(t *testing.T) {
	testns.RequireRoot(t) // the files are root's, as the trust checks want
	for _, n := range []int{300_000, 1_000_000} {
		var indented strings.Builder
		for i := range 3000 { // 4.5 MB; deeper is a matter of the size limit
			indented.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		for name, data := range map[string][]byte{
			"lists.hcl":    deepFile("x = ", "[", "1", "]", n),
			"objects.hcl":  deepFile("x = ", "{a = ", "1", "}", n),
			"blocks.hcl":   deepFile("", "b {\n", "", "}\n", n),
			"flow.yaml":    deepFile("a: ", "[", "1", "]", n),
			"compact.yaml": deepFile("", "- ", "x", "", n),
			"indent.yaml":  []byte(indented.String()),
		} {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, name), data, 0o644)
			base, _, _ := maxRSS(t, "version")
			rss, code, out := maxRSS(t, "validate", "-c", dir)
			if code != 1 || !strings.Contains(out, "Nested too deep") {
				t.Errorf("%s %d deep: exit %d\n%s", name, n, code, out)
			}
			if rss > base+100<<20 {
				t.Errorf("%s %d deep (%d bytes): validate took %d MiB (hostwall version %d MiB)", name, n, len(data), rss>>20, base>>20)
			}
		}
	}
}

// TestHugeScalar: a 50 MB YAML file of one scalar (2 GB to parse) is
// refused by its size, in little memory, naming the flag that raises the
// limit.
func TestHugeScalar(t *testing.T) {
	testns.RequireRoot(t)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`a: "`)
	chunk := []byte(strings.Repeat("x", 1<<20))
	for range 50 {
		f.Write(chunk)
	}
	f.WriteString("\"\n")
	f.Close()
	base, _, _ := maxRSS(t, "version")
	rss, code, out := maxRSS(t, "validate", "-c", dir)
	if code != 1 || !strings.Contains(out, "above the limit of 33554432") || !strings.Contains(out, "--max-file-bytes") {
		t.Errorf("validate of a 50 MB scalar: exit %d\n%s", code, out)
	}
	if rss > base+100<<20 {
		t.Errorf("validate of a 50 MB scalar took %d MiB (hostwall version %d MiB)", rss>>20, base>>20)
	}
}

// maxRSS runs hostwall with args and returns the most memory it held, in
// bytes, its exit code and its output. A child starts from the memory its
// parent held when it forked (Linux carries the high-water mark across
// exec), so only what goes beyond that of a small command (version) is
// hostwall's own.
func maxRSS(t *testing.T, args ...string) (int64, int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), dirsOf(t)...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10, cmd.ProcessState.ExitCode(), string(out)
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
