package loader

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// DirOptions tune LoadDir.
type DirOptions struct {
	// InsecureSkipPerms loads files whatever their owner and mode (tests,
	// containers whose files root does not own). Callers must say so
	// loudly.
	InsecureSkipPerms bool
	// MaxFileBytes refuses larger files; 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// Overlay loads the directory as it would be after a change, without
	// making it: each key, a path relative to the directory, is read from
	// the file its value names instead (the result still names the key's
	// path); an empty value means the file is gone. Configuration
	// management validates a file this way before it replaces the real one.
	Overlay map[string]string
	// Memo, when set, keeps the decoded files between loads, by their
	// paths and contents (see Memo).
	Memo *Memo
}

// DefaultMaxFileBytes is the largest policy file loaded by default: room
// for a million-entry inline blocklist several times over.
const DefaultMaxFileBytes = 256 << 20

// checkTrust refuses a path that someone other than root could have
// written, as sshd's StrictModes does: the file (or directory) itself
// must be owned by root and not writable by group or others, and so must
// every directory above it, except that a sticky directory (/tmp) may be
// world-writable: nobody else can replace what root made in it. Symlinks
// are resolved, and the target is checked. Only meaningful when running as
// root: an unprivileged hostwall cannot steer the kernel's firewall.
func checkTrust(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	shown := path
	if real != path {
		shown = fmt.Sprintf("%s (a link to %s)", path, real)
	}
	if err := trustOne(real, false, shown); err != nil {
		return err
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		if err := trustOne(d, true, d); err != nil {
			return fmt.Errorf("%w, and %s is loaded from below it", err, shown)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

func trustOne(p string, parent bool, shown string) error {
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
