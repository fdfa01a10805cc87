package observe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hostwall/hostwall/ruleset"
)

// Logged is one packet as the drop log (NFLOG) hands it over.
type Logged struct {
	Time   time.Time
	Prefix string
	// In and Out are the interfaces it came in by and was to leave by
	// ("" for none: a packet of this host has no In).
	In, Out string
	// Payload is the packet from its network header, perhaps cut short.
	Payload []byte
}

// Drop is a packet the ruleset dropped, in the configuration's terms.
type Drop struct {
	Time time.Time `json:"time"`
	// Endpoint is the host endpoint whose policies dropped it; Iface its
	// interface.
	Endpoint  string     `json:"endpoint,omitempty"`
	Iface     string     `json:"iface,omitempty"`
	Direction string     `json:"direction"`
	Packet    PacketInfo `json:"packet"`
	// Decided is what dropped it; nil when the prefix is not the
	// generation's (Prefix says what the kernel sent).
	Decided *ruleset.Origin `json:"decided,omitempty"`
	Prefix  string          `json:"prefix"`
	// Audit is set on a packet an endpoint in audit mode accepted that
	// Decided would have dropped.
	Audit bool `json:"audit,omitempty"`
	// Staged is set on a packet the staged view would drop (Decided, of
	// the staged view) that the enforced one allowed.
	Staged bool `json:"staged,omitempty"`
}

// PacketInfo is a packet's addresses and protocol.
type PacketInfo struct {
	Family   string     `json:"family"` // "ip" or "ip6"
	Proto    string     `json:"proto"`
	Src      netip.Addr `json:"src"`
	Dst      netip.Addr `json:"dst"`
	SPort    uint16     `json:"sport,omitempty"`
	DPort    uint16     `json:"dport,omitempty"`
	ICMPType *uint8     `json:"icmp_type,omitempty"`
	ICMPCode *uint8     `json:"icmp_code,omitempty"`
	// TCPFlags are the TCP flags in tcpdump's letters ("S", "SA", "R").
	TCPFlags string `json:"tcp_flags,omitempty"`
	// Fragment is set on a non-first fragment, which has no ports;
	// Truncated when the copy the kernel made ends before the ports (or
	// the ICMP type): they are unknown, not 0.
	Fragment  bool `json:"fragment,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
	Length    int  `json:"length"`
}

// Decode turns a logged packet into a drop, by x.
func (x *Index) Decode(l Logged) Drop {
	d := Drop{Time: l.Time, Prefix: l.Prefix, Packet: ParsePacket(l.Payload)}
	if o := x.Decider(l.Prefix); o != nil {
		d.Decided, d.Audit, d.Staged = o, o.Audit, o.Staged
		d.Direction = o.Direction
	}
	if d.Direction == "" { // not the generation's: by the hook's interfaces
		d.Direction = "ingress"
		if l.In == "" {
			d.Direction = "egress"
		}
	}
	d.Iface = l.In
	if strings.HasSuffix(d.Direction, "egress") {
		d.Iface = l.Out
	}
	if d.Decided != nil && d.Decided.Endpoint != "" {
		d.Endpoint = d.Decided.Endpoint
	} else if d.Iface != "" {
		d.Endpoint = x.Endpoint(d.Iface)
	}
	return d
}

// ParsePacket reads the addresses, protocol and ports of a packet from
// its network header. A packet cut short or malformed yields what could
// be read.
func ParsePacket(b []byte) PacketInfo {
	p := PacketInfo{Length: len(b)}
	if len(b) == 0 {
		return p
	}
	var proto uint8
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		p.Family = "ip"
		if len(b) < 20 {
			return p
		}
		ihl := int(b[0]&0x0f) * 4
		p.Length = int(binary.BigEndian.Uint16(b[2:4]))
		p.Src, _ = netip.AddrFromSlice(b[12:16])
		p.Dst, _ = netip.AddrFromSlice(b[16:20])
		proto = b[9]
		frag := binary.BigEndian.Uint16(b[6:8]) & 0x1fff
		p.Fragment = frag != 0
		if ihl >= 20 && ihl <= len(b) && !p.Fragment {
			l4 = b[ihl:]
		}
	case 6:
		p.Family = "ip6"
		if len(b) < 40 {
			return p
		}
		p.Length = 40 + int(binary.BigEndian.Uint16(b[4:6]))
		p.Src, _ = netip.AddrFromSlice(b[8:24])
		p.Dst, _ = netip.AddrFromSlice(b[24:40])
		proto, l4 = ipv6Upper(b[6], b[40:], &p.Fragment)
	default:
		return p
	}
	p.Proto = ProtoName(proto)
	switch proto {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite: ports first
		if len(l4) >= 4 {
			p.SPort, p.DPort = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		} else if !p.Fragment {
			p.Truncated = true
		}
		if proto == 6 && len(l4) >= 14 {
			p.TCPFlags = tcpFlags(l4[13])
		}
	case 1, 58: // ICMP, ICMPv6
		if len(l4) >= 2 {
			t, c := l4[0], l4[1]
			p.ICMPType, p.ICMPCode = &t, &c
		} else if !p.Fragment {
			p.Truncated = true
		}
	case 0, 43, 44, 60: // IPv6 extension headers past the walk or the copy
		p.Truncated = true
	}
	return p
}

// ipv6Upper walks the IPv6 extension headers from next header nh over b
// to the upper-layer protocol and its header (nil when a fragment that is
// not the first, or cut short).
func ipv6Upper(nh uint8, b []byte, frag *bool) (uint8, []byte) {
	for range 32 { // bounded: no chain of headers loops us
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return nh, nil
			}
			n := 8 + int(b[1])*8
			if n > len(b) {
				return b[0], nil
			}
			nh, b = b[0], b[n:]
		case 44: // fragment
			if len(b) < 8 {
				return nh, nil
			}
			if binary.BigEndian.Uint16(b[2:4])>>3 != 0 {
				*frag = true
				return b[0], nil
			}
			nh, b = b[0], b[8:]
		default:
			return nh, b
		}
	}
	return nh, nil
}

func tcpFlags(f byte) string {
	var b strings.Builder
	for i, c := range "FSRPAUEC" {
		if f&(1<<i) != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// ProtoName is the name of IP protocol p, or its number.
func ProtoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return fmt.Sprint(p)
}

// String is the drop on one line, as hostwall drops prints it.
func (d Drop) String() string {
	var b strings.Builder
	b.WriteString(d.Time.Format("15:04:05.000"))
	ep := d.Endpoint
	if ep == "" {
		ep = "-"
	}
	fmt.Fprintf(&b, " %s %s", ep, d.Direction)
	if d.Iface != "" {
		fmt.Fprintf(&b, " %s", d.Iface)
	}
	p := d.Packet
	fmt.Fprintf(&b, " %s %s", orDash(p.Proto), endpoint(p.Src, p.SPort, p.Proto, p.Truncated))
	fmt.Fprintf(&b, " > %s", endpoint(p.Dst, p.DPort, p.Proto, p.Truncated))
	if p.Truncated {
		b.WriteString(" (ports unknown: headers longer than the copy)")
	}
	if p.ICMPType != nil {
		fmt.Fprintf(&b, " type %d code %d", *p.ICMPType, *p.ICMPCode)
	}
	if p.TCPFlags != "" {
		fmt.Fprintf(&b, " [%s]", p.TCPFlags)
	}
	if d.Decided != nil {
		fmt.Fprintf(&b, ": %s", d.Decided)
	} else {
		fmt.Fprintf(&b, ": %q (not in the generation in force)", d.Prefix)
	}
	return b.String()
}

func endpoint(a netip.Addr, port uint16, proto string, truncated bool) string {
	if !a.IsValid() {
		return "?"
	}
	switch {
	case truncated:
		return a.String()
	case proto == "tcp", proto == "udp", proto == "sctp", proto == "udplite":
		return netip.AddrPortFrom(a, port).String()
	}
	return a.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
