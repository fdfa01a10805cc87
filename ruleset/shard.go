package ruleset

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Sharded address sets (docs/kernel.md, "Sharded sets").
//
// The kernel's dump of an interval set restarts its walk of the set's tree
// for every message it fills (trap 11): reading a set back costs time
// quadratic in its size, a minute at a million networks. A large address
// set is therefore dealt into Slots slot sets of a fixed count, read back
// at a cost linear in the whole, and a rule that looked the set up looks
// the packet's address up in a dispatch map instead: an interval verdict
// map whose ranges cover the whole key space, each jumping to the chain
// that looks the address up in the one slot set that can hold it. One map
// lookup and one set lookup a packet, whatever the set's size.
//
// Which slot an element goes to is a function of the elements alone, and a
// local one, so that a one-line change to a blocklist moves one element:
// the sorted elements are cut into chunks where an element's key hashes to
// a chunk start (2^ChunkBits elements a chunk on average, as
// content-defined chunking cuts files), and a chunk goes to the slot its
// first key hashes to. Adding or removing an element changes which chunk
// another element is in only when the element itself starts a chunk. The
// number of slots, and so every chain a sharded set needs, does not depend
// on the elements: a change to the networks alone changes elements only.

// Sharding says which address sets are sharded, and how.
type Sharding struct {
	// Min is the number of elements (after merging) from which an address
	// set is sharded.
	Min int
	// Slots is the number of slot sets of a sharded set, at most 100.
	Slots int
	// ChunkBits sets the chunks' average size, 2^ChunkBits elements.
	ChunkBits uint
}

// DefaultSharding shards sets of 32,768 elements and more into 64 slots,
// in chunks of 512 elements on average: a million networks are read back
// as 64 sets of ~16,000, 100,000 as 64 of ~1,600. Below 32,768 an
// interval set reads back in near-linear time; above it the kernel's
// restarted walks (trap 11) take over: 65,536 networks read in 5.4 µs
// each, 131,072 in 15 µs, against ~4 µs below (BenchmarkReadSetSize,
// docs/kernel.md).
var DefaultSharding = Sharding{Min: 1 << 15, Slots: 64, ChunkBits: 9}

// WithDefaults returns sh with every zero field its default.
func (sh Sharding) WithDefaults() Sharding {
	if sh.Min == 0 {
		sh.Min = DefaultSharding.Min
	}
	if sh.Slots == 0 {
		sh.Slots = DefaultSharding.Slots
	}
	if sh.ChunkBits == 0 {
		sh.ChunkBits = DefaultSharding.ChunkBits
	}
	return sh
}

// Applies reports whether the set s, as desired, is sharded.
func (sh Sharding) Applies(s *Set) bool {
	return IsAddrSet(s) && len(s.Elements) >= sh.Min
}

// IsAddrSet reports whether s is an interval set of addresses.
func IsAddrSet(s *Set) bool {
	return s.Interval && !s.Map && (s.Type == TypeIPv4Addr || s.Type == TypeIPv6Addr)
}

// SlotName is the name of slot k of the sharded set called set.
func SlotName(set string, k int) string { return fmt.Sprintf("%s/%02d", set, k) }

// ShardedSetName is the name of the set a slot set was dealt from (name
// itself for any other set): SlotName's inverse. Set names hostwall makes
// hold no other "/".
func ShardedSetName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		return name[:i]
	}
	return name
}

// SlotChain is the name of the chain that dispatch map m sends slot k's
// addresses to.
func SlotChain(m string, k int) string { return fmt.Sprintf("%s/%02d", m, k) }

// A Split is a set's elements dealt into slots.
type Split struct {
	// Slots holds each slot's elements, sorted.
	Slots [][]Element
	// Ranges cover the key space, in order; Ranges[i] holds the keys whose
	// elements are in slot RangeSlot[i].
	Ranges    []Element
	RangeSlot []int
}

// Split deals the elements of the normalized address set s into slots.
func (sh Sharding) Split(s *Set) Split {
	klen := s.Type.KeyLen()
	sp := Split{Slots: make([][]Element, sh.Slots)}
	per := len(s.Elements)/sh.Slots + len(s.Elements)/(4*sh.Slots) + 1
	for k := range sp.Slots {
		sp.Slots[k] = make([]Element, 0, per)
	}
	start := strings.Repeat("\x00", klen)
	slot := sh.slotOf(start)
	for _, e := range s.Elements {
		if e.From != start && sh.starts(e.From) {
			sp.Ranges = append(sp.Ranges, Element{From: start, To: Decrement(e.From)})
			sp.RangeSlot = append(sp.RangeSlot, slot)
			start, slot = e.From, sh.slotOf(e.From)
		}
		sp.Slots[slot] = append(sp.Slots[slot], e)
	}
	sp.Ranges = append(sp.Ranges, Element{From: start, To: strings.Repeat("\xff", klen)})
	sp.RangeSlot = append(sp.RangeSlot, slot)
	return sp
}

// keyHash is FNV-1a of the key, finished with a multiply-xorshift so its
// low and high bits both mix the whole key. It is part of the kernel
// layout: changing it moves elements between slots on upgrade.
func keyHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	return h ^ h>>33
}

func (sh Sharding) starts(key string) bool { return keyHash(key)&(1<<sh.ChunkBits-1) == 0 }

func (sh Sharding) slotOf(key string) int { return int(keyHash(key) >> 32 % uint64(sh.Slots)) }

// SlotSets returns the slot sets of the sharded set s (as desired), split
// as sp: each of s's type, comment and owner.
func SlotSets(s *Set, sp Split) []*Set {
	out := make([]*Set, len(sp.Slots))
	for k, elems := range sp.Slots {
		out[k] = &Set{Name: SlotName(s.Name, k), Type: s.Type, Interval: true, Owner: s.Owner,
			Comment: fmt.Sprintf("%s (slot %02d)", s.Comment, k), Elements: elems}
	}
	return out
}

// DispatchElements are the elements of dispatch map m of a set split as
// sp: each range jumps to its slot's chain.
func DispatchElements(m string, sp Split) []Element {
	out := make([]Element, len(sp.Ranges))
	for i, r := range sp.Ranges {
		v := Jump(SlotChain(m, sp.RangeSlot[i]))
		out[i] = Element{From: r.From, To: r.To, Verdict: &v}
	}
	return out
}

// Dispatch reads a dispatch map back as a split's ranges: its elements
// (in key order) and the slot each jumps to, of slots slots. It fails on a
// map that is not one DispatchElements makes.
func Dispatch(m *Set, slots int) (ranges []Element, rangeSlot []int, err error) {
	for _, r := range m.Elements {
		if r.Verdict == nil || r.Verdict.Kind != VerdictJump || !strings.HasPrefix(r.Verdict.Chain, m.Name+"/") {
			return nil, nil, fmt.Errorf("map %s: element %s is not a dispatch to a slot", m.Name, m.FormatElement(r))
		}
		k, err := strconv.Atoi(r.Verdict.Chain[len(m.Name)+1:])
		if err != nil || k < 0 || k >= slots || SlotChain(m.Name, k) != r.Verdict.Chain {
			return nil, nil, fmt.Errorf("map %s: element %s jumps to no slot", m.Name, m.FormatElement(r))
		}
		ranges = append(ranges, Element{From: r.From, To: r.To})
		rangeSlot = append(rangeSlot, k)
	}
	return ranges, rangeSlot, nil
}

// Join returns the elements sp was split from, in key order.
func (sp Split) Join() ([]Element, error) {
	n := 0
	for _, s := range sp.Slots {
		n += len(s)
	}
	out := make([]Element, 0, n)
	at := make([]int, len(sp.Slots))
	for i, r := range sp.Ranges {
		k := sp.RangeSlot[i]
		s := sp.Slots[k]
		for at[k] < len(s) && s[at[k]].From <= r.To {
			if s[at[k]].From < r.From || s[at[k]].To > r.To {
				return nil, fmt.Errorf("slot %d: an element is not in its range", k)
			}
			out = append(out, s[at[k]])
			at[k]++
		}
	}
	for k, s := range sp.Slots {
		if at[k] != len(s) {
			return nil, fmt.Errorf("slot %d holds elements its dispatch map does not reach", k)
		}
	}
	return out, nil
}

// Around returns the elements sp was split from that a change of the
// elements change can meet: those of the ranges that hold a key of one of
// them and of the range on either side, in key order; and the spans of key
// space those ranges cover. A change worked out on them (Set.Patch) is the
// change worked out on all elements as long as every element it takes away
// or makes lies inside a span and touches no span's end (Within): a merge
// that grows past that needs the others.
func (sp Split) Around(change []Element) (elems, spans []Element) {
	rangeOf := func(key string) int {
		i, found := slices.BinarySearchFunc(sp.Ranges, key, func(r Element, key string) int { return strings.Compare(r.From, key) })
		if !found {
			i--
		}
		return max(i, 0)
	}
	marked := make(map[int]bool)
	for _, e := range change {
		for i := rangeOf(e.From) - 1; i <= rangeOf(e.To)+1; i++ {
			if i >= 0 && i < len(sp.Ranges) {
				marked[i] = true
			}
		}
	}
	for _, i := range slices.Sorted(maps.Keys(marked)) {
		r, slot := sp.Ranges[i], sp.Slots[sp.RangeSlot[i]]
		lo, _ := slices.BinarySearchFunc(slot, r.From, func(e Element, from string) int { return strings.Compare(e.From, from) })
		for ; lo < len(slot) && slot[lo].From <= r.To; lo++ {
			elems = append(elems, slot[lo])
		}
		if n := len(spans); n > 0 && marked[i-1] {
			spans[n-1].To = r.To
		} else {
			spans = append(spans, Element{From: r.From, To: r.To})
		}
	}
	return elems, spans
}

// Within reports whether every element of elems lies inside one of spans
// (Around's) without touching its ends, but at the ends of the key space.
func Within(elems, spans []Element) bool {
	for _, e := range elems {
		i, found := slices.BinarySearchFunc(spans, e.From, func(s Element, from string) int { return strings.Compare(s.From, from) })
		if !found {
			i--
		}
		if i < 0 {
			return false
		}
		s := spans[i]
		zero, top := strings.Repeat("\x00", len(s.From)), strings.Repeat("\xff", len(s.To))
		if e.To > s.To || (e.From == s.From && s.From != zero) || (e.To == s.To && s.To != top) {
			return false
		}
	}
	return true
}

// PatchSlots works out what Split makes of a change to a set split into
// ranges (Dispatch's): the elements gone and come (Set.Patch's, in key
// order) of each slot, in key order. ok is false when an element gone or
// come starts a chunk: the ranges move, and the set is to be split again.
func (sh Sharding) PatchSlots(ranges []Element, rangeSlot []int, gone, come []Element) (slotGone, slotCome [][]Element, ok bool) {
	slotGone, slotCome = make([][]Element, sh.Slots), make([][]Element, sh.Slots)
	deal := func(elems []Element, into [][]Element) bool {
		for _, e := range elems {
			if sh.starts(e.From) && e.From != ranges[0].From {
				return false
			}
			i, found := slices.BinarySearchFunc(ranges, e.From, func(r Element, from string) int { return strings.Compare(r.From, from) })
			if !found {
				i-- // the range starting before e
			}
			if i < 0 || e.To > ranges[i].To {
				return false
			}
			into[rangeSlot[i]] = append(into[rangeSlot[i]], e)
		}
		return true
	}
	if !deal(gone, slotGone) || !deal(come, slotCome) {
		return nil, nil, false
	}
	return slotGone, slotCome, true
}

// Decrement returns key-1 in big-endian arithmetic; key is not all zero.
func Decrement(key string) string {
	b := []byte(key)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]--
		if b[i] != 0xff {
			break
		}
	}
	return string(b)
}
