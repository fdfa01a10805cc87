package ruleset

import (
	"maps"
	"slices"
	"strings"
)

// Patching a large interval set: a blocklist of 100,000 networks changes by
// a few lines a day, and making the whole set again to diff it against the
// one before costs ~10 ms a change, where working out what the change does
// to the set costs microseconds. Normalize merges the networks a set is made
// from, so taking one away is only sound when it was an element by itself;
// Merged says which elements are not.

// Merged counts, for a normalized interval set, how many of the elements it
// was made from (before Normalize) went into each of its elements that more
// than one did, by the element's From (an interval set's elements are
// disjoint, so From names one). An element it does not name was made from
// one alone.
type Merged map[string]uint32

// count is how many elements went into the one starting at from.
func (m Merged) count(from string) uint32 {
	if n, ok := m[from]; ok {
		return n
	}
	return 1
}

// NormalizeCounting is Normalize, and for an interval set also returns
// which elements it merged (Merged; empty when none). A set of another kind
// returns nil.
func (s *Set) NormalizeCounting() Merged {
	if !s.Interval {
		s.Normalize()
		return nil
	}
	merged := Merged{}
	s.normalizeIntervals(merged)
	return merged
}

// Patch works out what Normalize would make of the elements s was made from
// (s normalized, with merged from NormalizeCounting or an earlier Patch)
// with removed taken out of them and added joining them, without them: the
// elements of s that go and those that come, each in key order (as
// diffElements would find them), and the Merged of the result. ok is false
// when s alone cannot tell: s is not a plain interval set, or an element
// removed is not an element of s by itself (not there, or merged with
// others). Removed and added are elements of s's key type (PrefixElement of
// its family).
func (s *Set) Patch(merged Merged, removed, added []Element) (gone, come []Element, next Merged, ok bool) {
	klen := s.Type.KeyLen()
	if !s.Interval || s.Map || klen == 0 {
		return nil, nil, nil, false
	}
	for _, e := range slices.Concat(removed, added) {
		if len(e.From) != klen || len(e.To) != klen || e.From > e.To || e.Verdict != nil {
			return nil, nil, nil, false
		}
	}
	elems := s.Elements
	next = maps.Clone(merged)
	if next == nil {
		next = Merged{}
	}
	dropped := map[int]bool{}
	for _, r := range removed {
		i, found := slices.BinarySearchFunc(elems, r.From, func(e Element, from string) int { return strings.Compare(e.From, from) })
		if !found || elems[i].To != r.To || dropped[i] || next.count(r.From) != 1 {
			return nil, nil, nil, false
		}
		dropped[i] = true
	}
	added = slices.Clone(added)
	slices.SortFunc(added, CompareElements)
	for _, a := range added {
		lo, hi, n := a.From, a.To, uint32(1)
		// Whatever a touches goes into it, and whatever that grows it to
		// touches too: elements of s, and those made by earlier additions.
		for grown := true; grown; {
			grown = false
			j, _ := slices.BinarySearchFunc(elems, lo, func(e Element, lo string) int {
				if after(lo, e.To) {
					return -1 // e ends before lo-1
				}
				return 1
			})
			for ; j < len(elems) && !after(elems[j].From, hi); j++ {
				if dropped[j] {
					continue
				}
				dropped[j] = true
				lo, hi, n = min(lo, elems[j].From), max(hi, elems[j].To), n+next.count(elems[j].From)
				delete(next, elems[j].From)
			}
			// come stays sorted and disjoint: the additions go in order,
			// so what a touches of it is a run at its end, found by a
			// search (a scan per addition made a long list quadratic).
			k, _ := slices.BinarySearchFunc(come, lo, func(c Element, lo string) int {
				if after(lo, c.To) {
					return -1
				}
				return 1
			})
			kept := k
			for _, c := range come[k:] {
				if after(c.From, hi) {
					come[kept] = c
					kept++
					continue
				}
				lo, hi, n = min(lo, c.From), max(hi, c.To), n+next.count(c.From)
				delete(next, c.From)
				grown = true
			}
			come = come[:kept]
		}
		if n > 1 {
			next[lo] = n
		}
		come = append(come, Element{From: lo, To: hi})
	}
	for _, i := range slices.Sorted(maps.Keys(dropped)) {
		gone = append(gone, elems[i])
	}
	slices.SortFunc(come, CompareElements)
	// An element that went and came back as it was (a network moved to
	// another line, or added inside one there) is no change.
	g, c := gone[:0], come[:0]
	for i, j := 0, 0; i < len(gone) || j < len(come); {
		switch {
		case j == len(come) || i < len(gone) && CompareElements(gone[i], come[j]) < 0:
			g = append(g, gone[i])
			i++
		case i == len(gone) || CompareElements(come[j], gone[i]) < 0:
			c = append(c, come[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return g, c, next, true
}

// ApplyPatch returns elems (normalized) without gone and with come, as
// Patch found them: a copy, made by copying the runs between the changes.
func ApplyPatch(elems, gone, come []Element) []Element {
	out := make([]Element, 0, len(elems)-len(gone)+len(come))
	search := func(e Element) int {
		i, _ := slices.BinarySearchFunc(elems, e, CompareElements)
		return i
	}
	at := 0
	for len(gone) > 0 || len(come) > 0 {
		gi := len(elems)
		if len(gone) > 0 {
			gi = search(gone[0])
		}
		if len(come) > 0 {
			if ci := search(come[0]); ci <= gi {
				out = append(append(out, elems[at:ci]...), come[0])
				at, come = ci, come[1:]
				continue
			}
		}
		out = append(out, elems[at:gi]...)
		at, gone = gi+1, gone[1:]
	}
	return append(out, elems[at:]...)
}
