package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

// trustDir is a root-owned 0755 configuration directory under a root-owned
// 0700 temporary directory (t.TempDir's parent is /tmp: sticky, accepted).
func trustDir(t *testing.T) (base, dir string) {
	t.Helper()
	testns.RequireRoot(t)
	base = t.TempDir()
	dir = filepath.Join(base, "hostwall")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.hcl"), 0o644)
	return base, dir
}

func write(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	src := fmt.Sprintf("policy %q {\n  ingress { action = \"allow\" }\n}\n", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	if err := os.WriteFile(path, []byte(src), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestTrustRefusals: running as root, every file or directory someone
// else could have written is refused, naming it, what was found and the
// command that fixes it; the files that pass load.
func TestTrustRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, base, dir string)
		want  []string
	}{
		{"trusted", func(*testing.T, string, string) {}, nil},
		{"world-writable file", func(t *testing.T, _, dir string) { write(t, filepath.Join(dir, "b.hcl"), 0o666) },
			[]string{"b.hcl is writable by group or others (mode 0666)", "chmod go-w"}},
		{"group-writable file", func(t *testing.T, _, dir string) { write(t, filepath.Join(dir, "c.hcl"), 0o664) },
			[]string{"c.hcl is writable by group or others (mode 0664)"}},
		{"file owned by nobody", func(t *testing.T, _, dir string) {
			write(t, filepath.Join(dir, "b.hcl"), 0o644)
			os.Chown(filepath.Join(dir, "b.hcl"), 65534, 65534)
		}, []string{"b.hcl is owned by uid 65534", "not root", "chown root:root"}},
		{"group-writable directory", func(t *testing.T, _, dir string) { os.Chmod(dir, 0o775) },
			[]string{"hostwall is writable by group or others (mode 0775)"}},
		{"parent directory owned by nobody", func(t *testing.T, base, _ string) { os.Chown(base, 65534, 65534) },
			[]string{"is owned by uid 65534", "is below it"}},
		{"a link in a directory others can write", func(t *testing.T, base, dir string) {
			// The link's target is root's, but whoever can write the
			// directory holding the link can point it elsewhere.
			evil := filepath.Join(base, "evil")
			os.Mkdir(evil, 0o777)
			os.Chmod(evil, 0o777)
			write(t, filepath.Join(base, "x.hcl"), 0o644)
			os.Symlink(filepath.Join(base, "x.hcl"), filepath.Join(evil, "link.hcl"))
			os.Symlink(filepath.Join(evil, "link.hcl"), filepath.Join(dir, "b.hcl"))
		}, []string{"evil is writable by group or others (mode 0777)"}},
		{"a link another user made in a sticky directory", func(t *testing.T, base, dir string) {
			// A sticky directory keeps others from replacing root's
			// links, not a link's owner from replacing it.
			sticky := filepath.Join(base, "sticky")
			os.Mkdir(sticky, 0o777)
			os.Chmod(sticky, 0o777|os.ModeSticky)
			write(t, filepath.Join(base, "x.hcl"), 0o644)
			os.Symlink(filepath.Join(base, "x.hcl"), filepath.Join(sticky, "link.hcl"))
			os.Lchown(filepath.Join(sticky, "link.hcl"), 65534, 65534)
			os.Symlink(filepath.Join(sticky, "link.hcl"), filepath.Join(dir, "b.hcl"))
		}, []string{"link.hcl is a symbolic link owned by uid 65534", "chown -h root:root"}},
		{"symlink to an untrusted file", func(t *testing.T, base, dir string) {
			evil := filepath.Join(base, "evil")
			os.Mkdir(evil, 0o777)
			os.Chmod(evil, 0o777)
			write(t, filepath.Join(evil, "x.hcl"), 0o644)
			os.Symlink(filepath.Join(evil, "x.hcl"), filepath.Join(dir, "b.hcl"))
		}, []string{"b.hcl (a link to", "evil is writable by group or others (mode 0777)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, dir := trustDir(t)
			c.setup(t, base, dir)
			_, diags := LoadDir(dir, DirOptions{})
			if c.want == nil {
				if diags.HasErrors() {
					t.Fatalf("a trusted directory was refused: %v", diags)
				}
				return
			}
			if !diags.HasErrors() {
				t.Fatal("loaded; want a refusal")
			}
			msg := diags.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("refusal %q lacks %q", msg, w)
				}
			}
			if _, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true}); diags.HasErrors() {
				t.Errorf("--insecure-skip-perms still refuses: %v", diags)
			}
		})
	}
}

// TestTrustFollowsTrustedSymlink: a link to a root-owned file in a
// root-owned directory loads (as /etc/alternatives-style setups do).
func TestTrustFollowsTrustedSymlink(t *testing.T) {
	base, dir := trustDir(t)
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o755)
	write(t, filepath.Join(shared, "x.hcl"), 0o644)
	if err := os.Symlink(filepath.Join(shared, "x.hcl"), filepath.Join(dir, "b.hcl")); err != nil {
		t.Fatal(err)
	}
	res, diags := LoadDir(dir, DirOptions{})
	if diags.HasErrors() {
		t.Fatalf("a trusted link was refused: %v", diags)
	}
	if len(res.Sources) != 2 {
		t.Errorf("loaded %d files, want 2", len(res.Sources))
	}
}

// TestTrustLinkOnTheWay: a configuration directory reached through a link
// another user made in a sticky directory is refused; made by root, the
// same link loads.
func TestTrustLinkOnTheWay(t *testing.T) {
	base, dir := trustDir(t)
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	link := filepath.Join(sticky, "conf")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, diags := LoadDir(link, DirOptions{}); diags.HasErrors() {
		t.Fatalf("root's link in a sticky directory was refused: %v", diags)
	}
	os.Lchown(link, 65534, 65534)
	_, diags := LoadDir(link, DirOptions{})
	if want := "conf is a symbolic link owned by uid 65534"; !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
		t.Errorf("through nobody's link: %v; want %q", diags, want)
	}
}

// TestFileSizeLimit: a file over the limit is refused, naming the sizes
// and the flag; at the limit it loads.
func TestFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.hcl"), 0o644)
	fi, _ := os.Stat(filepath.Join(dir, "a.hcl"))
	if _, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true, MaxFileBytes: fi.Size()}); diags.HasErrors() {
		t.Errorf("at the limit: %v", diags)
	}
	_, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true, MaxFileBytes: fi.Size() - 1})
	if want := fmt.Sprintf("The file is %d bytes, above the limit of %d", fi.Size(), fi.Size()-1); !diags.HasErrors() || !strings.Contains(diags.Error(), want) || !strings.Contains(diags.Error(), "--max-file-bytes") {
		t.Errorf("one byte over: %v, want %q", diags, want)
	}
}
