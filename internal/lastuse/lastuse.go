// Package lastuse keeps, from one run of some work to the next, the values
// the last run used: what a long-running process (the agent) need not make
// again when its input has not changed, and no more — a value the last run
// did not use is forgotten.
package lastuse

import "sync"

// Map is a lastuse map. The zero value is empty and ready; a nil *Map
// keeps nothing.
type Map[K comparable, V any] struct {
	mu         sync.Mutex
	last, this map[K]V
}

// Get returns the value the last run kept under k, and keeps it for the
// next run too.
func (m *Map[K, V]) Get(k K) (V, bool) {
	var zero V
	if m == nil {
		return zero, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.last[k]
	if ok {
		m.keepLocked(k, v)
	}
	return v, ok
}

// Keep keeps v under k for the next run.
func (m *Map[K, V]) Keep(k K, v V) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keepLocked(k, v)
}

func (m *Map[K, V]) keepLocked(k K, v V) {
	if m.this == nil {
		m.this = map[K]V{}
	}
	m.this[k] = v
}

// Done ends a run: what it kept is what the next run finds.
func (m *Map[K, V]) Done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last, m.this = m.this, nil
}

// Len is the number of values the next run finds.
func (m *Map[K, V]) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.last)
}

// Values returns the values the next run finds, in no order, without
// keeping them for the run after.
func (m *Map[K, V]) Values() []V {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]V, 0, len(m.last))
	for _, v := range m.last {
		out = append(out, v)
	}
	return out
}
