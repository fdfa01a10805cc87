package ruleset

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// join is Split.Join of the split that dispatch map m and slots are.
func join(m *Set, slots []*Set) ([]Element, error) {
	ranges, rangeSlot, err := Dispatch(m, len(slots))
	if err != nil {
		return nil, err
	}
	sp := Split{Ranges: ranges, RangeSlot: rangeSlot}
	for _, s := range slots {
		sp.Slots = append(sp.Slots, s.Elements)
	}
	return sp.Join()
}

// randomAddrSet is a normalized address set of about n networks of family
// f, /16 to /32 (/64 to /128), drawn from r.
func randomAddrSet(r *rand.Rand, f IPFamily, n int) *Set {
	s := &Set{Name: "sel-x-4", Type: f.AddrType(), Interval: true}
	for range n {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		var p netip.Prefix
		if f == IPv4 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), 16+r.IntN(17))
		} else {
			p = netip.PrefixFrom(netip.AddrFrom16(b), 64+r.IntN(65))
		}
		s.Elements = append(s.Elements, PrefixElement(p))
	}
	s.Normalize()
	return s
}

// randomChange draws elements of s to take away (each an element by
// itself, as Set.Patch can take away) and networks to add, a quarter of
// them wide ones merging many when wide.
func randomChange(r *rand.Rand, s *Set, merged Merged, f IPFamily, wide bool) (removed, added []Element) {
	for range 1 + r.IntN(4) {
		if r.IntN(2) == 0 && len(s.Elements) > 0 {
			e := s.Elements[r.IntN(len(s.Elements))]
			if merged.count(e.From) == 1 && !slices.Contains(removed, e) {
				removed = append(removed, e)
			}
			continue
		}
		e := randomAddrSet(r, f, 1).Elements[0]
		if wide && r.IntN(4) == 0 {
			bits := 4 + r.IntN(8)
			if f == IPv6 {
				bits = 4 + r.IntN(16)
			}
			a, _ := netip.AddrFromSlice([]byte(e.From))
			e = PrefixElement(netip.PrefixFrom(a, bits))
		}
		added = append(added, e)
	}
	return removed, added
}

// Split deals every element into exactly one slot, inside its range, the
// ranges cover the key space in order, and the dispatch map and slots join
// back into the set.
func TestSplitJoin(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		r := rand.New(rand.NewPCG(seed, 0))
		for _, f := range []IPFamily{IPv4, IPv6} {
			for _, sh := range []Sharding{{Min: 1, Slots: 3, ChunkBits: 1}, {Min: 1, Slots: 64, ChunkBits: 4}, DefaultSharding} {
				s := randomAddrSet(r, f, r.IntN(3000))
				sp := sh.Split(s)
				klen := s.Type.KeyLen()
				if sp.Ranges[0].From != string(make([]byte, klen)) || sp.Ranges[len(sp.Ranges)-1].To != string(slices.Repeat([]byte{0xff}, klen)) {
					t.Fatalf("seed %d %s %+v: the ranges do not cover the key space", seed, f, sh)
				}
				for i := 1; i < len(sp.Ranges); i++ {
					if next, _ := Increment(sp.Ranges[i-1].To); next != sp.Ranges[i].From {
						t.Fatalf("seed %d %s %+v: range %d does not follow range %d", seed, f, sh, i, i-1)
					}
				}
				m := &Set{Name: "sel-x-4/d", Type: s.Type, Interval: true, Map: true, Elements: DispatchElements("sel-x-4/d", sp)}
				joined, err := join(m, SlotSets(s, sp))
				if err != nil {
					t.Fatalf("seed %d %s %+v: %v", seed, f, sh, err)
				}
				if !slices.Equal(joined, s.Elements) {
					t.Fatalf("seed %d %s %+v: Join(Split) is not the set", seed, f, sh)
				}

			}
		}
	}
}

// A join refuses slots that are not a split by their dispatch map: an element
// moved to another slot, or one no range reaches.
func TestJoinRefusesAMisplacedElement(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 0))
	sh := Sharding{Min: 1, Slots: 4, ChunkBits: 2}
	s := randomAddrSet(r, IPv4, 200)
	sp := sh.Split(s)
	m := &Set{Name: "m", Type: s.Type, Interval: true, Map: true, Elements: DispatchElements("m", sp)}
	slots := SlotSets(s, sp)
	from := slices.IndexFunc(slots, func(s *Set) bool { return len(s.Elements) > 0 })
	to := (from + 1) % len(slots)
	moved := slots[from].Elements[0]
	slots[from].Elements = slots[from].Elements[1:]
	slots[to].Elements = append([]Element{moved}, slots[to].Elements...)
	if _, err := join(m, slots); err == nil {
		t.Fatal("Join took an element in the wrong slot")
	}
}

// Taking one element away moves no other element between slots, unless it
// starts a chunk: then only the elements of its chunk may move (they join
// the chunk before). This keeps a one-line change to a blocklist a
// one-element change in the kernel, but once in 2^ChunkBits.
func TestSplitIsLocal(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 0))
	sh := Sharding{Min: 1, Slots: 64, ChunkBits: 6}
	s := randomAddrSet(r, IPv4, 20_000)
	slotOf := func(sp Split) map[string]int {
		out := map[string]int{}
		for k, elems := range sp.Slots {
			for _, e := range elems {
				out[e.Key()] = k
			}
		}
		return out
	}
	was := slotOf(sh.Split(s))
	starts := 0
	for range 100 {
		i := r.IntN(len(s.Elements))
		if r.IntN(2) == 0 { // half the time, an element that starts a chunk
			for i > 0 && !sh.starts(s.Elements[i].From) {
				i--
			}
		}
		chunk := 1 // the element and those after it up to the next start
		for chunk+i < len(s.Elements) && !sh.starts(s.Elements[i+chunk].From) {
			chunk++
		}
		after := &Set{Type: s.Type, Interval: true, Elements: slices.Delete(slices.Clone(s.Elements), i, i+1)}
		moved := 0
		for k, slot := range slotOf(sh.Split(after)) {
			if was[k] != slot {
				moved++
			}
		}
		switch start := i > 0 && sh.starts(s.Elements[i].From); {
		case start && moved > chunk-1:
			t.Fatalf("taking away element %d, which starts a chunk of %d, moved %d others", i, chunk, moved)
		case start:
			starts++
		case moved > 0:
			t.Fatalf("taking away element %d, which starts no chunk, moved %d others", i, moved)
		}
	}
	if starts == 0 {
		t.Fatal("no element taken away started a chunk: the test tested half")
	}
}

// PatchSlots, when it can tell, gives each slot the change Split of the
// changed set would: held to the slow path on random changes.
func TestPatchSlotsIsSplit(t *testing.T) {
	sh := Sharding{Min: 1, Slots: 5, ChunkBits: 3}
	patched, resplit := 0, 0
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		f := []IPFamily{IPv4, IPv6}[seed%2]
		s := randomAddrSet(r, f, 50+r.IntN(300))
		merged := s.NormalizeCounting()
		removed, added := randomChange(r, s, merged, f, false)
		gone, come, _, ok := s.Patch(merged, removed, added)
		if !ok {
			continue
		}
		before := sh.Split(s)
		after := &Set{Type: s.Type, Interval: true, Elements: ApplyPatch(s.Elements, gone, come)}
		want := sh.Split(after)
		slotGone, slotCome, ok := sh.PatchSlots(before.Ranges, before.RangeSlot, gone, come)
		if !ok {
			resplit++
			continue
		}
		patched++
		if !slices.Equal(want.Ranges, before.Ranges) {
			t.Fatalf("seed %d: PatchSlots kept ranges that moved", seed)
		}
		for k := range sh.Slots {
			if got := ApplyPatch(before.Slots[k], slotGone[k], slotCome[k]); !slices.Equal(got, want.Slots[k]) {
				t.Fatalf("seed %d: slot %d patched is not slot %d split", seed, k, k)
			}
		}
	}
	if patched == 0 || resplit == 0 {
		t.Fatalf("%d changes patched, %d split again: both ways must be tested", patched, resplit)
	}
}

// Set.Patch worked out on the elements Around a change is the change
// worked out on all of them, whenever what it makes lies Within the spans:
// held to the slow path on random changes.
func TestPatchAroundIsPatch(t *testing.T) {
	sh := Sharding{Min: 1, Slots: 5, ChunkBits: 3}
	within, outside := 0, 0
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 2))
		f := []IPFamily{IPv4, IPv6}[seed%2]
		s := randomAddrSet(r, f, 50+r.IntN(400))
		merged := s.NormalizeCounting()
		removed, added := randomChange(r, s, merged, f, true)
		wantGone, wantCome, wantNext, wantOK := s.Patch(merged, removed, added)
		elems, spans := sh.Split(s).Around(slices.Concat(removed, added))
		part := &Set{Type: s.Type, Interval: true, Elements: elems}
		gone, come, next, ok := part.Patch(merged, removed, added)
		if !ok || !Within(come, spans) {
			outside++
			continue
		}
		within++
		if !wantOK || !slices.Equal(gone, wantGone) || !slices.Equal(come, wantCome) || !maps.Equal(next, wantNext) {
			t.Fatalf("seed %d: the change worked out around it is not the whole set's", seed)
		}
	}
	// A normalized set holds no two adjacent elements, so what a change
	// makes never reaches past the range beside the ones it touches:
	// Within is a guard, expected to hold every time.
	if outside > 0 {
		t.Errorf("%d of %d changes made elements outside the ranges around them", outside, within+outside)
	}
	v4 := func(a, b string) Element {
		return Element{From: string(netip.MustParseAddr(a).AsSlice()), To: string(netip.MustParseAddr(b).AsSlice())}
	}
	spans := []Element{v4("10.0.0.0", "10.0.0.255"), v4("10.0.2.0", "255.255.255.255")}
	for _, c := range []struct {
		e    Element
		want bool
	}{
		{v4("10.0.0.1", "10.0.0.254"), true},
		{v4("10.0.0.0", "10.0.0.3"), false},   // touches the span's start
		{v4("10.0.0.8", "10.0.0.255"), false}, // and its end
		{v4("10.0.1.0", "10.0.1.3"), false},   // in no span
		{v4("10.0.3.0", "255.255.255.255"), true},
	} {
		if got := Within([]Element{c.e}, spans); got != c.want {
			t.Errorf("Within(%x-%x) = %v, want %v", c.e.From, c.e.To, got, c.want)
		}
	}
}
