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
// reboot empties it.

func (r RunDir) cachePath(slot string) string {
	return filepath.Join(r.Dir, "cache-"+slot)
}

// SaveCached keeps value under key in the slot, replacing what it held.
func (r RunDir) SaveCached(slot, key string, value []byte) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	data := make([]byte, 0, len(key)+1+len(value))
	data = append(append(append(data, key...), '\n'), value...)
	return writeFile(r.cachePath(slot), data, 0o600)
}

// LoadCached returns the value the slot holds under key, nil when it holds
// none (or another key's).
func (r RunDir) LoadCached(slot, key string) []byte {
	data, err := os.ReadFile(r.cachePath(slot))
	if err != nil {
		return nil
	}
	k, value, ok := bytes.Cut(data, []byte{'\n'})
	if !ok || string(k) != key {
		return nil
	}
	return value
}
