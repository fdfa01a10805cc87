package loader

import "github.com/hostwall/hostwall/internal/trust"

// DirOptions tune LoadDir.
type DirOptions struct {
	// InsecureSkipPerms loads files whatever their owner and mode (tests,
	// containers whose files root does not own). Callers must say so
	// loudly.
	InsecureSkipPerms bool
	// MaxFileBytes refuses larger policy files; 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxNetsFileBytes refuses larger nets files; 0 means
	// DefaultMaxNetsFileBytes.
	MaxNetsFileBytes int64
	// Overlay loads the directory as it would be after a change, without
	// making it: each key, a path relative to the directory, is read from
	// the file its value names instead (the result still names the key's
	// path); an empty value means the file is gone. Configuration
	// management validates a file this way before it replaces the real one.
	Overlay map[string]string
	// Memo, when set, keeps the decoded files between loads, by their
	// paths and contents (see Memo).
	Memo *Memo
	// Datastore are resources read from Calico's etcdv3 datastore, loaded
	// after the directory's files as one configuration with them (see
	// DatastorePrefix).
	Datastore []Source
}

// DefaultMaxFileBytes is the largest policy file loaded by default, and
// DefaultMaxNetsFileBytes the largest nets file. Parsing a policy file
// holds 40 to 110 times its size (docs/security.md, "Limits"): 32 MiB is a
// million-entry inline blocklist, at a few GB; a nets file is read line by
// line, and 256 MiB is ten million networks.
const (
	DefaultMaxFileBytes     = 32 << 20
	DefaultMaxNetsFileBytes = 256 << 20
)

// withDefaults fills in the limits left 0.
func (o DirOptions) withDefaults() DirOptions {
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxNetsFileBytes == 0 {
		o.MaxNetsFileBytes = DefaultMaxNetsFileBytes
	}
	return o
}

// checkTrust refuses a path that someone other than root could have
// written (trust.Path). Only meaningful when running as root: an
// unprivileged hostwall cannot steer the kernel's firewall.
func checkTrust(path string) error { return trust.Path(path) }
