package agent

import (
	"testing"
	"time"
)

// TestWatcherSignal: signals never block, and the one waiting is the
// latest change's time, which the debounce counts from.
func TestWatcherSignal(t *testing.T) {
	w := &watcher{changes: make(chan time.Time, 1)}
	w.signal()
	first := <-w.changes
	w.changes <- first.Add(-time.Hour) // an older change, not taken yet
	w.signal()
	w.signal()
	if len(w.changes) != 1 {
		t.Fatalf("%d changes waiting, want 1", len(w.changes))
	}
	if got := <-w.changes; got.Before(first) {
		t.Errorf("the waiting change is at %v, before the latest signal's %v", got, first)
	}
}
