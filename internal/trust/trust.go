// Package trust decides whether a path is one that nobody but root could
// have written, as sshd's StrictModes does: what steers the firewall — the
// configuration, hostwall's own records — must not be open to anyone else.
package trust

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Path checks path and every directory above it: each must be owned by
// root and not writable by group or others, except that a directory with
// the sticky bit set (/tmp) may be world-writable — nobody else can replace
// what root made in it. Symbolic links are followed, and both the path as
// given and the path it resolves to are checked: a link in a directory
// someone else can write could be pointed elsewhere after the check, and so
// could a link its owner may replace (one made by another user in a sticky
// directory): every link on the way must be root's.
func Path(path string) error { return check(path, false) }

// Parents is Path for the directories above path only, not path itself.
func Parents(path string) error { return check(path, true) }

// Dir is Parents of an entry of directory dir: dir and the directories
// above it, each of which may be sticky (what is made in dir is made by
// root, and stays root's).
func Dir(dir string) error { return check(filepath.Join(dir, "entry"), true) }

func check(path string, parentsOnly bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := evalSymlinks(abs, parentsOnly)
	if err != nil {
		return err
	}
	shown := path
	if real != abs {
		shown = fmt.Sprintf("%s (a link to %s)", path, real)
	}
	if !parentsOnly {
		if err := one(real, false, shown); err != nil {
			return err
		}
	}
	hops, err := linkHops(abs)
	if err != nil {
		return err
	}
	for _, p := range hops {
		if err := linkOwner(p, p); err != nil {
			return err
		}
	}
	for _, p := range append(hops, real) {
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			if err := one(d, true, d); err != nil {
				return fmt.Errorf("%w, and %s is below it", err, shown)
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	return nil
}

// evalSymlinks is filepath.EvalSymlinks of p; for parentsOnly, p itself
// need not exist (then its directory is resolved).
func evalSymlinks(p string, parentsOnly bool) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err == nil || !parentsOnly || !os.IsNotExist(err) {
		return real, err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	return filepath.Join(dir, filepath.Base(p)), err
}

// linkHops is p and, when p is a symbolic link, each path its chain of
// links goes through: whoever can write the directory of any of them can
// point the chain elsewhere.
func linkHops(p string) ([]string, error) {
	hops := []string{p}
	for range 40 {
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return hops, nil
		}
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return hops, err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return hops, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
		hops = append(hops, p)
	}
	return hops, fmt.Errorf("%s: too many levels of symbolic links", hops[0])
}

// linkOwner refuses p when it is a symbolic link someone other than root
// owns.
func linkOwner(p, shown string) error {
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil // what does not exist, or is no link, is checked as it resolves
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fmt.Errorf("%s is a symbolic link owned by %s, not root; whoever owns it could point it elsewhere: run chown -h root:root %s", shown, owner(st.Uid), p)
	}
	return nil
}

func one(p string, parent bool, shown string) error {
	if err := linkOwner(p, shown); err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by %s, not root; whoever owns it could steer the firewall: run chown root:root %s", shown, owner(st.Uid), p)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 && !(parent && fi.Mode()&os.ModeSticky != 0) {
		return fmt.Errorf("%s is writable by group or others (mode %04o); anyone who can write it could steer the firewall: run chmod go-w %s", shown, perm, p)
	}
	return nil
}

func owner(uid uint32) string {
	s := "uid " + strconv.Itoa(int(uid))
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}
