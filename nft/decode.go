package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/ruleset"
)

// decodeRule turns a kernel rule back into a ruleset.Rule. It recognises
// exactly the sequences encodeRule emits; anything else yields a rule with
// Undecoded set, which the planner treats as foreign.
func decodeRule(r *nftables.Rule) *ruleset.Rule {
	out := &ruleset.Rule{Handle: r.Handle}
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && strings.HasPrefix(c, ruleset.IDPrefix) {
		out.StoredID = strings.TrimPrefix(c, ruleset.IDPrefix)
	}
	d := &decoder{e: r.Exprs}
	for d.i < len(d.e) {
		if !d.step(out) {
			out.Matches, out.Counter, out.Limit, out.Log, out.Verdict = nil, false, nil, nil, ruleset.Verdict{}
			out.Undecoded = describe(r.Exprs)
			return out
		}
	}
	return out
}

type decoder struct {
	e []expr.Any
	i int
}

// at returns the expression i places ahead, or nil.
func (d *decoder) at(i int) expr.Any {
	if d.i+i < len(d.e) {
		return d.e[d.i+i]
	}
	return nil
}

// step decodes one match, statement or verdict into r.
func (d *decoder) step(r *ruleset.Rule) bool {
	switch e := d.at(0).(type) {
	case *expr.Meta:
		return d.meta(e, r)
	case *expr.Ct:
		return d.ctState(e, r)
	case *expr.Counter:
		r.Counter, r.Packets, r.Bytes = true, e.Packets, e.Bytes
		d.i++
		return true
	case *expr.Notrack:
		r.Notrack = true
		d.i++
		return true
	case *expr.Limit:
		// Only what encodeRule makes: packets a second, not "over".
		if e.Type != expr.LimitTypePkts || e.Over || e.Unit != expr.LimitTimeSecond || r.Log != nil || r.Limit != nil {
			return false
		}
		r.Limit = &ruleset.Limit{Rate: e.Rate, Burst: e.Burst}
		d.i++
		return true
	case *expr.Log:
		// The kernel reports a kernel-log statement's level, the default
		// (warn) when none was given; an NFLOG one's group.
		const prefix, group, level = 1 << unix.NFTA_LOG_PREFIX, 1 << unix.NFTA_LOG_GROUP, 1 << unix.NFTA_LOG_LEVEL
		switch {
		case r.Log != nil:
			return false
		case e.Key == prefix, e.Key == prefix|group:
		case e.Key == prefix|level && e.Level == expr.LogLevelWarning:
		default:
			return false // flags, snaplen, another level: not hostwall's
		}
		r.Log = &ruleset.Log{Prefix: string(bytes.TrimRight(e.Data, "\x00"))}
		if e.Key&group != 0 {
			g := e.Group
			r.Log.Group = &g
		}
		d.i++
		return true
	case *expr.Verdict:
		v, ok := decodeVerdict(e)
		r.Verdict = v
		d.i++
		return ok && d.i == len(d.e)
	}
	return false
}

func decodeVerdict(e *expr.Verdict) (ruleset.Verdict, bool) {
	switch e.Kind {
	case expr.VerdictAccept:
		return ruleset.Accept(), true
	case expr.VerdictDrop:
		return ruleset.Drop(), true
	case expr.VerdictReturn:
		return ruleset.Verdict{Kind: ruleset.VerdictReturn}, true
	case expr.VerdictJump:
		return ruleset.Jump(e.Chain), true
	case expr.VerdictGoto:
		return ruleset.Goto(e.Chain), true
	}
	return ruleset.Verdict{}, false
}

func (d *decoder) meta(m *expr.Meta, r *ruleset.Rule) bool {
	if m.SourceRegister || m.Register != 1 {
		return false
	}
	switch m.Key {
	case expr.MetaKeyMARK:
		return d.mark(r)
	case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
		dir := ruleset.IIF
		if m.Key == expr.MetaKeyOIFNAME {
			dir = ruleset.OIF
		}
		switch n := d.at(1).(type) {
		case *expr.Lookup: // iifname vmap @map
			if !n.IsDestRegSet || n.DestRegister != 0 || n.Invert || d.i+2 != len(d.e) {
				return false
			}
			r.Verdict = ruleset.VMap(dir, n.SetName)
			d.i += 2
			return true
		case *expr.Cmp:
			switch {
			case n.Op != expr.CmpOpEq || len(n.Data) == 0 || len(n.Data) > 16:
				return false
			case len(n.Data) == 16:
				r.Matches = append(r.Matches, ruleset.IfName{Dir: dir, Name: strings.TrimRight(string(n.Data), "\x00")})
			case bytes.IndexByte(n.Data, 0) >= 0:
				return false // not what hostwall writes
			default: // fewer bytes than the name's: a prefix
				r.Matches = append(r.Matches, ruleset.IfName{Dir: dir, Name: string(n.Data), Prefix: true})
			}
			d.i += 2
			return true
		}
	case expr.MetaKeyNFPROTO:
		c, ok := d.at(1).(*expr.Cmp)
		if !ok || c.Op != expr.CmpOpEq || len(c.Data) != 1 {
			return false
		}
		fam := ruleset.IPv4
		switch c.Data[0] {
		case unix.NFPROTO_IPV4:
		case unix.NFPROTO_IPV6:
			fam = ruleset.IPv6
		default:
			return false
		}
		if p, ok := d.at(2).(*expr.Payload); ok {
			if _, concat := d.at(3).(*expr.Meta); concat {
				return d.namedPort(fam, p, r)
			}
		}
		if p, ok := d.at(2).(*expr.Payload); ok {
			return d.addr(fam, p, r)
		}
		r.Matches = append(r.Matches, ruleset.NFProto{Family: fam})
		d.i += 2
		return true
	case expr.MetaKeyL4PROTO:
		c, ok := d.at(1).(*expr.Cmp)
		if !ok || len(c.Data) != 1 {
			return false
		}
		if c.Op == expr.CmpOpNeq {
			r.Matches = append(r.Matches, ruleset.L4Proto{Proto: c.Data[0], Negate: true})
			d.i += 2
			return true
		}
		if c.Op != expr.CmpOpEq {
			return false
		}
		if p, ok := d.at(2).(*expr.Payload); ok && p.Len == 1 && c.Data[0] == unix.IPPROTO_TCP {
			return d.tcpNotSYN(p, r)
		}
		if p, ok := d.at(2).(*expr.Payload); ok && p.Len == 1 {
			return d.icmpType(c.Data[0], p, r)
		}
		if p, ok := d.at(2).(*expr.Payload); ok {
			return d.port(c.Data[0], p, r)
		}
		r.Matches = append(r.Matches, ruleset.L4Proto{Proto: c.Data[0]})
		d.i += 2
		return true
	}
	return false
}

func (d *decoder) addr(fam ruleset.IPFamily, p *expr.Payload, r *ruleset.Rule) bool {
	l, ok := d.at(3).(*expr.Lookup)
	if !ok || p.Base != expr.PayloadBaseNetworkHeader || p.DestRegister != 1 || l.SourceRegister != 1 {
		return false
	}
	vmap := l.IsDestRegSet // ip saddr vmap @m: a sharded set's dispatch, the rule's end
	if vmap && (l.DestRegister != 0 || l.Invert || d.i+4 != len(d.e)) {
		return false
	}
	for _, dir := range []ruleset.Dir{ruleset.Src, ruleset.Dst} {
		if off, n := addrOffset(fam, dir); p.Offset == off && p.Len == n {
			if vmap {
				r.Verdict = ruleset.AddrVMap(fam, dir, l.SetName)
			} else {
				r.Matches = append(r.Matches, ruleset.Addr{Dir: dir, Family: fam, Set: l.SetName, Negate: l.Invert})
			}
			d.i += 4
			return true
		}
	}
	return false
}

func (d *decoder) icmpType(proto uint8, p *expr.Payload, r *ruleset.Rule) bool {
	c, ok := d.at(3).(*expr.Cmp)
	if !ok || p.Base != expr.PayloadBaseTransportHeader || p.Offset > 1 || p.DestRegister != 1 || len(c.Data) != 1 ||
		(c.Op != expr.CmpOpEq && c.Op != expr.CmpOpNeq) {
		return false
	}
	fam := ruleset.IPv4
	switch proto {
	case unix.IPPROTO_ICMP:
	case unix.IPPROTO_ICMPV6:
		fam = ruleset.IPv6
	default:
		return false
	}
	negate := c.Op == expr.CmpOpNeq
	if p.Offset == 0 {
		r.Matches = append(r.Matches, ruleset.ICMPType{Family: fam, Type: c.Data[0], Negate: negate})
	} else {
		r.Matches = append(r.Matches, ruleset.ICMPCode{Family: fam, Code: c.Data[0], Negate: negate})
	}
	d.i += 4
	return true
}

// tcpNotSYN decodes `tcp flags & syn == 0` after its protocol check.
func (d *decoder) tcpNotSYN(p *expr.Payload, r *ruleset.Rule) bool {
	b, ok1 := d.at(3).(*expr.Bitwise)
	c, ok2 := d.at(4).(*expr.Cmp)
	if !ok1 || !ok2 || p.Base != expr.PayloadBaseTransportHeader || p.Offset != tcpFlagsOffset || p.DestRegister != 1 ||
		!bytes.Equal(b.Mask, []byte{tcpSYN}) || !bytes.Equal(b.Xor, []byte{0}) || c.Op != expr.CmpOpEq || !bytes.Equal(c.Data, []byte{0}) {
		return false
	}
	r.Matches = append(r.Matches, ruleset.TCPNotSYN{})
	d.i += 5
	return true
}

// mark decodes `meta mark & mask == value` and `meta mark set meta mark &
// ^clear | set`.
func (d *decoder) mark(r *ruleset.Rule) bool {
	b, ok := d.at(1).(*expr.Bitwise)
	if !ok || len(b.Mask) != 4 || len(b.Xor) != 4 {
		return false
	}
	mask, xor := binaryutil.NativeEndian.Uint32(b.Mask), binaryutil.NativeEndian.Uint32(b.Xor)
	switch next := d.at(2).(type) {
	case *expr.Cmp:
		value := uint32(0)
		if len(next.Data) == 4 {
			value = binaryutil.NativeEndian.Uint32(next.Data)
		}
		if next.Op != expr.CmpOpEq || xor != 0 || len(next.Data) != 4 || value&^mask != 0 {
			return false
		}
		r.Matches = append(r.Matches, ruleset.Mark{Mask: mask, Value: value})
	case *expr.Meta:
		if next.Key != expr.MetaKeyMARK || !next.SourceRegister || mask&xor != 0 || (r.SetMark|r.ClearMark) != 0 || mask|xor == ^uint32(0) && xor == 0 {
			return false
		}
		r.SetMark, r.ClearMark = xor, ^(mask | xor)
	default:
		return false
	}
	d.i += 3
	return true
}

// regSlot maps a register number to its 4-byte slot: the kernel dumps a
// 32-bit register that starts a 128-bit one by the 128-bit number (32-bit
// register 12 comes back as register 2), so compare slots, not numbers.
func regSlot(r uint32) uint32 {
	if r <= 4 {
		return r * 4
	}
	return r - concatReg + 4
}

func (d *decoder) namedPort(fam ruleset.IPFamily, p *expr.Payload, r *ruleset.Rule) bool {
	m, ok1 := d.at(3).(*expr.Meta)
	tp, ok2 := d.at(4).(*expr.Payload)
	l, ok3 := d.at(5).(*expr.Lookup)
	if !ok1 || !ok2 || !ok3 || p.Base != expr.PayloadBaseNetworkHeader || regSlot(p.DestRegister) != regSlot(1) || m.Key != expr.MetaKeyL4PROTO ||
		m.SourceRegister || regSlot(m.Register) != regSlot(1)+p.Len/4 || tp.Base != expr.PayloadBaseTransportHeader || tp.Len != 2 ||
		regSlot(tp.DestRegister) != regSlot(m.Register)+1 || regSlot(l.SourceRegister) != regSlot(1) || l.IsDestRegSet {
		return false
	}
	for _, dir := range []ruleset.Dir{ruleset.Src, ruleset.Dst} {
		if off, n := addrOffset(fam, dir); p.Offset == off && p.Len == n && tp.Offset == portOffset(dir) {
			r.Matches = append(r.Matches, ruleset.NamedPort{Dir: dir, Family: fam, Set: l.SetName, Negate: l.Invert})
			d.i += 6
			return true
		}
	}
	return false
}

func (d *decoder) port(proto uint8, p *expr.Payload, r *ruleset.Rule) bool {
	if p.Base != expr.PayloadBaseTransportHeader || p.Len != 2 || p.DestRegister != 1 || p.Offset > 2 || p.Offset == 1 {
		return false
	}
	m := ruleset.Port{Proto: proto, Dir: ruleset.Dst}
	if p.Offset == 0 {
		m.Dir = ruleset.Src
	}
	switch v := d.at(3).(type) {
	case *expr.Lookup:
		if v.IsDestRegSet || v.SourceRegister != 1 {
			return false
		}
		m.Set, m.Negate = v.SetName, v.Invert
	case *expr.Cmp:
		if len(v.Data) != 2 || (v.Op != expr.CmpOpEq && v.Op != expr.CmpOpNeq) {
			return false
		}
		port := binary.BigEndian.Uint16(v.Data)
		m.Range, m.Negate = ruleset.PortRange{Lo: port, Hi: port}, v.Op == expr.CmpOpNeq
	case *expr.Range:
		if len(v.FromData) != 2 || len(v.ToData) != 2 || (v.Op != expr.CmpOpEq && v.Op != expr.CmpOpNeq) {
			return false
		}
		m.Range = ruleset.PortRange{Lo: binary.BigEndian.Uint16(v.FromData), Hi: binary.BigEndian.Uint16(v.ToData)}
		m.Negate = v.Op == expr.CmpOpNeq
	default:
		return false
	}
	r.Matches = append(r.Matches, m)
	d.i += 4
	return true
}

func (d *decoder) ctState(c *expr.Ct, r *ruleset.Rule) bool {
	b, ok1 := d.at(1).(*expr.Bitwise)
	z, ok2 := d.at(2).(*expr.Cmp)
	if c.Key != expr.CtKeySTATE || !ok1 || !ok2 || len(b.Mask) != 4 || z.Op != expr.CmpOpNeq || !bytes.Equal(z.Data, make([]byte, 4)) {
		return false
	}
	bits := binaryutil.NativeEndian.Uint32(b.Mask)
	var states []string
	for name, bit := range ruleset.CTStateBits {
		if bits&bit != 0 {
			states = append(states, name)
			bits &^= bit
		}
	}
	if bits != 0 || len(states) == 0 {
		return false
	}
	slices.Sort(states)
	r.Matches = append(r.Matches, ruleset.CTState{States: states})
	d.i += 3
	return true
}

// describe names the expressions of a rule hostwall cannot express.
func describe(es []expr.Any) string {
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr."))
	}
	return fmt.Sprintf("<rule not made by hostwall: %s>", strings.Join(names, " "))
}

// decodeElements turns kernel set elements back into normalised ruleset
// elements. The kernel returns interval elements in reverse order and as
// separate start and end elements (trap 5), and vmap data as raw verdict
// attributes that the library leaves undecoded.
func decodeElements(s *ruleset.Set, kes []nftables.SetElement) ([]ruleset.Element, error) {
	if !s.Interval {
		out := make([]ruleset.Element, 0, len(kes))
		for _, ke := range kes {
			e := ruleset.Element{From: string(ke.Key), To: string(ke.Key), Expires: expires(ke)}
			if s.Map {
				v, err := decodeElementVerdict(ke.Val)
				if err != nil {
					return nil, fmt.Errorf("element %q of map %q: %w", s.FormatElement(e), s.Name, err)
				}
				e.Verdict = &v
			}
			out = append(out, e)
		}
		slices.SortFunc(out, func(a, b ruleset.Element) int { return strings.Compare(a.From, b.From) })
		return out, nil
	}
	// By key, and at one key an interval's end before the next one's
	// start: adjacent intervals (hostwall merges its own, another program
	// may add them) share that key, and the dump gives the two in either
	// order.
	sorted := slices.Clone(kes)
	slices.SortStableFunc(sorted, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []ruleset.Element
	keyLen := s.Type.KeyLen()
	for i := 0; i < len(sorted); i++ {
		ke := sorted[i]
		if ke.IntervalEnd {
			continue // a leading end marker at 0, as nft may write
		}
		if len(ke.Key) != keyLen {
			return nil, fmt.Errorf("set %q holds a %d-byte key, want %d", s.Name, len(ke.Key), keyLen)
		}
		to := bytes.Repeat([]byte{0xff}, keyLen) // open to the top of the key space
		exp := expires(ke)
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			to = decrement(sorted[i+1].Key)
			exp = exp || expires(sorted[i+1])
			i++
		}
		e := ruleset.Element{From: string(ke.Key), To: string(to), Expires: exp}
		if s.Map { // a dispatch map: the verdict is the start's
			v, err := decodeElementVerdict(ke.Val)
			if err != nil {
				return nil, fmt.Errorf("element %q of map %q: %w", s.FormatElement(e), s.Name, err)
			}
			e.Verdict = &v
		}
		out = append(out, e)
	}
	return out, nil
}

// expires reports whether a kernel element carries a timeout (it leaves the
// set by itself).
func expires(ke nftables.SetElement) bool { return ke.Timeout != 0 || ke.Expires != 0 }

func decrement(key []byte) []byte {
	b := bytes.Clone(key)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]--
		if b[i] != 0xff {
			break
		}
	}
	return b
}

// decodeElementVerdict decodes NFTA_DATA_VERDICT { NFTA_VERDICT_CODE,
// NFTA_VERDICT_CHAIN } as the library hands it over for vmap elements.
func decodeElementVerdict(b []byte) (ruleset.Verdict, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ruleset.Verdict{}, err
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = int32(ad.Uint32())
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return ruleset.Verdict{}, err
	}
	v, ok := decodeVerdict(&expr.Verdict{Kind: expr.VerdictKind(code), Chain: chain})
	if !ok {
		// Not one hostwall writes (another program's `continue`, say): read
		// as what it is, so that the plan replaces the element. Failing
		// the read instead left such an element in place for good.
		return foreignVerdict(code), nil
	}
	return v, nil
}

// foreignVerdict names a verdict code hostwall does not write, as nft
// prints it.
func foreignVerdict(code int32) ruleset.Verdict {
	switch expr.VerdictKind(code) {
	case expr.VerdictContinue:
		return ruleset.Verdict{Kind: "continue"}
	case expr.VerdictBreak:
		return ruleset.Verdict{Kind: "break"}
	case expr.VerdictQueue:
		return ruleset.Verdict{Kind: "queue"}
	case expr.VerdictStolen:
		return ruleset.Verdict{Kind: "stolen"}
	}
	return ruleset.Verdict{Kind: ruleset.VerdictKind(fmt.Sprintf("verdict code %d", code))}
}
