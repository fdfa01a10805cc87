package ruleset

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Match is one condition of a Rule. Only this package defines Match kinds, so
// every consumer (the netlink encoder and decoder, the fake, the renderer) can
// switch over them exhaustively.
type Match interface {
	// String is the canonical nft syntax; plans show it and rule IDs hash it.
	String() string
	match()
}

// IPFamily is an IP version as nft names it.
type IPFamily string

// IP families.
const (
	IPv4 IPFamily = "ipv4"
	IPv6 IPFamily = "ipv6"
)

// Prefix is the payload keyword of the family ("ip" or "ip6").
func (f IPFamily) Prefix() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// NamedPortType is the set key type of named ports of the family.
func (f IPFamily) NamedPortType() SetType {
	if f == IPv6 {
		return TypeNamedPort6
	}
	return TypeNamedPort4
}

// AddrType is the set key type holding addresses of the family.
func (f IPFamily) AddrType() SetType {
	if f == IPv6 {
		return TypeIPv6Addr
	}
	return TypeIPv4Addr
}

// IfDir names which interface of a packet a match looks at.
type IfDir string

// Interface directions.
const (
	IIF IfDir = "iifname"
	OIF IfDir = "oifname"
)

// Dir is the side of a packet an address or port match looks at.
type Dir string

// Packet sides.
const (
	Src Dir = "s"
	Dst Dir = "d"
)

// NFProto matches the packet's IP family: "meta nfproto ipv4".
type NFProto struct{ Family IPFamily }

// L4Proto matches the transport protocol: "meta l4proto tcp", or
// "meta l4proto != tcp" when negated.
type L4Proto struct {
	Proto  uint8
	Negate bool
}

// IfName matches the input or output interface name exactly, or, with
// Prefix, every name that starts with Name (nft's "cali*").
type IfName struct {
	Dir    IfDir
	Name   string
	Prefix bool
}

// CTState matches connection-tracking states, any of States.
type CTState struct{ States []string }

// Addr matches the source or destination address against a named set of the
// given family. It implies the family check.
type Addr struct {
	Dir    Dir
	Family IPFamily
	Set    string
	Negate bool
}

// Port matches the source or destination port of Proto, either against a
// named set (Set) or against one range (Range). It implies the protocol check.
type Port struct {
	Proto  uint8
	Dir    Dir
	Set    string
	Range  PortRange
	Negate bool
}

// ICMPType matches the ICMP (IPv4) or ICMPv6 (IPv6) message type. It
// implies the protocol check.
type ICMPType struct {
	Family IPFamily
	Type   uint8
	Negate bool
}

// ICMPCode matches the ICMP or ICMPv6 code. It implies the protocol check.
type ICMPCode struct {
	Family IPFamily
	Code   uint8
	Negate bool
}

// NamedPort matches the address, protocol and port of one side of the
// packet together against a set of named ports (TypeNamedPort4/6). It
// implies the family check.
type NamedPort struct {
	Dir    Dir
	Family IPFamily
	Set    string
	Negate bool
}

// Mark matches packets whose mark, masked by Mask, is Value: Mask ==
// Value tests that bits are set, Value 0 that they are clear.
type Mark struct{ Mask, Value uint32 }

// TCPNotSYN matches TCP segments without the SYN flag: a segment of a
// connection that is under way, never one that opens a connection. It
// implies the protocol check.
type TCPNotSYN struct{}

// PortRange is an inclusive range of ports; Lo == Hi for one port.
type PortRange struct{ Lo, Hi uint16 }

func (NFProto) match()   {}
func (L4Proto) match()   {}
func (IfName) match()    {}
func (CTState) match()   {}
func (Addr) match()      {}
func (Port) match()      {}
func (ICMPType) match()  {}
func (ICMPCode) match()  {}
func (NamedPort) match() {}
func (Mark) match()      {}
func (TCPNotSYN) match() {}

func (TCPNotSYN) String() string { return "tcp flags ! syn" }

func (m Mark) String() string { return fmt.Sprintf("meta mark & 0x%08x == 0x%08x", m.Mask, m.Value) }

func (m NamedPort) String() string {
	return fmt.Sprintf("%s %saddr . meta l4proto . th %sport %s@%s", m.Family.Prefix(), m.Dir, m.Dir, neg(m.Negate), m.Set)
}

func (m NFProto) String() string { return "meta nfproto " + string(m.Family) }
func (m L4Proto) String() string { return "meta l4proto " + neg(m.Negate) + ProtoName(m.Proto) }
func (m IfName) String() string {
	if m.Prefix {
		return fmt.Sprintf("%s %q", m.Dir, m.Name+"*")
	}
	return fmt.Sprintf("%s %q", m.Dir, m.Name)
}

func (m CTState) String() string {
	s := slices.Clone(m.States)
	slices.SortFunc(s, func(a, b string) int { return ctStateOrder[a] - ctStateOrder[b] })
	return "ct state " + strings.Join(s, ",")
}

// Addr and Port concatenate rather than format: every plan hashes the
// text of every rule (Rule.ID).

func (m Addr) String() string {
	return m.Family.Prefix() + " " + string(m.Dir) + "addr " + neg(m.Negate) + "@" + m.Set
}

func (m Port) String() string {
	val := "@" + m.Set
	if m.Set == "" {
		val = m.Range.String()
	}
	return ProtoName(m.Proto) + " " + string(m.Dir) + "port " + neg(m.Negate) + val
}

func (m ICMPType) String() string {
	names, kw := icmpNames, "icmp"
	if m.Family == IPv6 {
		names, kw = icmpv6Names, "icmpv6"
	}
	return kw + " type " + neg(m.Negate) + name(names, m.Type)
}

func (m ICMPCode) String() string {
	names, kw := icmpCodeNames, "icmp"
	if m.Family == IPv6 {
		names, kw = icmpv6CodeNames, "icmpv6"
	}
	return kw + " code " + neg(m.Negate) + name(names, m.Code)
}

func name(names map[uint8]string, v uint8) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprint(v)
}

// ICMP and ICMPv6 type names as nft prints them.
var (
	icmpNames = map[uint8]string{0: "echo-reply", 3: "destination-unreachable", 5: "redirect", 8: "echo-request",
		9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem"}
	icmpv6Names = map[uint8]string{1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
		4: "parameter-problem", 128: "echo-request", 129: "echo-reply", 130: "mld-listener-query",
		131: "mld-listener-report", 132: "mld-listener-done", 133: "nd-router-solicit",
		134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert", 137: "nd-redirect"}
	icmpCodeNames = map[uint8]string{0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable",
		4: "frag-needed", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
	icmpv6CodeNames = map[uint8]string{0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable", 4: "port-unreachable",
		5: "policy-fail", 6: "reject-route"}
)

// ICMPv6 neighbour-discovery message types.
var NeighborDiscoveryTypes = []uint8{133, 134, 135, 136}

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

func neg(b bool) string {
	if b {
		return "!= "
	}
	return ""
}

// Connection-tracking state names, in the order nft prints them, with their
// bit in the kernel's ct state bitmask.
var (
	ctStateOrder = map[string]int{"invalid": 0, "established": 1, "related": 2, "new": 3, "untracked": 4}
	CTStateBits  = map[string]uint32{"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
)

// Protocol numbers and the names nft prints for them (Debian's
// /etc/protocols). The table is fixed, not read from the host, because rule
// IDs hash this text and must not differ between hosts; other numbers print
// as numbers.
var protoNames = map[uint8]string{
	1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
	58: "ipv6-icmp", 89: "ospf", 94: "ipip", 103: "pim", 112: "vrrp", 115: "l2tp", 132: "sctp", 136: "udplite",
}

// ProtoName is the name nft prints for an IP protocol number, or the number.
func ProtoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}
