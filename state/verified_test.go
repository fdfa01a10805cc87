package state

import (
	"os"
	"path/filepath"
	"testing"
)

// TestVerifiedStaged: a base staged before the commit is the record's once
// saved, and reads back with it; a staged base discarded, or replaced under
// a record, leaves nothing behind and is never taken for the record's.
func TestVerifiedStaged(t *testing.T) {
	r := RunDir{Dir: filepath.Join(t.TempDir(), "run")}
	leftovers := func() []string {
		t.Helper()
		names, _ := filepath.Glob(filepath.Join(r.Dir, ".*"))
		return names
	}
	staged, err := r.StageVerifiedBase("ns", []byte("base one"))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verified{Key: "k", Generation: 7}
	if err := r.SaveVerified("ns", v, staged); err != nil {
		t.Fatal(err)
	}
	back, err := r.LoadVerified("ns")
	if err != nil || back == nil || back.Generation != 7 {
		t.Fatalf("LoadVerified = %+v, %v", back, err)
	}
	if got := r.LoadVerifiedBase("ns", back); string(got) != "base one" {
		t.Errorf("base = %q", got)
	}
	// A commit that failed: its staged base goes, the record stays.
	failed, err := r.StageVerifiedBase("ns", []byte("base two"))
	if err != nil {
		t.Fatal(err)
	}
	failed.Discard()
	if l := leftovers(); len(l) != 0 {
		t.Errorf("left in the run directory: %v", l)
	}
	if got := r.LoadVerifiedBase("ns", back); string(got) != "base one" {
		t.Errorf("after a discarded stage, base = %q", got)
	}
	// A base changed under its record is not the record's.
	if err := os.WriteFile(r.basePath("ns"), []byte("base three"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := r.LoadVerifiedBase("ns", back); got != nil {
		t.Errorf("a base that is not the record's was read: %q", got)
	}
	// No base.
	none, err := r.StageVerifiedBase("ns", nil)
	if err != nil || none != nil {
		t.Fatalf("staging no base: %v, %v", none, err)
	}
	none.Discard()
	if err := r.SaveVerified("ns", &Verified{Key: "k"}, none); err != nil {
		t.Fatal(err)
	}
	if back, _ := r.LoadVerified("ns"); back == nil || back.Base != "" || r.LoadVerifiedBase("ns", back) != nil {
		t.Errorf("a record without a base: %+v", back)
	}
}
