package engine

import (
	"slices"
	"strings"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// The incremental apply (incremental.go) and sharded sets (ruleset.Sharding):
// a recipe names a set as compile made it, before it was dealt into slot
// sets, and the record holds the slot sets and dispatch maps (their
// ruleset.Split). A change to the set's elements is worked out on the
// elements around it (ruleset.Split.Around) and dealt into the slots as
// Split would deal it: by ruleset.Sharding.PatchSlots when no element gone
// or come starts a chunk, else by splitting the changed set again. A set that would cross
// the sharding's size, one way or the other, changes the layout (chains
// and rules): that takes the long way.

// recordedSet is where the record holds the set a recipe names.
type recordedSet struct {
	at    int   // the set's index; -1 for a sharded set
	slots []int // a sharded set's slot sets, in slot order
	maps  []int // its dispatch maps
	// sp is a sharded set's split: its slots' elements (shared) and the
	// ranges of its first dispatch map; ok is false when that map is not
	// one.
	sp ruleset.Split
	ok bool
}

// findRecorded finds the set called name among sets (byName their index).
func findRecorded(sets []*ruleset.Set, byName map[string]int, name string) (recordedSet, bool) {
	if at, ok := byName[name]; ok {
		return recordedSet{at: at}, true
	}
	rs := recordedSet{at: -1}
	for k := 0; ; k++ {
		at, ok := byName[ruleset.SlotName(name, k)]
		if !ok {
			break
		}
		rs.slots = append(rs.slots, at)
	}
	for i, s := range sets {
		if s.Map && s.Interval && strings.HasPrefix(s.Name, name+"/") {
			rs.maps = append(rs.maps, i)
		}
	}
	if len(rs.slots) == 0 || len(rs.maps) == 0 {
		return rs, false
	}
	ranges, rangeSlot, err := ruleset.Dispatch(sets[rs.maps[0]], len(rs.slots))
	rs.sp, rs.ok = ruleset.Split{Slots: make([][]ruleset.Element, len(rs.slots)), Ranges: ranges, RangeSlot: rangeSlot}, err == nil
	for k, at := range rs.slots {
		rs.sp.Slots[k] = sets[at].Elements
	}
	return rs, true
}

// size is the number of elements of the set.
func (rs recordedSet) size(sets []*ruleset.Set) int {
	if rs.at >= 0 {
		return len(sets[rs.at].Elements)
	}
	n := 0
	for _, at := range rs.slots {
		n += len(sets[at].Elements)
	}
	return n
}

// logical is the set called name as compile made it, before the slots.
func (rs recordedSet) logical(sets []*ruleset.Set, name string) (*ruleset.Set, bool) {
	if rs.at >= 0 {
		return sets[rs.at], true
	}
	if !rs.ok {
		return nil, false
	}
	elems, err := rs.sp.Join()
	if err != nil {
		return nil, false
	}
	return &ruleset.Set{Name: name, Type: sets[rs.slots[0]].Type, Interval: true, Elements: elems}, true
}

// patch works out what taking removed away from the set called name and
// adding added do to its elements (ruleset.Set.Patch): gone and come, and
// the Merged after. For a sharded set it works on the elements around the
// change alone (ruleset.Split.Around; the slots joined whole cost 46 MB
// at a million networks, at every change), and on all of them when what
// it makes reaches past those.
func (rs recordedSet) patch(sets []*ruleset.Set, name string, m ruleset.Merged, removed, added []ruleset.Element) (gone, come []ruleset.Element, next ruleset.Merged, ok bool) {
	if rs.at < 0 && rs.ok {
		elems, spans := rs.sp.Around(slices.Concat(removed, added))
		part := &ruleset.Set{Name: name, Type: sets[rs.slots[0]].Type, Interval: true, Elements: elems}
		if gone, come, next, ok := part.Patch(m, removed, added); ok && ruleset.Within(come, spans) {
			return gone, come, next, true
		}
	}
	before, ok := rs.logical(sets, name)
	if !ok {
		return nil, nil, nil, false
	}
	return before.Patch(m, removed, added)
}

// update changes the recorded set rs called name by taking gone away and
// adding come (in key order, as ruleset.Set.Patch finds them), in sets,
// and returns the set updates; ok is false when the change takes the long
// way (the layout changes).
func (rs recordedSet) update(sets []*ruleset.Set, name string, gone, come []ruleset.Element, sh ruleset.Sharding) (updates []planner.SetDiff, ok bool) {
	sharded := rs.size(sets)-len(gone)+len(come) >= sh.Min
	if rs.at >= 0 {
		before := sets[rs.at]
		if sharded && ruleset.IsAddrSet(before) && !keptWhole(before, sh) {
			return nil, false
		}
		after := *before
		after.Elements = ruleset.ApplyPatch(before.Elements, gone, come)
		sets[rs.at] = &after
		return []planner.SetDiff{{Before: before, After: &after, Added: come, Removed: gone}}, true
	}
	if !sharded || len(rs.slots) != sh.Slots {
		return nil, false
	}
	if !rs.ok {
		return nil, false
	}
	if slotGone, slotCome, ok := sh.PatchSlots(rs.sp.Ranges, rs.sp.RangeSlot, gone, come); ok {
		for k, at := range rs.slots {
			if len(slotGone[k])+len(slotCome[k]) == 0 {
				continue
			}
			was := sets[at]
			now := *was
			now.Elements = ruleset.ApplyPatch(was.Elements, slotGone[k], slotCome[k])
			sets[at] = &now
			updates = append(updates, planner.SetDiff{Before: was, After: &now, Added: slotCome[k], Removed: slotGone[k]})
		}
		return updates, true
	}
	before, ok := rs.logical(sets, name)
	if !ok {
		return nil, false
	}
	after := *before
	after.Elements = ruleset.ApplyPatch(before.Elements, gone, come)
	return rs.resplit(sets, &after, sh)
}

// keptWhole reports whether the recorded set s, not sharded, is one that
// compile keeps whole whatever its size (a rule that returns or goes to
// another chain looks it up: compile/shard.go): it was of the sharding's
// size already. Such a set changes incrementally, sharded or not; one
// that grows to that size from below may or may not be, and takes the
// long way.
func keptWhole(s *ruleset.Set, sh ruleset.Sharding) bool { return len(s.Elements) >= sh.Min }

// resplit deals the set after into the recorded set's slots and dispatch
// maps again, in sets, and returns the updates; ok is false when after
// is not sharded as recorded.
func (rs recordedSet) resplit(sets []*ruleset.Set, after *ruleset.Set, sh ruleset.Sharding) (updates []planner.SetDiff, ok bool) {
	if !sh.Applies(after) || len(rs.slots) != sh.Slots {
		return nil, false
	}
	sp := sh.Split(after)
	change := func(at int, elems []ruleset.Element) {
		was := sets[at]
		if slices.EqualFunc(was.Elements, elems, ruleset.Element.Equal) {
			return
		}
		now := *was
		now.Elements = elems
		sets[at] = &now
		updates = append(updates, planner.SetChange(was, &now))
	}
	for k, at := range rs.slots {
		change(at, sp.Slots[k])
	}
	for _, at := range rs.maps {
		change(at, ruleset.DispatchElements(sets[at].Name, sp))
	}
	return updates, true
}
