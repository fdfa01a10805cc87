package config

import (
	"net/netip"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// Config is one whole configuration: every file of the config directory.
type Config struct {
	Host        *Host // nil when no file declares a host block
	Endpoints   []*HostEndpoint
	NetworkSets []*NetworkSet
	Policies    []*Policy
	Failsafe    Failsafe
}

// Host is this host's identity.
type Host struct {
	Name      string // empty: the running host's name
	Labels    map[string]string
	DeclRange hcl.Range
}

// HostEndpoint puts an interface under hostwall's protection.
type HostEndpoint struct {
	Name      string
	Interface string
	// Node is the host the endpoint belongs to; empty means whichever host
	// loads the file.
	Node        string
	Labels      map[string]string
	ExpectedIPs []netip.Addr
	DeclRange   hcl.Range
}

// NetworkSet is a labelled list of networks that rule selectors can match.
type NetworkSet struct {
	Name      string
	Labels    map[string]string
	Nets      []netip.Prefix
	DeclRange hcl.Range
}

// Direction is ingress or egress.
type Direction string

// Directions of traffic relative to the host endpoint.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Policy is an ordered list of rules applying to the endpoints its selector
// matches.
type Policy struct {
	Name     string
	Selector *Selector // never nil: an absent selector is all()
	// Order sorts policies, lowest first; nil sorts after every number.
	Order     *float64
	Ingress   []*Rule
	Egress    []*Rule
	Types     []Direction
	DeclRange hcl.Range
}

// Applies reports whether the policy governs traffic in direction d.
func (p *Policy) Applies(d Direction) bool {
	for _, t := range p.Types {
		if t == d {
			return true
		}
	}
	return false
}

// Rules returns the policy's rules for direction d.
func (p *Policy) Rules(d Direction) []*Rule {
	if d == Egress {
		return p.Egress
	}
	return p.Ingress
}

// SortPolicies orders policies as they are evaluated: by Order (unset last),
// then by name.
func SortPolicies(ps []*Policy) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		switch {
		case a.Order != nil && b.Order != nil && *a.Order != *b.Order:
			return *a.Order < *b.Order
		case (a.Order == nil) != (b.Order == nil):
			return a.Order != nil
		}
		return a.Name < b.Name
	})
}

// Action is what a rule does with a matching packet.
type Action string

// Rule actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
	Log   Action = "log"
)

// Rule is one ingress or egress rule of a policy.
type Rule struct {
	Action      Action
	Protocol    *Protocol // nil: any protocol
	Source      Entity
	Destination Entity
	DeclRange   hcl.Range
}

// Entity is the source or destination side of a rule. Every given field must
// match.
type Entity struct {
	Nets          []netip.Prefix
	Ports         []PortRange
	Selector      *Selector // nil: no selector
	SelectorRange hcl.Range
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Protocol is an IP protocol.
type Protocol struct {
	Number uint8
	Name   string // as written
}

// HasPorts reports whether the protocol carries ports.
func (p *Protocol) HasPorts() bool {
	switch p.Number {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoUDPLite:
		return true
	}
	return false
}

// IP protocol numbers hostwall knows by name.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// ProtocolNumbers maps the protocol names accepted in native files to numbers.
var ProtocolNumbers = map[string]uint8{
	"icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP, "icmpv6": ProtoICMPv6,
	"sctp": ProtoSCTP, "udplite": ProtoUDPLite,
}

// Failsafe lists the ports that stay open whatever the policies say.
type Failsafe struct {
	Inbound  []ProtoPort
	Outbound []ProtoPort
	// DeclRange is the failsafe block; empty when none was given.
	DeclRange hcl.Range
}

// ProtoPort is one failsafe entry: protocol, optional network, port.
type ProtoPort struct {
	Protocol uint8
	Net      netip.Prefix // zero: any address
	Port     uint16
}

// DefaultFailsafe returns Calico's default failsafe ports.
func DefaultFailsafe() Failsafe {
	in := []ProtoPort{{ProtoTCP, netip.Prefix{}, 22}, {ProtoUDP, netip.Prefix{}, 68}}
	out := []ProtoPort{{ProtoUDP, netip.Prefix{}, 53}, {ProtoUDP, netip.Prefix{}, 67}}
	for _, p := range []uint16{179, 2379, 2380, 5473, 6443, 6666, 6667} {
		in = append(in, ProtoPort{ProtoTCP, netip.Prefix{}, p})
		out = append(out, ProtoPort{ProtoTCP, netip.Prefix{}, p})
	}
	return Failsafe{Inbound: in, Outbound: out}
}
