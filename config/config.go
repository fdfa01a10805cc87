package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Config is one whole configuration: every file of the config directory.
type Config struct {
	Host        *Host // nil when no file declares a host block
	Endpoints   []*HostEndpoint
	NetworkSets []*NetworkSet
	Policies    []*Policy
	Tiers       []*Tier // declared tiers; the default tier is implicit
	Failsafe    Failsafe
	// NodeFailsafe overrides the failsafe lists on one node (Calico's
	// FelixConfiguration "node.<name>"), by node name.
	NodeFailsafe map[string]NodeFailsafe
	// Workloads says which interfaces lead to workloads (containers, VMs)
	// and what becomes of their traffic to this host; NodeWorkloads
	// overrides it on one node (FelixConfiguration "node.<name>").
	Workloads     Workloads
	NodeWorkloads map[string]NodeWorkloads
	Settings      Settings
}

// Workloads is Calico's treatment of workload interfaces (Felix's
// InterfacePrefix and DefaultEndpointToHostAction). An interface whose
// name starts with one of Prefixes is a workload interface: never a host
// endpoint; what arrives on it for this host meets ToHost instead of the
// host endpoints (see docs/semantics.md, "Workloads on the host").
type Workloads struct {
	// Prefixes are interface name prefixes; none: no workload interfaces,
	// and nothing of this applies.
	Prefixes []string
	// ToHost is the action for new traffic from a workload to this host;
	// "" is ToHostDrop.
	ToHost ToHostAction
	// DeclRange is where it was given (zero: nowhere).
	DeclRange hcl.Range
	// Calico is set when a FelixConfiguration gave it: messages name its
	// fields, and an action without prefixes means Calico's "cali".
	Calico bool
	// DefaultPrefix is set when Prefixes is that default (ForHost).
	DefaultPrefix bool
}

// NodeWorkloads is one node's override; a nil or empty field keeps the
// general one.
type NodeWorkloads struct {
	Prefixes  *[]string
	ToHost    ToHostAction
	DeclRange hcl.Range
	Calico    bool
}

// ToHostAction is what becomes of new traffic from a workload to the host.
type ToHostAction string

// Workload-to-host actions (Calico's Drop, Accept and Return).
const (
	ToHostDrop   ToHostAction = "drop"
	ToHostAccept ToHostAction = "accept"
	// ToHostReturn hands the packet on to the rest of the host's input
	// processing: hostwall's wildcard host endpoint, if any.
	ToHostReturn ToHostAction = "return"
)

// WorkloadICMPv6Types are the ICMPv6 messages a workload may always send
// the host, whatever the workload-to-host action, as Felix allows them:
// multicast listener query, report and done, router solicitation,
// neighbour solicitation and advertisement.
var WorkloadICMPv6Types = []uint8{130, 131, 132, 133, 135, 136}

// CalicoDefaultPrefix is Felix's InterfacePrefix when none is given.
const CalicoDefaultPrefix = "cali"

// Action is ToHost, Drop when unset.
func (w Workloads) Action() ToHostAction {
	if w.ToHost == "" {
		return ToHostDrop
	}
	return w.ToHost
}

// ActionField and PrefixesField name the settings as the file that gave
// them does: Calico's FelixConfiguration or a native workloads block.
func (w Workloads) ActionField() string {
	if w.Calico {
		return "defaultEndpointToHostAction"
	}
	return "to_host_action"
}

// PrefixesField: see ActionField.
func (w Workloads) PrefixesField() string {
	if w.Calico {
		return "interfacePrefix"
	}
	return "interface_prefixes"
}

// Match returns the prefix iface starts with, if it is a workload
// interface.
func (w Workloads) Match(iface string) (prefix string, ok bool) {
	for _, p := range w.Prefixes {
		if p != "" && strings.HasPrefix(iface, p) {
			return p, true
		}
	}
	return "", false
}

// NodeFailsafe is one node's override; a nil list keeps the general one.
type NodeFailsafe struct {
	Inbound, Outbound *[]ProtoPort
	DeclRange         hcl.Range
}

// ForHost returns the configuration as host sees it: its failsafe lists
// and workload settings resolved. The receiver is not changed.
func (c *Config) ForHost(host string) *Config {
	w, wChanged := c.workloadsFor(host)
	o, ok := c.NodeFailsafe[host]
	if !ok && !wChanged {
		return c
	}
	eff := *c
	eff.Workloads = w
	if o.Inbound != nil {
		eff.Failsafe.Inbound = *o.Inbound
	}
	if o.Outbound != nil {
		eff.Failsafe.Outbound = *o.Outbound
	}
	return &eff
}

// workloadsFor resolves the workload settings host sees: its node's
// override over the general ones, and Calico's default prefix when a
// FelixConfiguration sets an action and no prefix.
func (c *Config) workloadsFor(host string) (Workloads, bool) {
	w, changed := c.Workloads, false
	if o, ok := c.NodeWorkloads[host]; ok {
		changed = true
		if o.Prefixes != nil || w.DeclRange == (hcl.Range{}) {
			// Messages about the prefixes name where they were given.
			w.DeclRange, w.Calico = o.DeclRange, o.Calico
		}
		if o.Prefixes != nil {
			w.Prefixes = *o.Prefixes
		}
		if o.ToHost != "" {
			w.ToHost = o.ToHost
		}
	}
	if w.Prefixes == nil && w.ToHost != "" && w.Calico {
		w.Prefixes, w.DefaultPrefix, changed = []string{CalicoDefaultPrefix}, true, true
	}
	return w, changed
}

// Settings are host-wide switches.
type Settings struct {
	// AllowIPv6ND accepts IPv6 neighbour discovery on covered interfaces
	// (default true; false restores Calico's behaviour).
	AllowIPv6ND bool
	// SkipLockoutCheck turns off the check that refuses, on every apply
	// (the agent's too), a configuration that closes every way in for SSH
	// (settings { lockout_check = false }: a host nobody reaches over SSH).
	SkipLockoutCheck bool
	// DropLog sends each packet the ruleset drops (a deny rule, the end of
	// a tier, the default deny, the workload-to-host drop) to NFLOG group
	// DropLogGroup, at most DropLogRate a second for each deciding rule,
	// for hostwall drops and the agent's journal (default on: settings {
	// drop_log = false } turns it off).
	DropLog      bool
	DropLogGroup uint16
	DropLogRate  uint32
	// DNSMinTTL and DNSMaxTTL (seconds) clamp how long a domain name's
	// answer is kept before it is asked again; DNSGrace (seconds) is how
	// long an address stays after it left the name's answer, so that a
	// connection opened just before is not cut.
	DNSMinTTL, DNSMaxTTL, DNSGrace uint32
	DeclRange                      hcl.Range
}

// Drop log defaults: a group no well-known program uses by default (ulogd
// takes 0 and 1, Suricata 2), and a rate low enough that a flood costs
// little.
const (
	DefaultDNSMinTTL    = 30
	DefaultDNSMaxTTL    = 3600
	DefaultDNSGrace     = 300
	DefaultDropLogGroup = 9631
	DefaultDropLogRate  = 5
	MaxDropLogRate      = 100_000
)

// DefaultSettings are the settings of a configuration that declares none.
func DefaultSettings() Settings {
	return Settings{AllowIPv6ND: true, DropLog: true, DropLogGroup: DefaultDropLogGroup, DropLogRate: DefaultDropLogRate,
		DNSMinTTL: DefaultDNSMinTTL, DNSMaxTTL: DefaultDNSMaxTTL, DNSGrace: DefaultDNSGrace}
}

// DefaultTier is the tier of policies that name none.
const DefaultTier = "default"

// DefaultTierOrder is the default tier's fixed order (Calico's).
const DefaultTierOrder = 1_000_000

// Tier groups policies; tiers run by Order, and a packet that no policy of a
// selecting tier decides meets the tier's DefaultAction.
type Tier struct {
	Name          string
	Order         *float64 // nil sorts after every number
	DefaultAction Action   // Deny or Pass
	DeclRange     hcl.Range
}

// SortedTiers returns every tier, the implicit default tier included, in
// evaluation order: by order (unset last), then name.
func (c *Config) SortedTiers() []*Tier {
	def := float64(DefaultTierOrder)
	out := []*Tier{{Name: DefaultTier, Order: &def, DefaultAction: Deny}}
	for _, t := range c.Tiers {
		if t.Name != DefaultTier {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return lessOrder(out[i].Order, out[j].Order, out[i].Name, out[j].Name) })
	return out
}

// lessOrder orders by a float with nil last, then by name.
func lessOrder(a, b *float64, an, bn string) bool {
	switch {
	case a != nil && b != nil && *a != *b:
		return *a < *b
	case (a == nil) != (b == nil):
		return a != nil
	}
	return an < bn
}

// Host is this host's identity.
type Host struct {
	Name   string // empty: the running host's name
	Labels map[string]string
	// DNSServers ("address:port") resolve the policies' domain names in
	// place of resolv.conf's.
	DNSServers []string
	DeclRange  hcl.Range
}

// HostName is the name node selectors match for this host: override when
// given (--host-name), else the host block's name, else the kernel's
// hostname.
func (c *Config) HostName(override string) string {
	switch {
	case override != "":
		return override
	case c.Host != nil && c.Host.Name != "":
		return c.Host.Name
	}
	h, _ := os.Hostname()
	return h
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
	// Profiles are evaluated after the tiers; ProfileDefaultAllow allows, any
	// other name denies (hostwall has no Profile resources).
	Profiles []string
	// Ports are the endpoint's named ports; rules name them in ports and
	// not_ports, bound to its expected IPs.
	Ports []NamedPort
	// Audit is mode = "audit": every drop its policies, a tier's end or
	// the default deny would make is counted and logged, and the packet
	// accepted instead.
	Audit     bool
	DeclRange hcl.Range
	// Calico is set for an endpoint declared as a Calico resource:
	// messages about it name fields as Calico does (spec.expectedIPs).
	Calico bool
}

// NamedPort is a port an endpoint gives a name to.
type NamedPort struct {
	Name     string
	Protocol uint8 // tcp, udp or sctp
	Port     uint16
}

// ProfileDefaultAllow is Calico's built-in allow-everything profile.
const ProfileDefaultAllow = "projectcalico-default-allow"

// Wildcard reports whether the endpoint covers every interface without an
// endpoint of its own (interface "*").
func (h *HostEndpoint) Wildcard() bool { return h.Interface == "*" }

// NetworkSet is a labelled list of networks that rule selectors can match.
type NetworkSet struct {
	Name   string
	Labels map[string]string
	Nets   []netip.Prefix
	// NetsFile is the nets file whose networks follow the first InlineNets
	// of Nets (the loader resolves and reads it; empty: none). NetsKey,
	// when set, identifies the file's content: a loader with a Memo
	// hashes it, and compile's Memo keys sets by it instead of hashing
	// every network again.
	NetsFile   string
	NetsKey    string
	InlineNets int
	// Domains are domain names (Calico's allowedEgressDomains) whose
	// addresses (DomainNets, set by WithAddresses) the set holds only for
	// the destination selector of an egress allow rule, as in Calico.
	Domains    []string
	DomainNets []netip.Prefix
	DeclRange  hcl.Range
}

// Domains returns every domain name the configuration's rules name,
// sorted, once each.
func (c *Config) Domains() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range c.Policies {
		for _, rs := range [][]*Rule{p.Ingress, p.Egress} {
			for _, r := range rs {
				for _, e := range []Entity{r.Source, r.Destination} {
					for _, d := range e.Domains {
						if !seen[d] {
							seen[d] = true
							out = append(out, d)
						}
					}
				}
			}
		}
	}
	for _, ns := range c.NetworkSets {
		for _, d := range ns.Domains {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

// CountsSetDomains reports whether the network sets rule r's destination
// selector matches count their domain names (NetworkSet.Domains) for r, a
// rule of direction dir: for an egress allow rule alone, as in Calico.
func (r *Rule) CountsSetDomains(dir Direction) bool { return dir == Egress && r.Action == Allow }

// MatchesNothing reports whether the side names domains none of which has
// an address (or that were never resolved: WithAddresses): it matches no
// packet.
func (e *Entity) MatchesNothing() bool { return e.NoAddress || len(e.Domains) > 0 && len(e.Nets) == 0 }

// WithAddresses returns c with the domain names of its rules' sides
// replaced by the networks of their addresses (by name in addrs; Domains
// stays, for the record), and the names that have none. A side whose
// names have no address at all matches no packet (NoAddress).
func (c *Config) WithAddresses(addrs map[string][]netip.Addr) (*Config, []string) {
	if len(c.Domains()) == 0 {
		return c, nil
	}
	out := *c
	out.Policies = make([]*Policy, len(c.Policies))
	var none []string
	resolve := func(e *Entity) {
		if len(e.Domains) == 0 {
			return
		}
		var nets []netip.Prefix
		for _, d := range e.Domains {
			if len(addrs[d]) == 0 && !slices.Contains(none, d) {
				none = append(none, d)
			}
			for _, a := range addrs[d] {
				nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			}
		}
		slices.SortFunc(nets, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		e.Nets, e.NoAddress = slices.Compact(nets), len(nets) == 0
	}
	for i, p := range c.Policies {
		q := *p
		for _, rs := range []*[]*Rule{&q.Ingress, &q.Egress} {
			rules := make([]*Rule, len(*rs))
			for j, r := range *rs {
				rr := *r
				resolve(&rr.Source)
				resolve(&rr.Destination)
				rules[j] = &rr
			}
			*rs = rules
		}
		out.Policies[i] = &q
	}
	out.NetworkSets = make([]*NetworkSet, len(c.NetworkSets))
	for i, ns := range c.NetworkSets {
		n := *ns
		if len(n.Domains) > 0 {
			e := Entity{Domains: n.Domains}
			resolve(&e)
			n.DomainNets = e.Nets
		}
		out.NetworkSets[i] = &n
	}
	slices.Sort(none)
	return &out, none
}

// CanonicalDomain is a domain name as the configuration holds it: lower
// case, without the trailing dot.
func CanonicalDomain(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// ValidDomain checks that name is an exact domain name (letters, digits
// and inner hyphens in labels of at most 63 bytes, at most 253 in all, at
// least two labels; a label may start with an underscore). A wildcard is
// refused: resolving "*.example.com" would need the answers to the host's
// own queries (DNS snooping), which hostwall does not do.
func ValidDomain(name string) error {
	n := strings.TrimSuffix(name, ".")
	if _, err := netip.ParseAddr(n); err == nil {
		return fmt.Errorf("%q is an address: put it in nets", name)
	}
	switch {
	case strings.Contains(n, "*"):
		return fmt.Errorf("%q is a wildcard; not supported: needs DNS snooping. Name each host (api.example.com)", name)
	case n == "":
		return errors.New("an empty domain name")
	case len(n) > 253:
		return fmt.Errorf("%q is longer than a domain name may be (253 bytes)", name)
	case !strings.Contains(n, "."):
		return fmt.Errorf("%q is not a fully qualified name: give the domain too (%s.example.com); search domains are not used", name, name)
	}
	if strings.Trim(n, "0123456789.") == "" {
		return fmt.Errorf("%q is all digits, as an address is, not a name", name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q has an empty label or one longer than 63 bytes", name)
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1 || c == '_' && i == 0
			if !ok {
				return fmt.Errorf("%q holds %q, which a domain name cannot (letters, digits and inner hyphens)", name, string(c))
			}
		}
	}
	return nil
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
	Tier     string    // DefaultTier unless set
	Selector *Selector // never nil: an absent selector is all()
	// Order sorts policies, lowest first; nil sorts after every number.
	Order   *float64
	Ingress []*Rule
	Egress  []*Rule
	Types   []Direction
	// ApplyOnForward makes the policy govern traffic routed through the
	// endpoints it selects too (and only such policies do).
	ApplyOnForward bool
	// PreDNAT policies run before DNAT (ingress only, with
	// ApplyOnForward); DoNotTrack ones before connection tracking (with
	// ApplyOnForward). Neither has an implicit drop, and what they allow
	// skips the normal policies.
	PreDNAT    bool
	DoNotTrack bool
	// Staged is how a staged policy would change the enforced ones once
	// promoted ("" for an enforced policy): Set adds it, or replaces the
	// enforced policy of its name; Delete takes that one away. A staged
	// policy changes no packet's fate.
	Staged    StagedAction
	DeclRange hcl.Range
}

// StagedAction is what a staged policy does when promoted (Calico's
// stagedAction).
type StagedAction string

// Staged actions.
const (
	StagedSet    StagedAction = "Set"
	StagedDelete StagedAction = "Delete"
)

// HasStaged reports whether c has staged policies.
func (c *Config) HasStaged() bool {
	for _, p := range c.Policies {
		if p.Staged != "" {
			return true
		}
	}
	return false
}

// Enforced is c without its staged policies: what the kernel enforces (c
// itself when it has none).
func (c *Config) Enforced() *Config {
	if !c.HasStaged() {
		return c
	}
	out := *c
	out.Policies = nil
	for _, p := range c.Policies {
		if p.Staged == "" {
			out.Policies = append(out.Policies, p)
		}
	}
	return &out
}

// StagedView is the enforced configuration with the staged changes made:
// each staged Set policy added, in place of the enforced one of its name,
// each staged Delete taking the enforced one of its name away.
func (c *Config) StagedView() *Config {
	staged := map[string]*Policy{}
	for _, p := range c.Policies {
		if p.Staged != "" {
			staged[p.Name] = p
		}
	}
	out := *c
	out.Policies = nil
	for _, p := range c.Policies {
		switch s := staged[p.Name]; {
		case p.Staged == StagedSet:
			promoted := *p
			promoted.Staged = ""
			out.Policies = append(out.Policies, &promoted)
		case p.Staged != "":
		case s != nil: // replaced or deleted by the staged one
		default:
			out.Policies = append(out.Policies, p)
		}
	}
	return &out
}

// Normal reports whether the policy takes part in the normal (tracked,
// post-DNAT) evaluation.
func (p *Policy) Normal() bool { return !p.PreDNAT && !p.DoNotTrack }

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

// HasForwardPolicies reports whether any policy applies to forwarded
// traffic; without one, hostwall installs no forward hook at all.
func (c *Config) HasForwardPolicies() bool {
	for _, p := range c.Policies {
		if p.ApplyOnForward && p.Normal() {
			return true
		}
	}
	return false
}

// HasPreDNATPolicies and HasUntrackedPolicies tell whether those stages
// exist at all.
func (c *Config) HasPreDNATPolicies() bool {
	for _, p := range c.Policies {
		if p.PreDNAT {
			return true
		}
	}
	return false
}

// HasUntrackedPolicies: see HasPreDNATPolicies.
func (c *Config) HasUntrackedPolicies() bool {
	for _, p := range c.Policies {
		if p.DoNotTrack {
			return true
		}
	}
	return false
}

// SortPolicies orders policies as they are evaluated: by Order (unset last),
// then by name.
func SortPolicies(ps []*Policy) {
	sort.SliceStable(ps, func(i, j int) bool { return lessOrder(ps[i].Order, ps[j].Order, ps[i].Name, ps[j].Name) })
}

// Action is what a rule does with a matching packet.
type Action string

// Rule actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
	Log   Action = "log"
	Pass  Action = "pass" // skip the rest of the tier
)

// Rule is one ingress or egress rule of a policy.
type Rule struct {
	Action      Action
	Protocol    *Protocol // nil: any protocol
	NotProtocol *Protocol
	// IPVersion is 4 or 6, or 0 for both.
	IPVersion   int
	ICMP        *ICMPMatch
	NotICMP     *ICMPMatch
	Source      Entity
	Destination Entity
	DeclRange   hcl.Range
}

// ICMPMatch matches an ICMP or ICMPv6 type and, optionally, code.
type ICMPMatch struct {
	Type uint8
	Code *uint8
}

// Entity is the source or destination side of a rule. Every given field must
// match.
type Entity struct {
	Nets     []netip.Prefix
	NotNets  []netip.Prefix
	Ports    []PortRange
	NotPorts []PortRange
	// NamedPorts and NotNamedPorts are port names from the same lists:
	// endpoints' named ports (address, protocol and port together).
	NamedPorts       []string
	NotNamedPorts    []string
	Selector         *Selector // nil: no selector
	NotSelector      *Selector
	SelectorRange    hcl.Range
	NotSelectorRange hcl.Range
	// Domains are exact domain names (canonical: lower case, no trailing
	// dot) whose addresses the side matches, as they resolve: the remote
	// side of a rule only (an egress rule's destination, an ingress
	// rule's source), never with nets or a selector beside them.
	Domains      []string
	DomainsRange hcl.Range
	// NoAddress is set, by WithAddresses, on a side whose domain names
	// have no address: it matches no packet.
	NoAddress bool
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

// NormalizePrefixes sorts prefixes and drops each that another one of them
// starts (with "cali", "cali0" adds nothing), so every workload interface
// meets one rule. Sorted, whatever a prefix covers follows it at once, so
// each is checked against the last one kept.
func NormalizePrefixes(ps []string) []string {
	sorted := slices.Clone(ps)
	sort.Strings(sorted)
	out := []string{}
	for _, p := range sorted {
		if n := len(out); n > 0 && strings.HasPrefix(p, out[n-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}
