package state

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hostwall/hostwall/internal/trust"
)

// CheckPrivate makes sure an existing state or run directory is private:
// owned by the user running hostwall and closed to everyone else.
// Generations record SSH client addresses and whole configurations, and
// the run directory holds the lock and the control socket. A directory
// open to others is tightened to 0700 (the returned notice says so); one
// owned by someone else is refused, and so is one below a directory
// someone else could write (trust.Parents: a link there could be pointed
// elsewhere, say at /etc, which the tightening would then close). A
// missing directory is fine, under trusted directories: it is created 0700
// when first needed.
func CheckPrivate(dir string) (notice string, err error) {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return "", trust.Dir(existingAncestor(dir)) // it is made 0700 when first needed, under these
	}
	if err != nil {
		return "", err
	}
	if err := trust.Parents(dir); err != nil {
		return "", fmt.Errorf("%s cannot be trusted with what steers the firewall: %w", dir, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is owned by uid %d, not by uid %d running hostwall; it holds generations, trials and the lock, which only hostwall's user may touch: run chown -R %d:%d %s",
			dir, st.Uid, os.Geteuid(), os.Geteuid(), os.Getegid(), dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("%s has mode %04o, open to others; tightening it to 0700: %w", dir, perm, err)
		}
		return fmt.Sprintf("%s had mode %04o, open to others; tightened to 0700 (generations record SSH client addresses)", dir, perm), nil
	}
	return "", nil
}

// existingAncestor is the nearest directory above dir that exists.
func existingAncestor(dir string) string {
	for d := filepath.Dir(filepath.Clean(dir)); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == "/" || d == "." {
			return d
		}
	}
}
