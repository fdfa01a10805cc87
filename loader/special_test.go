package loader

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// loadWithin is LoadDir, failing the test if it takes longer than a
// generous bound: what is under test is that nothing blocks.
func loadWithin(t *testing.T, dir string, opts DirOptions) (*Result, string) {
	t.Helper()
	type out struct {
		res  *Result
		text string
	}
	done := make(chan out, 1)
	go func() {
		res, diags := LoadDir(dir, opts)
		var b strings.Builder
		for _, d := range diags {
			b.WriteString(d.Error() + "\n")
		}
		done <- out{res, b.String()}
	}()
	select {
	case o := <-done:
		return o.res, o.text
	case <-time.After(30 * time.Second):
		t.Fatalf("loading %s blocked", dir)
		return nil, ""
	}
}

// TestSpecialFiles: a FIFO, a socket, a directory or a device as a policy
// file (named *.hcl, or a link to one), or as a nets_file, is refused by
// name with what it is — never opened to block, never skipped unseen —
// and a regular file beside it does not make the configuration valid.
func TestSpecialFiles(t *testing.T) {
	kinds := map[string]func(t *testing.T, path string){
		"FIFO": func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"socket": func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		},
		"directory": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"character device": func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		},
	}
	want := map[string]string{"FIFO": "a FIFO (named pipe)", "socket": "a socket", "directory": "a directory", "character device": "a character device"}
	for kind, make := range kinds {
		t.Run(kind+" as a policy file", func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("policy \"a\" {\n  ingress { action = \"allow\" }\n}\n"), 0o644)
			special := filepath.Join(dir, "b.hcl")
			make(t, special)
			_, text := loadWithin(t, dir, DirOptions{InsecureSkipPerms: true})
			if !strings.Contains(text, special) || !strings.Contains(text, want[kind]+", not a regular file") {
				t.Errorf("diagnostics do not refuse %s as %s:\n%s", special, want[kind], text)
			}
		})
		t.Run(kind+" as a nets_file", func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("network_set \"n\" {\n  nets_file = \"list.txt\"\n}\n"), 0o644)
			special := filepath.Join(dir, "list.txt")
			make(t, special)
			_, text := loadWithin(t, dir, DirOptions{InsecureSkipPerms: true})
			if !strings.Contains(text, "a.hcl:2,") || !strings.Contains(text, want[kind]+", not a regular file") {
				t.Errorf("diagnostics do not refuse the nets_file %s as %s:\n%s", special, want[kind], text)
			}
		})
	}
	// With the trust checks on (as root), a link to /dev/zero is refused as
	// what it is, not with advice to chmod the host's /dev/zero.
	t.Run("character device with trust", func(t *testing.T) {
		testns.RequireRoot(t) // the trust checks apply to root only
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("network_set \"n\" {\n  nets_file = \"list.txt\"\n}\n"), 0o644)
		kinds["character device"](t, filepath.Join(dir, "list.txt"))
		_, text := loadWithin(t, dir, DirOptions{})
		if !strings.Contains(text, "a character device, not a regular file") || strings.Contains(text, "chmod") {
			t.Errorf("a link to /dev/zero is not refused as a character device:\n%s", text)
		}
	})
}
