package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLockPerNamespace: the lock is the namespace's, whatever run
// directory each writer names: a second taker is refused naming the first
// (its pid and run directory), waits for it with a timeout, and gets it
// once released; a second agent is refused likewise, and Agent names the
// running one.
func TestLockPerNamespace(t *testing.T) {
	ns := Namespace{Name: "x", Dir: filepath.Join(t.TempDir(), "netns", "4026532000"), Cookie: 7}
	first, err := ns.Lock(0, NewHolder("/run/one"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ns.Lock(0, NewHolder("/run/two"))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), "/run/one") {
		t.Errorf("second taker: %v; want ErrLocked naming pid %d and /run/one", err, os.Getpid())
	}
	go func() { time.Sleep(100 * time.Millisecond); first.Release() }()
	second, err := ns.Lock(5*time.Second, NewHolder("/run/two"))
	if err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	second.Release()

	if ns.Agent() != nil {
		t.Error("an agent is found where none registered")
	}
	h := NewHolder("/run/one")
	h.Socket = "/run/one/agent-x.sock"
	reg, err := ns.RegisterAgent(h)
	if err != nil {
		t.Fatal(err)
	}
	if a := ns.Agent(); a == nil || a.Socket != h.Socket || a.PID != os.Getpid() {
		t.Errorf("Agent() = %+v, want the registered agent", a)
	}
	if _, err := ns.RegisterAgent(NewHolder("/run/two")); !errors.Is(err, ErrAgentRunning) || !strings.Contains(err.Error(), "/run/one") {
		t.Errorf("a second agent: %v; want ErrAgentRunning naming /run/one", err)
	}
	reg.Release()
	if ns.Agent() != nil {
		t.Error("an agent is found after it released its registration")
	}
	// The namespace's directory outlives it and its inode is reused: an
	// agent record of the dead namespace is not this one's.
	reg, _ = ns.RegisterAgent(h)
	other := ns
	other.Cookie = 8
	if other.Agent() != nil {
		t.Error("a dead namespace's agent was found for the namespace that reused its directory")
	}
	reg.Release()
}

// TestTrialsOfAReusedDirectory: a trial recorded for a namespace is not
// the trial of another namespace that reuses its directory; the state
// directory's mirror stands in for a record lost, Rebooted only when it
// names an earlier namespace; ending it removes both copies and records
// the outcome, which Confirm then reports.
func TestTrialsOfAReusedDirectory(t *testing.T) {
	store := &Store{Dir: t.TempDir()}
	ns := Namespace{Name: "x", Dir: filepath.Join(t.TempDir(), "netns", "4026532000"), Cookie: 7}
	tr := Trials{NS: ns, Store: store}
	if err := tr.Write(&Trial{Generation: 2, Previous: 1, Deadline: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, err := tr.Read(); err != nil || got == nil || got.Rebooted || got.Generation != 2 {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	reused := Trials{NS: ns, Store: &Store{Dir: t.TempDir()}}
	reused.NS.Cookie = 8
	if got, err := reused.Read(); err != nil || got != nil {
		t.Errorf("another namespace in the same directory reads %+v, %v; want no trial", got, err)
	}
	os.WriteFile(filepath.Join(ns.Dir, "trial.json"), []byte(`{"generation": 2, "prev`), 0o600)
	if got, err := tr.Read(); err != nil || got == nil || got.Rebooted || got.Generation != 2 {
		t.Errorf("with the namespace's record torn: %+v, %v; want the mirror's trial, not Rebooted", got, err)
	}
	os.Remove(filepath.Join(ns.Dir, "trial.json")) // a reboot empties /run
	rebooted := Trials{NS: ns, Store: store}
	rebooted.NS.Cookie = 9
	got, err := rebooted.Read()
	if err != nil || got == nil || !got.Rebooted {
		t.Fatalf("after a reboot: %+v, %v; want the mirror's trial, Rebooted", got, err)
	}
	if _, err := rebooted.Confirm("by a test"); err == nil {
		t.Error("a trial interrupted by a reboot was confirmed")
	}
	if err := rebooted.End(got, RolledBack, "restored"); err != nil {
		t.Fatal(err)
	}
	if got, _ := rebooted.Read(); got != nil {
		t.Errorf("a trial ended is still read: %+v", got)
	}
	if _, err := os.Stat(tr.mirrorPath()); !os.IsNotExist(err) {
		t.Errorf("the mirror outlives the trial: %v", err)
	}
	var rb *RolledBackError
	if _, err := rebooted.Confirm("by a test"); !errors.As(err, &rb) {
		t.Errorf("Confirm after the rollback: %v, want a RolledBackError", err)
	}
	// Without a mirror no trial of this state directory is pending,
	// whatever stray bytes the namespace's record holds; with the mirror
	// unreadable too, one may be, and which is not known.
	nsPath := filepath.Join(ns.Dir, "trial.json")
	for name, make := range map[string]func() error{
		"empty":     func() error { return os.WriteFile(nsPath, nil, 0o600) },
		"garbage":   func() error { return os.WriteFile(nsPath, []byte("{garbage"), 0o600) },
		"directory": func() error { return os.Mkdir(nsPath, 0o700) },
		"FIFO":      func() error { return syscall.Mkfifo(nsPath, 0o600) },
	} {
		os.RemoveAll(nsPath)
		if err := make(); err != nil {
			t.Fatal(err)
		}
		if got, err := tr.Read(); got != nil || err != nil {
			t.Errorf("a stray %s record without a mirror reads as %+v, %v; want no trial", name, got, err)
		}
	}
	// A later trial writes its record over whatever is there.
	if err := tr.Write(&Trial{Generation: 3, Previous: 2, Deadline: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("writing a trial over a stray record: %v", err)
	}
	if got, err := tr.Read(); err != nil || got == nil || got.Generation != 3 {
		t.Errorf("the trial written over a stray record reads %+v, %v", got, err)
	}
	os.WriteFile(tr.mirrorPath(), []byte("{torn"), 0o600)
	os.WriteFile(nsPath, []byte("{torn"), 0o600)
	var damaged *DamagedTrialError
	if _, err := tr.Read(); !errors.As(err, &damaged) {
		t.Errorf("both records unreadable: %v; want a DamagedTrialError", err)
	}
}

// TestIntent: an intent written reads back with its writer and namespace;
// one that does not read is an unknown change (Op ""); cleared is none.
func TestIntent(t *testing.T) {
	store := &Store{Dir: t.TempDir()}
	ns := Namespace{Name: "x", Cookie: 7}
	if err := store.WriteIntent(ns, &Intent{Op: "apply", Generation: 3, Previous: 2, New: true, Planned: 40}); err != nil {
		t.Fatal(err)
	}
	in, err := store.ReadIntent(ns)
	if err != nil || in == nil || in.Generation != 3 || in.PID != os.Getpid() || in.Cookie != 7 {
		t.Fatalf("ReadIntent = %+v, %v", in, err)
	}
	os.WriteFile(store.intentPath(ns), []byte(`{"op": "ap`), 0o600)
	if in, err := store.ReadIntent(ns); err != nil || in == nil || in.Op != "" {
		t.Errorf("a torn intent reads as %+v, %v; want an unknown change", in, err)
	}
	if err := store.ClearIntent(ns); err != nil {
		t.Fatal(err)
	}
	if in, err := store.ReadIntent(ns); err != nil || in != nil {
		t.Errorf("after ClearIntent: %+v, %v", in, err)
	}
}
