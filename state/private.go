package state

import (
	"fmt"
	"os"
	"syscall"
)

// CheckPrivate makes sure an existing state or run directory is private:
// owned by the user running hostwall and closed to everyone else.
// Generations record SSH client addresses and whole configurations, and
// the run directory holds the lock and the control socket. A directory
// open to others is tightened to 0700 (the returned notice says so); one
// owned by someone else is refused. A missing directory is fine: it is
// created 0700 when first needed.
func CheckPrivate(dir string) (notice string, err error) {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
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
