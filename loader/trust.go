package loader

import "github.com/hostwall/hostwall/internal/trust"

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
// written (trust.Path). Only meaningful when running as root: an
// unprivileged hostwall cannot steer the kernel's firewall.
func checkTrust(path string) error { return trust.Path(path) }
