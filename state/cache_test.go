package state

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCacheSlot: a slot returns its value under its key only, one value
// per slot, private to the user.
func TestCacheSlot(t *testing.T) {
	r := RunDir{Dir: filepath.Join(t.TempDir(), "run")}
	if v := r.LoadCached("a", "k1"); v != nil {
		t.Errorf("empty slot: %q", v)
	}
	if err := r.SaveCached("a", "k1", []byte("one\ntwo")); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveCached("b", "k1", []byte("other")); err != nil {
		t.Fatal(err)
	}
	if v := r.LoadCached("a", "k1"); string(v) != "one\ntwo" {
		t.Errorf("got %q", v)
	}
	if v := r.LoadCached("a", "k2"); v != nil {
		t.Errorf("another key: %q", v)
	}
	if err := r.SaveCached("a", "k2", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if v := r.LoadCached("a", "k1"); v != nil {
		t.Errorf("replaced key: %q", v)
	}
	if v := r.LoadCached("b", "k1"); string(v) != "other" {
		t.Errorf("slot b: %q", v)
	}
	fi, err := os.Stat(r.cachePath("a"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("slot file: %v, mode %v", err, fi.Mode())
	}
}

// TestCacheSlotTorn: a value that is not the one written (a crash tore
// it) is no value.
func TestCacheSlotTorn(t *testing.T) {
	r := RunDir{Dir: t.TempDir()}
	if err := r.SaveCached("a", "k", []byte("the value")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.cachePath("a"))
	for _, torn := range [][]byte{data[:len(data)-1], append(data[:len(data)-1:len(data)-1], 'X'), nil} {
		os.WriteFile(r.cachePath("a"), torn, 0o600)
		if v := r.LoadCached("a", "k"); v != nil {
			t.Errorf("%q read back as %q", torn, v)
		}
	}
}
