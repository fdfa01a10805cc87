package explain

import (
	"net/netip"
	"slices"

	"github.com/hostwall/hostwall/config"
)

// matches reports whether rule r matches packet p.
// matches reports whether packet p matches rule r; domains, for an
// egress allow rule, counts the domain names of the network sets its
// destination selector matches (as in Calico).
func (e *evaluator) matches(r *config.Rule, p Packet, domains bool) bool {
	if r.Source.MatchesNothing() || r.Destination.MatchesNothing() {
		return false // domain names without an address
	}
	v6 := p.Src.Is6()
	if !appliesToFamily(r, v6) {
		return false
	}
	if r.Protocol != nil && r.Protocol.Number != p.Proto {
		return false
	}
	if r.NotProtocol != nil && r.NotProtocol.Number == p.Proto {
		return false
	}
	if !e.side(r, r.Source, p.Src, p.SPort, p.Proto, false) || !e.side(r, r.Destination, p.Dst, p.DPort, p.Proto, domains) {
		return false
	}
	if r.ICMP != nil && !icmpIs(r.ICMP, p) {
		return false
	}
	if r.NotICMP != nil && icmpIs(r.NotICMP, p) {
		return false
	}
	return true
}

// appliesToFamily: a rule is for one IP version when its networks, its
// ip_version or its ICMP protocol say so (Calico infers the version the same
// way); every list of networks must hold one of the packet's family.
func appliesToFamily(r *config.Rule, v6 bool) bool {
	want := 4
	if v6 {
		want = 6
	}
	if r.IPVersion != 0 && r.IPVersion != want {
		return false
	}
	if r.Protocol != nil {
		switch r.Protocol.Number {
		case config.ProtoICMP:
			if v6 {
				return false
			}
		case config.ProtoICMPv6:
			if !v6 {
				return false
			}
		}
	}
	for _, list := range [][]netip.Prefix{r.Source.Nets, r.Source.NotNets, r.Destination.Nets, r.Destination.NotNets} {
		if len(list) == 0 {
			continue
		}
		found := false
		for _, n := range list {
			found = found || n.Addr().Is6() == v6
		}
		if !found {
			return false
		}
	}
	return true
}

func (e *evaluator) side(r *config.Rule, s config.Entity, addr netip.Addr, port uint16, proto uint8, domains bool) bool {
	if len(s.Nets) > 0 && !inAny(s.Nets, addr) {
		return false
	}
	if len(s.NotNets) > 0 && inAny(s.NotNets, addr) {
		return false
	}
	if s.Selector != nil && !inAny(e.selected(s.Selector, domains), addr) {
		return false
	}
	if s.NotSelector != nil && inAny(e.selected(s.NotSelector, false), addr) {
		return false
	}
	// Port numbers and port names are alternatives; a name matches the
	// address, protocol and port of a named port together.
	numbered := hasPorts(proto) && inPorts(s.Ports, port)
	named := e.namedPort(r, s, s.NamedPorts, addr, proto, port)
	if len(s.Ports)+len(s.NamedPorts) > 0 && !numbered && !named {
		return false
	}
	if len(s.NotPorts) > 0 && (!hasPorts(proto) || inPorts(s.NotPorts, port)) {
		return false
	}
	if len(s.NotNamedPorts) > 0 && e.namedPort(r, s, s.NotNamedPorts, addr, proto, port) {
		return false
	}
	return true
}

// namedPort reports whether (addr, proto, port) is one of the named ports
// called names of an endpoint the side's selector matches (any endpoint
// without one), on one of its expected IPs, of the rule's protocol if set.
func (e *evaluator) namedPort(r *config.Rule, s config.Entity, names []string, addr netip.Addr, proto uint8, port uint16) bool {
	for _, h := range e.cfg.Endpoints {
		if s.Selector != nil && !s.Selector.Matches(e.labels(h)) {
			continue
		}
		for _, np := range h.Ports {
			if !slices.Contains(names, np.Name) || np.Protocol != proto || np.Port != port || (r.Protocol != nil && r.Protocol.Number != np.Protocol) {
				continue
			}
			if slices.Contains(h.ExpectedIPs, addr) {
				return true
			}
		}
	}
	return false
}

// selected returns every address a rule selector names: the nets of
// matching network sets and the expected IPs of matching host endpoints of
// any node.
func (e *evaluator) selected(sel *config.Selector, domains bool) []netip.Prefix {
	var out []netip.Prefix
	for _, ns := range e.cfg.NetworkSets {
		if sel.Matches(ns.Labels) {
			out = append(out, ns.Nets...)
			if domains {
				out = append(out, ns.DomainNets...)
			}
		}
	}
	for _, h := range e.cfg.Endpoints {
		if sel.Matches(e.labels(h)) {
			for _, a := range h.ExpectedIPs {
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	return out
}

func inAny(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func inPorts(ports []config.PortRange, p uint16) bool {
	for _, r := range ports {
		if r.Lo <= p && p <= r.Hi {
			return true
		}
	}
	return false
}

func icmpIs(m *config.ICMPMatch, p Packet) bool {
	if p.Proto != config.ProtoICMP && p.Proto != config.ProtoICMPv6 {
		return false
	}
	if p.ICMPType != int(m.Type) {
		return false
	}
	return m.Code == nil || p.ICMPCode == int(*m.Code)
}
