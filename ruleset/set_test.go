package ruleset

import (
	"math/rand/v2"
	"net/netip"
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
