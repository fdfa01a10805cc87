package lastuse

import "testing"

// TestMap: a run finds what the last run kept or got, nothing older; a nil
// map keeps nothing.
func TestMap(t *testing.T) {
	var m Map[string, int]
	if _, ok := m.Get("a"); ok {
		t.Error("an empty map holds a")
	}
	m.Keep("a", 1)
	m.Keep("b", 2)
	if _, ok := m.Get("a"); ok {
		t.Error("a kept in this run is found before the run is done")
	}
	m.Done()
	if v, ok := m.Get("a"); !ok || v != 1 { // used again: kept
		t.Errorf("a = %d, %v", v, ok)
	}
	m.Done()
	if v, ok := m.Get("a"); !ok || v != 1 {
		t.Errorf("a after a run that got it = %d, %v", v, ok)
	}
	if _, ok := m.Get("b"); ok {
		t.Error("b, which the last run did not use, is still there")
	}
	if m.Done(); m.Len() != 1 {
		t.Errorf("%d values, want 1", m.Len())
	}
	var none *Map[string, int]
	none.Keep("a", 1)
	none.Done()
	if _, ok := none.Get("a"); ok || none.Len() != 0 {
		t.Error("a nil map kept something")
	}
}
