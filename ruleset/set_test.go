package ruleset

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestRangePrefix: every range of the last 10 bits of an IPv4 address, and
// random IPv6 prefixes and near-prefixes, against counting: [a, z] is a
// prefix exactly when its size is a power of two and a is aligned to it.
func TestRangePrefix(t *testing.T) {
	base := uint32(192<<24 | 168<<16 | 4<<8)
	addr := func(n uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	for lo := uint32(0); lo < 1024; lo++ {
		for hi := lo; hi < 1024; hi++ {
			size := hi - lo + 1
			want := size&(size-1) == 0 && lo%size == 0
			p, ok := rangePrefix(addr(base+lo), addr(base+hi))
			if ok != want {
				t.Fatalf("[%v, %v]: prefix %v, want %v", addr(base+lo), addr(base+hi), ok, want)
			}
			if ok && (p.Addr() != addr(base+lo) || 1<<(32-p.Bits()) != size) {
				t.Fatalf("[%v, %v]: %v", addr(base+lo), addr(base+hi), p)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for range 10000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		p := netip.PrefixFrom(netip.AddrFrom16(b), 1+rng.IntN(127)).Masked()
		e := PrefixElement(p)
		a, _ := netip.AddrFromSlice([]byte(e.From))
		z, _ := netip.AddrFromSlice([]byte(e.To))
		if got, ok := rangePrefix(a, z); !ok || got != p {
			t.Fatalf("%v: got %v, %v", p, got, ok)
		}
		// One address more or less at either end is no prefix.
		if _, ok := rangePrefix(a.Next(), z); ok && p.Bits() < 127 { // a /127 less one is a /128
			t.Fatalf("%v without its first address is a prefix", p)
		}
		if n := z.Next(); n.IsValid() {
			if _, ok := rangePrefix(a, n); ok {
				t.Fatalf("%v and one more address is a prefix", p)
			}
		}
	}
}

// TestPrefixElement: the element of a prefix runs from its first address to
// its last, in the address's own length (4 bytes for IPv4, 16 for IPv6,
// IPv4-mapped included), against a bit-by-bit count.
func TestPrefixElement(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 20000 {
		var b [16]byte
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		var a netip.Addr
		switch i % 3 {
		case 0:
			a = netip.AddrFrom4([4]byte(b[:4]))
		case 1:
			a = netip.AddrFrom16(b)
		default:
			a = netip.AddrFrom16(netip.AddrFrom4([4]byte(b[:4])).As16()) // ::ffff:a.b.c.d
		}
		p := netip.PrefixFrom(a, rng.IntN(a.BitLen()+1))
		from := p.Masked().Addr().AsSlice()
		to := p.Addr().AsSlice()
		for bit := p.Bits(); bit < a.BitLen(); bit++ {
			to[bit/8] |= 0x80 >> (bit % 8)
		}
		e := PrefixElement(p)
		if e.From != string(from) || e.To != string(to) {
			t.Fatalf("%v: got [%x, %x], want [%x, %x]", p, e.From, e.To, from, to)
		}
	}
}

// TestAfter against Increment, at the carries and the top.
func TestAfter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	edge := []byte{0, 1, 0xfe, 0xff}
	key := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			if rng.IntN(2) == 0 {
				b[i] = edge[rng.IntN(len(edge))]
			} else {
				b[i] = byte(rng.IntN(256))
			}
		}
		return string(b)
	}
	for range 50000 {
		n := []int{2, 4, 16, 17, 24, 33}[rng.IntN(6)]
		a, b := key(n), key(n)
		if rng.IntN(4) == 0 {
			if next, overflow := Increment(b); !overflow {
				a = next // exactly touching
			}
		}
		next, overflow := Increment(b)
		if want := !overflow && a > next; after(a, b) != want {
			t.Fatalf("after(%x, %x) = %v, want %v", a, b, !want, want)
		}
	}
}

// TestAppendRange4: the IPv4 rendering on integers prints what the general
// one (netip, rangePrefix) prints, for every range of the last 10 bits and
// for random ranges across the whole space.
func TestAppendRange4(t *testing.T) {
	general := func(a, z uint32) string {
		x := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
		y := netip.AddrFrom4([4]byte{byte(z >> 24), byte(z >> 16), byte(z >> 8), byte(z)})
		if x == y {
			return x.String()
		}
		if p, ok := rangePrefix(x, y); ok {
			return p.String()
		}
		return x.String() + "-" + y.String()
	}
	check := func(a, z uint32) {
		if got, want := string(appendRange4(nil, a, z)), general(a, z); got != want {
			t.Fatalf("[%#x, %#x] renders as %q, want %q", a, z, got, want)
		}
	}
	base := uint32(10 << 24)
	for lo := uint32(0); lo < 1024; lo++ {
		for hi := lo; hi < 1024; hi++ {
			check(base+lo, base+hi)
		}
	}
	check(0, 0xffffffff)
	check(0xffffffff, 0xffffffff)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		a, z := rng.Uint32(), rng.Uint32()
		if a > z {
			a, z = z, a
		}
		check(a, z)
		bits := rng.IntN(33)
		lo := a &^ uint32(uint64(1)<<(32-bits)-1)
		check(lo, lo|uint32(uint64(1)<<(32-bits)-1))
	}
}

// TestLargeSetRenderedInParts: a set large enough to be rendered on every
// core renders as one rendered element by element does, in order.
func TestLargeSetRenderedInParts(t *testing.T) {
	for _, n := range []int{parallelElements - 1, 2 * parallelElements, 5*parallelElements + 3} {
		s := &Set{Name: "big", Type: TypeIPv4Addr, Interval: true}
		for i := range n {
			a := uint32(10<<24 | i*8)
			s.Elements = append(s.Elements, Element{From: string(binary.BigEndian.AppendUint32(nil, a)), To: string(binary.BigEndian.AppendUint32(nil, a+3+uint32(i%2)))})
		}
		want := "elements = { " + string(s.appendRun(nil, s.Elements)) + " }"
		if got := s.String(); !strings.Contains(got, want) {
			t.Errorf("%d elements: the rendering differs from the elements rendered one by one", n)
		}
	}
}

// TestWithChange holds WithChange (a merge of sorted lists) to its
// definition: a set of elements, added to or taken from, then sorted; and
// refusing what the kernel would refuse.
func TestWithChange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	el := func(i int) Element { return Element{From: string(rune('a' + i)), To: string(rune('a' + i))} }
	for range 3000 {
		have := map[int]bool{}
		s := &Set{Name: "s"}
		for i := range 12 {
			if r.IntN(2) == 0 {
				have[i] = true
				s.Elements = append(s.Elements, el(i))
			}
		}
		c := ElementChange{Set: "s", Removed: r.IntN(2) == 0}
		fits := true
		picked := map[int]bool{}
		for range r.IntN(5) {
			i := r.IntN(12)
			if picked[i] {
				continue
			}
			picked[i] = true
			c.Elements = append(c.Elements, el(i))
			fits = fits && have[i] == c.Removed
			have[i] = !c.Removed
		}
		got, ok := s.WithChange(c)
		if ok != fits {
			t.Fatalf("%+v with %+v: fits=%v, want %v", s.Elements, c, ok, fits)
		}
		if !ok {
			continue
		}
		var want []Element
		for i := range 12 {
			if have[i] {
				want = append(want, el(i))
			}
		}
		if !slices.EqualFunc(got.Elements, want, Element.Equal) {
			t.Fatalf("%+v with %+v = %+v, want %+v", s.Elements, c, got.Elements, want)
		}
	}
}
