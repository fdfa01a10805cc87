package state

import (
	"bytes"
	"os"
	"path/filepath"
)

// A cache slot of the run directory keeps one value under a key: what the
// loader decoded from a configuration directory's policy files
// (loader.Cache), one slot per directory. Being in the run directory, it
// is private to hostwall's user, like everything the value steers, and a
// reboot empties it. The value follows a line holding the key and the
// value's SHA-256: the slot is written without syncing (a value is only
// worth time), so the hash is what tells a value torn by a crash.

func (r RunDir) cachePath(slot string) string {
	return filepath.Join(r.Dir, "cache-"+slot)
}

// SaveCached keeps value under key (one line, no newline) in the slot,
// replacing what it held.
func (r RunDir) SaveCached(slot, key string, value []byte) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	head := key + " " + hashHex(value) + "\n"
	return writeFileUnsynced(r.cachePath(slot), append([]byte(head), value...), 0o600)
}

// LoadCached returns the value the slot holds under key, nil when it holds
// none (or another key's).
func (r RunDir) LoadCached(slot, key string) []byte {
	data, err := os.ReadFile(r.cachePath(slot))
	if err != nil {
		return nil
	}
	head, value, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || string(head) != key+" "+hashHex(value) {
		return nil
	}
	return value
}
