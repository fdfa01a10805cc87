package ruleset

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// SetType is a set's key type as nft names it.
type SetType string

// Key types hostwall uses.
const (
	TypeIPv4Addr    SetType = "ipv4_addr"
	TypeIPv6Addr    SetType = "ipv6_addr"
	TypeInetService SetType = "inet_service"
	TypeIfName      SetType = "ifname"
	// Named ports: address, protocol and port of an endpoint's named port.
	TypeNamedPort4 SetType = "ipv4_addr . inet_proto . inet_service"
	TypeNamedPort6 SetType = "ipv6_addr . inet_proto . inet_service"
)

// KeyLen is the length in bytes of a key of the type.
func (t SetType) KeyLen() int {
	switch t {
	case TypeIPv4Addr:
		return 4
	case TypeIPv6Addr:
		return 16
	case TypeInetService:
		return 2
	case TypeIfName:
		return 16
	case TypeNamedPort4:
		return 4 + 4 + 4 // each field padded to the 4-byte register
	case TypeNamedPort6:
		return 16 + 4 + 4
	}
	return 0 // a type hostwall does not make; found in a live table only
}

// Set is a named set, or a verdict map when Map is true. Interval sets hold
// ranges; their elements are kept normalised (sorted, merged) by Normalize.
type Set struct {
	Name     string
	Type     SetType
	Interval bool
	Map      bool
	// Comment says, for people, what the set holds ("selector role == 'db'").
	// Desired sets only.
	Comment string
	// Owner names the configuration object that first needed the set. Desired
	// sets only.
	Owner    string
	Elements []Element
	// Timeout is set on a live set another program gave a default timeout
	// (hostwall's address sets carry the timeout flag, so the kernel takes
	// one): every element added to it from then on leaves it by itself.
	// Live sets only.
	Timeout bool
}

// Element is one set element. From and To are keys in the kernel's byte
// encoding (big-endian numbers, NUL-padded interface names), held as strings
// so elements compare with ==. For a non-interval set To equals From.
type Element struct {
	From, To string
	// Verdict is the element's value in a verdict map.
	Verdict *Verdict
	// Expires is set on a live element that carries a timeout: it leaves
	// the set by itself, with no transaction and no event. hostwall's
	// elements never do, so such an element is never the desired one (a
	// plan removes it and adds it again, without). Live elements only.
	Expires bool
}

// Key identifies an element regardless of its verdict.
func (e Element) Key() string { return e.From + "\x00" + e.To }

// CompareElements orders elements by key: From, then To. Normalize keeps
// sets in this order.
func CompareElements(a, b Element) int {
	if c := strings.Compare(a.From, b.From); c != 0 {
		return c
	}
	return strings.Compare(a.To, b.To)
}

// Equal reports whether two elements are the same, verdict included.
func (e Element) Equal(o Element) bool {
	if e.From != o.From || e.To != o.To || e.Expires != o.Expires || (e.Verdict == nil) != (o.Verdict == nil) {
		return false
	}
	return e.Verdict == nil || *e.Verdict == *o.Verdict
}

// SameShape reports whether two sets have the same name, type and flags, so one
// can become the other by changing elements only.
func (s *Set) SameShape(o *Set) bool {
	return s.Name == o.Name && s.Type == o.Type && s.Interval == o.Interval && s.Map == o.Map
}

// Normalize sorts the elements and, for interval sets, merges overlapping
// and adjacent ranges, as the kernel refuses overlapping intervals.
func (s *Set) Normalize() {
	if !s.Interval {
		slices.SortFunc(s.Elements, CompareElements)
		s.Elements = slices.CompactFunc(s.Elements, func(a, b Element) bool { return a.Key() == b.Key() })
		return
	}
	s.normalizeIntervals(nil)
}

// normalizeIntervals is Normalize of an interval set, counting the
// elements merged into merged when it is not nil (NormalizeCounting).
func (s *Set) normalizeIntervals(merged Merged) {
	slices.SortFunc(s.Elements, CompareElements)
	out := s.Elements[:0]
	n := uint32(0) // how many went into the last of out
	for _, e := range s.Elements {
		if last := len(out) - 1; last >= 0 && !after(e.From, out[last].To) {
			if e.To > out[last].To {
				out[last].To = e.To
			}
			if n++; merged != nil {
				merged[out[last].From] = n
			}
			continue
		}
		out = append(out, e)
		n = 1
	}
	s.Elements = out
}

// after reports whether key a starts beyond b+1, i.e. a range starting at a
// neither overlaps nor touches one ending at b.
func after(a, b string) bool {
	if len(b) > 32 {
		next, overflow := Increment(b)
		return !overflow && a > next
	}
	var buf [32]byte // keys are at most 24 bytes (address . protocol . port): no allocation
	next := buf[:len(b)]
	copy(next, b)
	for i := len(next) - 1; i >= 0; i-- {
		if next[i]++; next[i] != 0 {
			return a > string(next)
		}
	}
	return false // b+1 overflows: nothing starts beyond it
}

// Increment returns key+1 in big-endian arithmetic and whether it overflowed.
func Increment(key string) (string, bool) {
	b := []byte(key)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return string(b), false
		}
	}
	return string(b), true
}

// String renders the set in nft syntax.
func (s *Set) String() string { return string(s.appendTo(nil, "")) }

// appendTo appends the set as String renders it, each line after ind.
func (s *Set) appendTo(b []byte, ind string) []byte {
	kind := "set"
	if s.Map {
		kind = "map"
	}
	b = append(append(append(append(append(b, ind...), kind...), ' '), s.Name...), " {\n"...)
	b = append(append(append(b, ind...), "\ttype "...), s.Type...)
	if s.Map {
		b = append(b, " : verdict"...)
	}
	b = append(b, '\n')
	if s.Interval {
		b = append(append(b, ind...), "\tflags interval\n"...)
	}
	if len(s.Elements) > 0 {
		b = append(append(b, ind...), "\telements = { "...)
		b = append(s.appendElements(b), " }\n"...)
	}
	return append(append(b, ind...), '}')
}

// parallelElements is the size from which a set's elements are rendered
// on every core: a generation's rendering of a 100,000-network blocklist
// is written before its apply reaches the kernel.
const parallelElements = 20_000

// appendElements appends the elements, ", " between them: a large set's in
// parts rendered side by side, then joined in order.
func (s *Set) appendElements(b []byte) []byte {
	parts := min(runtime.GOMAXPROCS(0), len(s.Elements)/parallelElements)
	if parts < 2 {
		return s.appendRun(b, s.Elements)
	}
	out := make([][]byte, parts)
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := i*len(s.Elements)/parts, (i+1)*len(s.Elements)/parts
		wg.Go(func() { out[i] = s.appendRun(make([]byte, 0, 20*(hi-lo)), s.Elements[lo:hi]) })
	}
	wg.Wait()
	for i, part := range out {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, part...)
	}
	return b
}

// appendRun appends elems, ", " between them.
func (s *Set) appendRun(b []byte, elems []Element) []byte {
	for i, e := range elems {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = s.appendElement(b, e)
	}
	return b
}

// FormatElement renders one element as nft would: a CIDR when an address
// range is a prefix, "a-b" otherwise; `"eth0" : jump x` in verdict maps.
func (s *Set) FormatElement(e Element) string { return string(s.appendElement(nil, e)) }

// appendElement appends e as FormatElement writes it (Set.String writes
// 100k of them: no string per element).
func (s *Set) appendElement(b []byte, e Element) []byte {
	b = s.appendRange(b, e.From, e.To)
	if e.Expires {
		b = append(b, " (with a timeout)"...)
	}
	if e.Verdict != nil {
		b = append(append(b, " : "...), e.Verdict.String()...)
	}
	return b
}

func (s *Set) appendRange(b []byte, from, to string) []byte {
	switch s.Type {
	case TypeIPv4Addr:
		return appendRange4(b, binary.BigEndian.Uint32([]byte(from)), binary.BigEndian.Uint32([]byte(to)))
	case TypeIPv6Addr:
		a, _ := netip.AddrFromSlice([]byte(from))
		z, _ := netip.AddrFromSlice([]byte(to))
		if a == z {
			return a.AppendTo(b)
		}
		if p, ok := rangePrefix(a, z); ok {
			return p.AppendTo(b)
		}
		return z.AppendTo(append(a.AppendTo(b), '-'))
	case TypeIfName:
		return strconv.AppendQuote(b, strings.TrimRight(from, "\x00"))
	case TypeInetService:
		lo, hi := binary.BigEndian.Uint16([]byte(from)), binary.BigEndian.Uint16([]byte(to))
		return append(b, PortRange{lo, hi}.String()...)
	case TypeNamedPort4, TypeNamedPort6:
		n := len(from) - 8
		a, _ := netip.AddrFromSlice([]byte(from[:n]))
		return fmt.Appendf(b, "%s . %s . %d", a, ProtoName(from[n]), binary.BigEndian.Uint16([]byte(from[n+4:n+6])))
	default:
		if from == to {
			return fmt.Appendf(b, "0x%x", from)
		}
		return fmt.Appendf(b, "0x%x-0x%x", from, to)
	}
}

// appendRange4 is appendRange for IPv4 addresses, on integers: W1's table
// renders 100,000 of them for every generation.
func appendRange4(b []byte, a, z uint32) []byte {
	b = appendAddr4(b, a)
	switch size := uint64(z) - uint64(a) + 1; {
	case a == z:
		return b
	case size&(size-1) == 0 && uint64(a)&(size-1) == 0: // a CIDR
		return strconv.AppendInt(append(b, '/'), int64(32-bits.TrailingZeros64(size)), 10)
	default:
		return appendAddr4(append(b, '-'), z)
	}
}

func appendAddr4(b []byte, a uint32) []byte {
	for i := 24; i >= 0; i -= 8 {
		b = strconv.AppendUint(b, uint64(a>>i&0xff), 10)
		if i > 0 {
			b = append(b, '.')
		}
	}
	return b
}

// rangePrefix returns the prefix covering exactly [a, z], if there is one:
// a ends in h zero bits, z in h one bits, and the bits above are the same.
func rangePrefix(a, z netip.Addr) (netip.Prefix, bool) {
	x, y := a.AsSlice(), z.AsSlice()
	bits := len(x) * 8
	host := 0
	for host < bits {
		i, m := (bits-1-host)/8, byte(1)<<(host%8)
		if x[i]&m != 0 || y[i]&m == 0 {
			break
		}
		host++
	}
	p := netip.PrefixFrom(a, bits-host)
	if p.Masked() != netip.PrefixFrom(z, bits-host).Masked() {
		return netip.Prefix{}, false
	}
	return p, true
}

// PrefixElement is the interval element covering the prefix p.
func PrefixElement(p netip.Prefix) Element {
	p = p.Masked()
	// From and To share one allocation (compiling 100k networks).
	var buf [32]byte
	a := p.Addr().As16()
	n := 16
	if p.Addr().Is4() {
		n = 4
	}
	copy(buf[:], a[16-n:])
	copy(buf[n:], a[16-n:])
	to := buf[n : 2*n]
	host := p.Addr().BitLen() - p.Bits()
	for i := len(to) - 1; i >= 0 && host > 0; i-- {
		b := min(host, 8)
		to[i] |= byte(1<<b - 1)
		host -= b
	}
	both := string(buf[:2*n])
	return Element{From: both[:n], To: both[n:]}
}

// PortElement is the interval element covering r.
func PortElement(r PortRange) Element {
	return Element{From: string(binary.BigEndian.AppendUint16(nil, r.Lo)), To: string(binary.BigEndian.AppendUint16(nil, r.Hi))}
}

// NamedPortElement is the element for one named port of an endpoint: its
// address, protocol and port, each field padded to 4 bytes.
func NamedPortElement(a netip.Addr, proto uint8, port uint16) Element {
	k := append(a.AsSlice(), proto, 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, port)
	k = append(k, 0, 0)
	return Element{From: string(k), To: string(k)}
}

// IfNameKey is the kernel key of an interface name: NUL-padded to 16 bytes.
func IfNameKey(name string) string {
	k := make([]byte, 16)
	copy(k, name)
	return string(k)
}

// ElementChange is what one nftables transaction did to one set's
// elements: added them, or removed them.
type ElementChange struct {
	Set      string
	Removed  bool
	Elements []Element
}

// WithChange returns a copy of s with c applied, its elements kept in key
// order, and whether c fits s: an element added must be new to it, one
// removed must be in it exactly (the kernel allows nothing else, so a
// change that does not fit was not read right).
func (s *Set) WithChange(c ElementChange) (*Set, bool) {
	elems := s.Elements
	if !slices.IsSortedFunc(elems, CompareElements) {
		elems = slices.Clone(elems)
		slices.SortFunc(elems, CompareElements)
	}
	change := slices.Clone(c.Elements)
	slices.SortFunc(change, CompareElements)
	out := make([]Element, 0, len(elems)+len(change))
	i := 0
	for _, e := range change {
		j, found := slices.BinarySearchFunc(elems[i:], e, CompareElements)
		out = append(out, elems[i:i+j]...)
		i += j
		switch {
		case c.Removed && (!found || !elems[i].Equal(e)):
			return nil, false
		case c.Removed:
			i++ // dropped
		case found:
			return nil, false
		default:
			out = append(out, e)
		}
	}
	out = append(out, elems[i:]...)
	n := *s
	n.Elements = out
	return &n, true
}
