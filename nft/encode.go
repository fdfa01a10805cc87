package nft

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/ruleset"
)

// Each Match kind encodes to a self-contained expression sequence (address
// and port matches carry their own family or protocol check), so decode can
// recognise them one by one. Everything uses register 1.

// concatReg is NFT_REG32_00, the first 32-bit register (aliased by
// register 1).
const concatReg = 8

func nfproto(f ruleset.IPFamily) byte {
	if f == ruleset.IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

func ifnameBytes(name string) []byte { return []byte(ruleset.IfNameKey(name)) }

// addrOffset is the network-header offset and length of an address.
func addrOffset(f ruleset.IPFamily, d ruleset.Dir) (off, n uint32) {
	switch {
	case f == ruleset.IPv4 && d == ruleset.Src:
		return 12, 4
	case f == ruleset.IPv4:
		return 16, 4
	case d == ruleset.Src:
		return 8, 16
	default:
		return 24, 16
	}
}

// The TCP header's flags byte, and its SYN bit.
const (
	tcpFlagsOffset = 13
	tcpSYN         = 0x02
)

// ifnameKey is the meta key of an interface name match or map lookup.
func ifnameKey(d ruleset.IfDir) expr.MetaKey {
	if d == ruleset.OIF {
		return expr.MetaKeyOIFNAME
	}
	return expr.MetaKeyIIFNAME
}

func portOffset(d ruleset.Dir) uint32 {
	if d == ruleset.Src {
		return 0
	}
	return 2
}

func cmpOp(negate bool) expr.CmpOp {
	if negate {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func encodeMatch(m ruleset.Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case ruleset.NFProto:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(m.Family)}},
		}, nil
	case ruleset.L4Proto:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: cmpOp(m.Negate), Register: 1, Data: []byte{m.Proto}},
		}, nil
	case ruleset.IfName:
		data := ifnameBytes(m.Name)
		if m.Prefix {
			// nft's "cali*": the name's bytes without the NUL, so the
			// comparison covers only them.
			if m.Name == "" || len(m.Name) > 15 {
				return nil, fmt.Errorf("interface prefix %q is not 1-15 bytes", m.Name)
			}
			data = []byte(m.Name)
		}
		return []expr.Any{
			&expr.Meta{Key: ifnameKey(m.Dir), Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
		}, nil
	case ruleset.CTState:
		var bits uint32
		for _, s := range m.States {
			b, ok := ruleset.CTStateBits[s]
			if !ok {
				return nil, fmt.Errorf("unknown ct state %q", s)
			}
			bits |= b
		}
		return []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		}, nil
	case ruleset.Addr:
		off, n := addrOffset(m.Family, m.Dir)
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(m.Family)}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: m.Set, Invert: m.Negate},
		}, nil
	case ruleset.NamedPort:
		// Address, protocol and port concatenated as nft lays them out: the
		// address in register 1 (the 128-bit alias of 32-bit registers 8-11),
		// then the protocol and the port in the 32-bit registers after it.
		off, n := addrOffset(m.Family, m.Dir)
		proto := concatReg + n/4
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(m.Family)}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: proto},
			&expr.Payload{DestRegister: proto + 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.Dir), Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: m.Set, Invert: m.Negate},
		}, nil
	case ruleset.Mark:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(m.Mask), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(m.Value)},
		}, nil
	case ruleset.TCPNotSYN:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
		}, nil
	case ruleset.ICMPType:
		return icmpField(m.Family, 0, m.Type, m.Negate), nil
	case ruleset.ICMPCode:
		return icmpField(m.Family, 1, m.Code, m.Negate), nil
	case ruleset.Port:
		out := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{m.Proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.Dir), Len: 2},
		}
		lo, hi := binary.BigEndian.AppendUint16(nil, m.Range.Lo), binary.BigEndian.AppendUint16(nil, m.Range.Hi)
		switch {
		case m.Set != "":
			out = append(out, &expr.Lookup{SourceRegister: 1, SetName: m.Set, Invert: m.Negate})
		case m.Range.Lo == m.Range.Hi:
			out = append(out, &expr.Cmp{Op: cmpOp(m.Negate), Register: 1, Data: lo})
		default:
			out = append(out, &expr.Range{Op: cmpOp(m.Negate), Register: 1, FromData: lo, ToData: hi})
		}
		return out, nil
	}
	return nil, fmt.Errorf("no encoding for match %T", m)
}

// icmpField matches the ICMP(v6) header byte at offset (0 type, 1 code).
func icmpField(f ruleset.IPFamily, offset uint32, v uint8, negate bool) []expr.Any {
	proto := byte(unix.IPPROTO_ICMP)
	if f == ruleset.IPv6 {
		proto = unix.IPPROTO_ICMPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 1},
		&expr.Cmp{Op: cmpOp(negate), Register: 1, Data: []byte{v}},
	}
}

func encodeVerdict(v ruleset.Verdict) ([]expr.Any, error) {
	switch v.Kind {
	case ruleset.VerdictNone:
		return nil, nil
	case ruleset.VerdictAccept:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}, nil
	case ruleset.VerdictDrop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}, nil
	case ruleset.VerdictReturn:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}, nil
	case ruleset.VerdictJump:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}}, nil
	case ruleset.VerdictGoto:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}}, nil
	case ruleset.VerdictVMap:
		if v.Family != "" { // ip saddr vmap @m: the family check, the address, the map
			off, n := addrOffset(v.Family, v.Dir)
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(v.Family)}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Lookup{SourceRegister: 1, SetName: v.Map, IsDestRegSet: true, DestRegister: 0},
			}, nil
		}
		return []expr.Any{
			&expr.Meta{Key: ifnameKey(v.Key), Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: v.Map, IsDestRegSet: true, DestRegister: 0},
		}, nil
	}
	return nil, fmt.Errorf("no encoding for verdict %q", v.Kind)
}

// encodeRule returns the expressions of r.
func encodeRule(r *ruleset.Rule) ([]expr.Any, error) {
	var out []expr.Any
	for _, m := range r.Matches {
		e, err := encodeMatch(m)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	if r.Counter {
		out = append(out, &expr.Counter{})
	}
	if l := r.Limit; l != nil {
		out = append(out, &expr.Limit{Type: expr.LimitTypePkts, Rate: l.Rate, Unit: expr.LimitTimeSecond, Burst: l.Burst})
	}
	if r.Log != nil {
		lg := &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(r.Log.Prefix)}
		if g := r.Log.Group; g != nil {
			lg.Key |= 1 << unix.NFTA_LOG_GROUP
			lg.Group = *g
		}
		out = append(out, lg)
	}
	if r.SetMark != 0 || r.ClearMark != 0 {
		// meta mark set meta mark & ^clear | set: (mark & ^(clear|set)) ^ set.
		out = append(out,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^(r.ClearMark | r.SetMark)), Xor: binaryutil.NativeEndian.PutUint32(r.SetMark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.Notrack {
		out = append(out, &expr.Notrack{})
	}
	v, err := encodeVerdict(r.Verdict)
	if err != nil {
		return nil, err
	}
	return append(out, v...), nil
}

var setKeyTypes = map[ruleset.SetType]nftables.SetDatatype{
	ruleset.TypeIPv4Addr:    nftables.TypeIPAddr,
	ruleset.TypeIPv6Addr:    nftables.TypeIP6Addr,
	ruleset.TypeInetService: nftables.TypeInetService,
	ruleset.TypeIfName:      nftables.TypeIFName,
	ruleset.TypeNamedPort4:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
	ruleset.TypeNamedPort6:  nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService),
}

// maxSetComment is the longest set comment the kernel takes (trap 12): a
// set's user data (NFTA_SET_USERDATA) holds at most 256 bytes
// (NFT_USERDATA_MAXLEN), of which the key byte order takes 6 and the
// comment's own type, length and NUL 3. Past that the kernel refuses the
// set with ERANGE, failing the whole batch; past 254 bytes the library's
// one-byte length also wraps.
const maxSetComment = 247

// setComment shortens a comment to what the kernel takes, cutting on a
// character boundary and marking the cut. The planner does not compare
// set comments, so the shortened one read back is no drift.
func setComment(c string) string {
	if len(c) <= maxSetComment {
		return c
	}
	cut := maxSetComment - len("…")
	for cut > 0 && !utf8.RuneStart(c[cut]) {
		cut--
	}
	return c[:cut] + "…"
}

// encodeSet returns the library's description of s (without elements).
func encodeSet(t *nftables.Table, s *ruleset.Set) *nftables.Set {
	ns := &nftables.Set{
		Table:    t,
		Name:     s.Name,
		KeyType:  setKeyTypes[s.Type],
		Interval: s.Interval,
		IsMap:    s.Map,
		Comment:  setComment(s.Comment),
		// No element is given a timeout: the flag is for the gc-interval
		// (gcinterval.go).
		HasTimeout: longGC(s),
	}
	if s.Type == ruleset.TypeIfName {
		// Interface names are strings in host byte order for nft; without
		// this `nft list` prints the keys as "" (trap 7).
		ns.KeyByteOrder = binaryutil.NativeEndian
	}
	if s.Map {
		ns.DataType = nftables.TypeVerdict
	}
	if s.Type == ruleset.TypeNamedPort4 || s.Type == ruleset.TypeNamedPort6 {
		ns.Concatenation, ns.KeyByteOrder = true, binaryutil.BigEndian
	}
	return ns
}

// encodeElements returns the kernel elements of e: for intervals, the start
// key and the end key one past the range (omitted when the range reaches the
// top of the key space).
func encodeElements(s *ruleset.Set, elems []ruleset.Element) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(elems))
	for _, e := range elems {
		el := nftables.SetElement{Key: []byte(e.From)}
		if e.Verdict != nil {
			el.VerdictData = encodeElementVerdict(*e.Verdict)
		}
		out = append(out, el)
		if s.Interval {
			if end, overflow := ruleset.Increment(e.To); !overflow {
				out = append(out, nftables.SetElement{Key: []byte(end), IntervalEnd: true})
			}
		}
	}
	return out
}

func encodeElementVerdict(v ruleset.Verdict) *expr.Verdict {
	switch v.Kind {
	case ruleset.VerdictJump:
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}
	case ruleset.VerdictGoto:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}
	case ruleset.VerdictDrop:
		return &expr.Verdict{Kind: expr.VerdictDrop}
	default:
		return &expr.Verdict{Kind: expr.VerdictAccept}
	}
}
