package ruleset

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

// randomSet draws a set of any shape: interval or not, a verdict map,
// empty, keys of one length or of several.
func randomSet(rng *rand.Rand) *Set {
	types := []SetType{TypeIPv4Addr, TypeIPv6Addr, TypeInetService, TypeIfName, TypeNamedPort4, "unknown"}
	s := &Set{Name: "s", Type: types[rng.IntN(len(types))], Interval: rng.IntN(2) == 0, Comment: "selector role == 'web' Ω", Owner: `policy "p"`}
	n := rng.IntN(50)
	if rng.IntN(10) == 0 {
		n = 0
	}
	k := s.Type.KeyLen()
	uniform := k > 0 && rng.IntN(2) == 0 // keys of one length, no verdicts: a block
	for range n {
		key := func() string {
			l := k
			if !uniform && (l == 0 || rng.IntN(5) == 0) {
				l = rng.IntN(20)
			}
			b := make([]byte, l)
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return string(b)
		}
		e := Element{From: key()}
		e.To = e.From
		if s.Interval {
			e.To = key()
		}
		if !uniform && rng.IntN(8) == 0 {
			s.Map = true
			e.Verdict = &Verdict{Kind: VerdictJump, Chain: "hep/eth0/in", Map: "m", Key: OIF}
		}
		s.Elements = append(s.Elements, e)
	}
	return s
}

func TestSetBinaryRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	blocks := 0
	for i := range 2000 {
		want := randomSet(rng)
		data, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want.blockKeyLen(); ok {
			blocks++
		}
		got := &Set{Elements: []Element{{From: "stale"}}, Map: true}
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("set %d read back differs:\nwant %+v\ngot  %+v", i, want, got)
		}
		// Every truncation of the bytes is an error, never a panic.
		for cut := range len(data) {
			if err := new(Set).UnmarshalBinary(data[:cut]); err == nil {
				t.Fatalf("set %d cut to %d of %d bytes read back without an error", i, cut, len(data))
			}
		}
	}
	if blocks < 500 {
		t.Errorf("only %d sets were written as a block", blocks)
	}
}

// TestSetBinaryIsCompact: 100,000 networks as a block, their keys read back
// as slices of one string.
func TestSetBinaryIsCompact(t *testing.T) {
	s := &Set{Name: "big", Type: TypeIPv4Addr, Interval: true}
	for i := range 100000 {
		s.Elements = append(s.Elements, PrefixElement(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 14), byte(i >> 6), byte(i << 2)}), 30)))
	}
	data, _ := s.MarshalBinary()
	if max := 100000*8 + 64; len(data) > max {
		t.Errorf("%d bytes, want at most %d", len(data), max)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if err := new(Set).UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Errorf("reading 100,000 elements back took %.0f allocations, want a handful", allocs)
	}
}

func FuzzSetUnmarshalBinary(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		data, _ := randomSet(rng).MarshalBinary()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Set
		if s.UnmarshalBinary(data) != nil {
			return
		}
		again, _ := s.MarshalBinary()
		var s2 Set
		if err := s2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("a set read from fuzz bytes does not round-trip: %v", err)
		}
	})
}
