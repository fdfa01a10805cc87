package loader

import (
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hostwall/hostwall/config"
)

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "host"},
	{Type: "host_endpoint", LabelNames: []string{"name"}},
	{Type: "network_set", LabelNames: []string{"name"}},
	{Type: "policy", LabelNames: []string{"name"}},
	{Type: "failsafe"},
	{Type: "tier", LabelNames: []string{"name"}},
	{Type: "settings"},
	{Type: "workloads"},
}}

var (
	hostSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "labels"}, {Name: "dns_servers"}}}
	hepSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "interface", Required: true}, {Name: "node"}, {Name: "labels"}, {Name: "expected_ips"}, {Name: "profiles"}, {Name: "ports"}, {Name: "mode"},
	}}
	tierSchema     = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "order"}, {Name: "default_action"}}}
	settingsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "allow_ipv6_neighbor_discovery"}, {Name: "lockout_check"},
		{Name: "drop_log"}, {Name: "drop_log_group"}, {Name: "drop_log_rate"},
		{Name: "dns_min_ttl"}, {Name: "dns_max_ttl"}, {Name: "dns_grace"}}}
	icmpSchema   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "type", Required: true}, {Name: "code"}}}
	netSetSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "labels"}, {Name: "nets"}, {Name: "nets_file"}, {Name: "domains"}}}
	policySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "selector"}, {Name: "order"}, {Name: "types"}, {Name: "tier"},
			{Name: "apply_on_forward"}, {Name: "pre_dnat"}, {Name: "do_not_track"}, {Name: "staged"}},
		Blocks: []hcl.BlockHeaderSchema{{Type: "ingress"}, {Type: "egress"}},
	}
	ruleSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "action", Required: true}, {Name: "protocol"}, {Name: "not_protocol"}, {Name: "ip_version"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "source"}, {Type: "destination"}, {Type: "icmp"}, {Type: "not_icmp"}},
	}
	entitySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "nets"}, {Name: "not_nets"}, {Name: "ports"}, {Name: "not_ports"}, {Name: "selector"}, {Name: "not_selector"}, {Name: "domains"},
	}}
	failsafeSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "inbound"}, {Name: "outbound"}, {Name: "node"}}}
	workloadsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "interface_prefixes"}, {Name: "to_host_action"}, {Name: "node"}}}
)

// decodeBody adds the blocks of one file's body (HCL or native YAML) to the
// builder.
func (b *builder) decodeBody(body hcl.Body) {
	content, diags := body.Content(fileSchema)
	b.diags = append(b.diags, diags...)
	if content == nil {
		return
	}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "host":
			b.decodeHost(blk)
		case "host_endpoint":
			b.decodeHEP(blk)
		case "network_set":
			b.decodeNetworkSet(blk)
		case "policy":
			b.decodePolicy(blk)
		case "failsafe":
			b.decodeFailsafe(blk)
		case "tier":
			b.decodeTier(blk)
		case "settings":
			b.decodeSettings(blk)
		case "workloads":
			b.decodeWorkloads(blk)
		}
	}
}

func (b *builder) content(blk *hcl.Block, schema *hcl.BodySchema) *hcl.BodyContent {
	c, diags := blk.Body.Content(schema)
	b.diags = append(b.diags, diags...)
	return c
}

func (b *builder) decodeHost(blk *hcl.Block) {
	if !b.unique("host", "", blk.DefRange) {
		return
	}
	c := b.content(blk, hostSchema)
	h := &config.Host{DeclRange: blk.DefRange, Labels: map[string]string{}}
	if a := c.Attributes["name"]; a != nil {
		h.Name = b.str(a)
	}
	if a := c.Attributes["labels"]; a != nil {
		h.Labels = b.labels(a)
	}
	if a := c.Attributes["dns_servers"]; a != nil {
		items, diags := listAttr(a)
		b.diags = append(b.diags, diags...)
		for _, it := range items {
			s := ""
			if it.val.Type() == cty.String && !it.val.IsNull() {
				s = it.val.AsString()
			}
			if ap, err := netip.ParseAddrPort(s); err == nil {
				h.DNSServers = append(h.DNSServers, ap.String())
			} else if addr, err := netip.ParseAddr(s); err == nil {
				h.DNSServers = append(h.DNSServers, netip.AddrPortFrom(addr, 53).String())
			} else {
				b.diags = append(b.diags, errAt(it.rng, "Invalid DNS server", "dns_servers holds addresses, with a port or not (\"192.0.2.53\", \"127.0.0.1:5353\", \"[2001:db8::53]:53\"); not %s.", describe(it.val)))
			}
		}
	}
	b.cfg.Host = h
}

func (b *builder) decodeHEP(blk *hcl.Block) {
	name := blk.Labels[0]
	c := b.content(blk, hepSchema)
	if !b.validName("host endpoint", name, blk.LabelRanges[0]) || !b.unique("host_endpoint", name, blk.DefRange) || c == nil {
		return
	}
	hep := &config.HostEndpoint{Name: name, DeclRange: blk.DefRange, Labels: map[string]string{}}
	if a := c.Attributes["interface"]; a != nil {
		hep.Interface = b.str(a)
		b.checkInterface(hep.Interface, a.Expr.Range())
	}
	if a := c.Attributes["node"]; a != nil {
		hep.Node = b.str(a)
	}
	if a := c.Attributes["labels"]; a != nil {
		hep.Labels = b.labels(a)
	}
	if a := c.Attributes["profiles"]; a != nil {
		hep.Profiles = b.strings(a)
	}
	if a := c.Attributes["ports"]; a != nil {
		hep.Ports = b.namedPorts(a)
	}
	if a := c.Attributes["mode"]; a != nil {
		switch v, ok := b.strOK(a); {
		case !ok: // reported
		case v == "enforce":
		case v == "audit":
			hep.Audit = true
		default:
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid mode",
				"A host endpoint's mode is \"enforce\" (the default) or \"audit\" (drops are logged and the packets accepted), not %q.%s", v, meant(v, "enforce", "audit")))
		}
	}
	if a := c.Attributes["expected_ips"]; a != nil {
		nets, diags := netsAttr(a)
		b.diags = append(b.diags, diags...)
		for _, n := range nets {
			if !n.IsSingleIP() {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Expected IP is a network", "expected_ips holds single addresses; %s is a network.", n))
				continue
			}
			hep.ExpectedIPs = append(hep.ExpectedIPs, n.Addr())
		}
	}
	b.cfg.Endpoints = append(b.cfg.Endpoints, hep)
}

// interfaceName is what Calico's validator takes as an interface name,
// besides "*".
var interfaceName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)

// checkInterface refuses an interface name Calico refuses: a pattern such
// as "eth*" would be taken for a name no interface has, and protect
// nothing while the operator believes eth0 to ethN are.
func (b *builder) checkInterface(name string, rng hcl.Range) {
	switch {
	case name == "*":
	case strings.ContainsAny(name, "*?["):
		b.diags = append(b.diags, errAt(rng, "Invalid interface name",
			"%q is a pattern; an interface is named exactly, or \"*\" for every interface (as in Calico). Give one host endpoint per interface, or use \"*\".", name))
	case !interfaceName.MatchString(name) || name == "." || name == "..":
		b.diags = append(b.diags, errAt(rng, "Invalid interface name",
			"%q is not an interface name: 1-15 letters, digits, '.', '_' or '-' (as Calico takes them), or \"*\" for every interface.", name))
	}
}

func (b *builder) decodeNetworkSet(blk *hcl.Block) {
	name := blk.Labels[0]
	c := b.content(blk, netSetSchema)
	if !b.validName("network set", name, blk.LabelRanges[0]) || !b.unique("network_set", name, blk.DefRange) || c == nil {
		return
	}
	ns := &config.NetworkSet{Name: name, DeclRange: blk.DefRange, Labels: map[string]string{}}
	if a := c.Attributes["labels"]; a != nil {
		ns.Labels = b.labels(a)
	}
	if a := c.Attributes["domains"]; a != nil {
		ns.Domains = b.domains(a, "domains")
	}
	if a := c.Attributes["nets"]; a != nil {
		nets, diags := netsAttr(a)
		b.diags = append(b.diags, diags...)
		ns.Nets = nets
	}
	if a := c.Attributes["nets_file"]; a != nil {
		if name := b.str(a); name != "" {
			b.nets = append(b.nets, netsRef{Set: len(b.cfg.NetworkSets), Name: name, From: blk.DefRange.Filename, Range: a.Expr.Range()})
		}
	}
	b.cfg.NetworkSets = append(b.cfg.NetworkSets, ns)
}

func (b *builder) decodePolicy(blk *hcl.Block) {
	name := blk.Labels[0]
	c := b.content(blk, policySchema)
	kind, staged := "policy", config.StagedAction("")
	if c != nil && c.Attributes["staged"] != nil {
		staged = b.staged(c.Attributes["staged"])
	}
	if staged != "" {
		kind = "staged policy" // beside the enforced policy it would replace
	}
	if !b.validName("policy", name, blk.LabelRanges[0]) || !b.unique(kind, name, blk.DefRange) || c == nil {
		return
	}
	p := &config.Policy{Name: name, DeclRange: blk.DefRange, Selector: config.All(), Tier: config.DefaultTier, Staged: staged}
	if a := c.Attributes["tier"]; a != nil {
		p.Tier = b.str(a)
		b.tierRefs = append(b.tierRefs, tierRef{p.Tier, a.Expr.Range(), p.Name})
	}
	if a := c.Attributes["selector"]; a != nil {
		sel, diags := selectorAttr(a)
		b.diags = append(b.diags, diags...)
		if sel != nil {
			p.Selector = sel
		}
	}
	if a := c.Attributes["order"]; a != nil {
		p.Order = b.order(a)
	}
	for _, rb := range c.Blocks {
		r := b.decodeRule(rb)
		if r == nil {
			continue
		}
		if rb.Type == "ingress" {
			p.Ingress = append(p.Ingress, r)
		} else {
			p.Egress = append(p.Egress, r)
		}
		b.checkDomains(r, rb.Type == "ingress", "domains", "nets", "selector", "source", "destination")
	}
	if a := c.Attributes["apply_on_forward"]; a != nil {
		p.ApplyOnForward = b.boolean(a)
	}
	if a := c.Attributes["pre_dnat"]; a != nil {
		p.PreDNAT = b.boolean(a)
	}
	if a := c.Attributes["do_not_track"]; a != nil {
		p.DoNotTrack = b.boolean(a)
	}
	p.Types = b.types(c.Attributes["types"], p)
	b.checkStages(p, "pre_dnat", "do_not_track", "apply_on_forward")
	b.cfg.Policies = append(b.cfg.Policies, p)
}

// types reads the policy's types, or defaults them as Calico does: egress
// rules only → egress; both → both; otherwise ingress.
func (b *builder) types(a *hcl.Attribute, p *config.Policy) []config.Direction {
	if a == nil {
		return defaultTypes(p)
	}
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	var out []config.Direction
	for _, it := range items {
		s := ""
		if it.val.Type() == cty.String {
			s = strings.ToLower(it.val.AsString())
		}
		switch d := config.Direction(s); d {
		case config.Ingress, config.Egress:
			out = append(out, d)
		default:
			b.diags = append(b.diags, errAt(it.rng, "Invalid policy type", "types may hold \"ingress\" and \"egress\", not %s.%s", describe(it.val), meant(s, "ingress", "egress")))
		}
	}
	for _, d := range []config.Direction{config.Ingress, config.Egress} {
		if len(p.Rules(d)) > 0 && !slices.Contains(out, d) {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Rules for a direction the policy does not apply to",
				"Policy %q has %s rules but types does not include %q; add it, or remove those rules.", p.Name, d, d))
		}
	}
	return out
}

func (b *builder) decodeRule(blk *hcl.Block) *config.Rule {
	c := b.content(blk, ruleSchema)
	if c == nil {
		return nil
	}
	r := &config.Rule{DeclRange: blk.DefRange}
	if a := c.Attributes["action"]; a != nil {
		s := b.str(a)
		switch act := config.Action(strings.ToLower(s)); act {
		case config.Allow, config.Deny, config.Log, config.Pass:
			r.Action = act
		default:
			if s != "" || !b.diags.HasErrors() {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid action", "action %q is not one of \"allow\", \"deny\", \"log\", \"pass\".%s", s, meant(s, "allow", "deny", "log", "pass")))
			}
		}
	}
	if a := c.Attributes["protocol"]; a != nil {
		p, diags := protocolAttr(a)
		b.diags = append(b.diags, diags...)
		r.Protocol = p
	}
	if a := c.Attributes["not_protocol"]; a != nil {
		p, diags := protocolAttr(a)
		b.diags = append(b.diags, diags...)
		r.NotProtocol = p
	}
	if a := c.Attributes["ip_version"]; a != nil {
		if f, diags := numberAttr(a); diags.HasErrors() {
			b.diags = append(b.diags, diags...)
		} else if v, acc := f.Int64(); acc != 0 || (v != 4 && v != 6) {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid IP version", "ip_version is 4 or 6."))
		} else {
			r.IPVersion = int(v)
		}
	}
	var seen = map[string]hcl.Range{}
	for _, eb := range c.Blocks {
		if prev, dup := seen[eb.Type]; dup {
			b.diags = append(b.diags, errAt(eb.DefRange, "Duplicate "+eb.Type+" block", "A rule has at most one %s block; the first is at %s. Merge them.", eb.Type, prev))
			continue
		}
		seen[eb.Type] = eb.DefRange
		switch eb.Type {
		case "icmp":
			r.ICMP = b.decodeICMP(eb)
		case "not_icmp":
			r.NotICMP = b.decodeICMP(eb)
		case "source":
			r.Source = b.decodeEntity(eb, r)
		default:
			r.Destination = b.decodeEntity(eb, r)
		}
	}
	b.checkRule(r, blk.DefRange)
	return r
}

func (b *builder) decodeICMP(blk *hcl.Block) *config.ICMPMatch {
	c := b.content(blk, icmpSchema)
	m := &config.ICMPMatch{}
	if c == nil {
		return m
	}
	byteAttr := func(a *hcl.Attribute) (uint8, bool) {
		f, diags := numberAttr(a)
		if diags.HasErrors() {
			b.diags = append(b.diags, diags...)
			return 0, false
		}
		v, acc := f.Int64()
		if acc != 0 || v < 0 || v > 255 {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid ICMP "+a.Name, "The ICMP %s is a number 0-255.", a.Name))
			return 0, false
		}
		return uint8(v), true
	}
	if a := c.Attributes["type"]; a != nil {
		m.Type, _ = byteAttr(a)
	}
	if a := c.Attributes["code"]; a != nil {
		if v, ok := byteAttr(a); ok {
			m.Code = &v
		}
	}
	return m
}

// checkRule checks what needs the whole rule: ICMP matches need an ICMP
// protocol, and the IP version must agree with the protocol and networks.
func (b *builder) checkRule(r *config.Rule, rng hcl.Range) {
	icmpVersion := 0
	if r.Protocol != nil {
		switch r.Protocol.Number {
		case config.ProtoICMP:
			icmpVersion = 4
		case config.ProtoICMPv6:
			icmpVersion = 6
		}
	}
	if (r.ICMP != nil || r.NotICMP != nil) && icmpVersion == 0 {
		b.diags = append(b.diags, errAt(rng, "ICMP match needs an ICMP protocol",
			"A rule with icmp or not_icmp must set protocol = \"icmp\" (IPv4) or \"icmpv6\" (IPv6)."))
	}
	if r.IPVersion != 0 && icmpVersion != 0 && r.IPVersion != icmpVersion {
		b.diags = append(b.diags, errAt(rng, "IP version contradicts the protocol",
			"ip_version = %d, but protocol %q is IPv%d only.", r.IPVersion, r.Protocol.Name, icmpVersion))
	}
	if r.IPVersion != 0 {
		for _, e := range []config.Entity{r.Source, r.Destination} {
			for _, n := range append(append([]netip.Prefix(nil), e.Nets...), e.NotNets...) {
				if (n.Addr().Is4() && r.IPVersion == 6) || (n.Addr().Is6() && r.IPVersion == 4) {
					b.diags = append(b.diags, errAt(rng, "IP version contradicts a network",
						"ip_version = %d, but the rule names %s; use one IP version per rule.", r.IPVersion, n))
				}
			}
		}
	}
}

// domains reads a list of domain names (attribute a, called name in the
// file's language): exact names, canonical.
func (b *builder) domains(a *hcl.Attribute, name string) []string {
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	if len(items) == 0 && !diags.HasErrors() {
		b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Empty list of domain names",
			Detail: fmt.Sprintf("%s is empty, which restricts nothing: the side matches every address. Name the hosts, or leave %s out.", name, name), Subject: a.Expr.Range().Ptr()})
	}
	var out []string
	for _, it := range items {
		if it.val.Type() != cty.String || it.val.IsNull() {
			b.diags = append(b.diags, errAt(it.rng, "Invalid domain name", "%s holds names as strings, such as \"api.example.com\"; not %s.", name, describe(it.val)))
			continue
		}
		s := it.val.AsString()
		if err := config.ValidDomain(s); err != nil {
			b.diags = append(b.diags, errAt(it.rng, "Invalid domain name", "%s.", err))
			continue
		}
		if d := config.CanonicalDomain(s); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// checkDomains refuses domain names (called field, as nets and selector
// are called nets and selector in the file's language) where they cannot
// stand: on the side of the rule that is this host (an ingress rule's
// destination, an egress rule's source; src and dst name the sides), and
// beside nets or a selector on their side, whose meaning with names would
// be unclear (two rules say it).
func (b *builder) checkDomains(r *config.Rule, ingress bool, field, nets, selector, src, dst string) {
	local, remote := r.Destination, r.Source
	if !ingress {
		local, remote = r.Source, r.Destination
	}
	if len(local.Domains) > 0 {
		dir, side := "ingress", dst
		if !ingress {
			dir, side = "egress", src
		}
		b.diags = append(b.diags, errAt(local.DomainsRange, "Domain names on this host's side",
			"An %s rule's %s is this host: %s name the other end, in an egress rule's %s or an ingress rule's %s.", dir, side, field, dst, src))
	}
	if len(remote.Domains) > 0 && (len(remote.Nets)+len(remote.NotNets) > 0 || remote.Selector != nil || remote.NotSelector != nil) {
		b.diags = append(b.diags, errAt(remote.DomainsRange, "Domain names beside networks",
			"%s cannot stand beside %s or %s on one side of a rule: write one rule for the names and one for the networks.", field, nets, selector))
	}
}

func (b *builder) decodeEntity(blk *hcl.Block, r *config.Rule) config.Entity {
	var e config.Entity
	c := b.content(blk, entitySchema)
	if c == nil {
		return e
	}
	if a := c.Attributes["nets"]; a != nil {
		nets, diags := netsAttr(a)
		b.diags = append(b.diags, diags...)
		e.Nets = nets
	}
	if a := c.Attributes["not_nets"]; a != nil {
		nets, diags := netsAttr(a)
		b.diags = append(b.diags, diags...)
		e.NotNets = nets
	}
	if a := c.Attributes["domains"]; a != nil {
		e.Domains, e.DomainsRange = b.domains(a, "domains"), a.NameRange
	}
	for _, name := range []string{"ports", "not_ports"} {
		a := c.Attributes[name]
		if a == nil {
			continue
		}
		ports, names, diags := portsAttr(a)
		b.diags = append(b.diags, diags...)
		if name == "ports" {
			e.Ports, e.NamedPorts = ports, names
		} else {
			e.NotPorts, e.NotNamedPorts = ports, names
		}
		// Port numbers need a protocol with ports; port names do not (the
		// endpoint's definition carries the protocol).
		if len(ports) > 0 && (r.Protocol == nil || !r.Protocol.HasPorts()) {
			b.diags = append(b.diags, errAt(a.NameRange, "Ports need a protocol with ports",
				"A rule that matches ports must set protocol to \"tcp\", \"udp\", \"sctp\" or \"udplite\"."))
		}
	}
	if a := c.Attributes["selector"]; a != nil {
		sel, diags := selectorAttr(a)
		b.diags = append(b.diags, diags...)
		e.Selector, e.SelectorRange = sel, a.Expr.Range()
	}
	if a := c.Attributes["not_selector"]; a != nil {
		sel, diags := selectorAttr(a)
		b.diags = append(b.diags, diags...)
		e.NotSelector, e.NotSelectorRange = sel, a.Expr.Range()
	}
	return e
}

func (b *builder) decodeFailsafe(blk *hcl.Block) {
	c := b.content(blk, failsafeSchema)
	if c != nil && c.Attributes["node"] != nil {
		// One node's override: the lists it gives replace the general
		// ones there.
		o := config.NodeFailsafe{DeclRange: blk.DefRange}
		if a := c.Attributes["inbound"]; a != nil {
			l := b.protoPorts(a)
			o.Inbound = &l
		}
		if a := c.Attributes["outbound"]; a != nil {
			l := b.protoPorts(a)
			o.Outbound = &l
		}
		putNode(b, &b.cfg.NodeFailsafe, "failsafe", b.str(c.Attributes["node"]), o.DeclRange, o)
		return
	}
	if !b.unique("failsafe", "", blk.DefRange) {
		return
	}
	def := config.DefaultFailsafe()
	fs := config.Failsafe{Inbound: def.Inbound, Outbound: def.Outbound, DeclRange: blk.DefRange}
	if c != nil {
		if a := c.Attributes["inbound"]; a != nil {
			fs.Inbound = b.protoPorts(a)
		}
		if a := c.Attributes["outbound"]; a != nil {
			fs.Outbound = b.protoPorts(a)
		}
	}
	b.cfg.Failsafe = fs
}

// protoPorts reads failsafe entries: "tcp:22", "udp:10.0.0.0/8:53",
// "tcp:[fd00::/8]:22". "none" alone, or [], disables.
func (b *builder) protoPorts(a *hcl.Attribute) []config.ProtoPort {
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	out := []config.ProtoPort{}
	for _, it := range items {
		if it.val.Type() != cty.String {
			b.diags = append(b.diags, errAt(it.rng, "Invalid failsafe entry", "Each entry is a string \"protocol:port\" or \"protocol:network:port\", such as \"tcp:22\"."))
			continue
		}
		s := it.val.AsString()
		if s == "none" && len(items) == 1 {
			break
		}
		pp, err := parseProtoPort(s)
		if err != nil {
			b.diags = append(b.diags, errAt(it.rng, "Invalid failsafe entry", "%q: %v. Write \"tcp:22\", \"udp:10.0.0.0/8:53\" or \"tcp:[fd00::/8]:22\".", s, err))
			continue
		}
		out = append(out, pp)
	}
	return out
}

func parseProtoPort(s string) (config.ProtoPort, error) {
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return config.ProtoPort{}, fmt.Errorf("missing \":port\"")
	}
	var pp config.ProtoPort
	switch strings.ToLower(proto) {
	case "tcp":
		pp.Protocol = config.ProtoTCP
	case "udp":
		pp.Protocol = config.ProtoUDP
	case "sctp":
		pp.Protocol = config.ProtoSCTP
	default:
		return pp, fmt.Errorf("protocol %q is not tcp, udp or sctp", proto)
	}
	port := rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		netStr := strings.TrimSuffix(strings.TrimPrefix(rest[:i], "["), "]")
		port = rest[i+1:]
		n, d := parseNet(netStr, hcl.Range{})
		if d != nil {
			return pp, fmt.Errorf("%s", strings.TrimSuffix(d.Detail, "."))
		}
		pp.Net = n
	}
	r, err := parsePortRange(port)
	if err != nil || r.Lo != r.Hi {
		return pp, fmt.Errorf("%q is not a single port number", port)
	}
	pp.Port = r.Lo
	return pp, nil
}

// decodeWorkloads reads a workloads block: the general one, or with node
// one node's override (the fields it gives replace the general ones
// there).
func (b *builder) decodeWorkloads(blk *hcl.Block) {
	c := b.content(blk, workloadsSchema)
	if c == nil {
		return
	}
	var prefixes *[]string
	if a := c.Attributes["interface_prefixes"]; a != nil {
		items, diags := listAttr(a)
		b.diags = append(b.diags, diags...)
		list := []string{}
		for _, it := range items {
			if it.val.Type() != cty.String {
				b.diags = append(b.diags, errAt(it.rng, "Expected a string", "Each element of %q must be a quoted string, such as \"cali\".", a.Name))
				continue
			}
			if p, ok := b.workloadPrefix(it.val.AsString(), it.rng, false); ok {
				list = append(list, p)
			}
		}
		b.maxPrefixes(len(items), a.Expr.Range(), a.Name)
		list = config.NormalizePrefixes(list)
		prefixes = &list
	}
	var act config.ToHostAction
	if a := c.Attributes["to_host_action"]; a != nil {
		if v, ok := b.strOK(a); ok {
			act = b.toHostAction(v, a.Expr.Range(), false)
		}
	}
	if a := c.Attributes["node"]; a != nil {
		node, ok := b.strOK(a)
		switch {
		case !ok:
		case node == "":
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Empty node", "node names the host this block is for; leave it out for every host."))
		default:
			putNode(b, &b.cfg.NodeWorkloads, "workloads", node, blk.DefRange, config.NodeWorkloads{Prefixes: prefixes, ToHost: act, DeclRange: blk.DefRange})
		}
		return
	}
	if prefixes == nil {
		b.diags = append(b.diags, errAt(blk.DefRange, "Missing interface_prefixes",
			"A workloads block names the interfaces that lead to workloads: interface_prefixes = [\"cali\", \"veth\", \"docker\", \"vnet\"], say (interface_prefixes = [] for none)."))
		return
	}
	if b.unique("workloads", "", blk.DefRange) {
		b.cfg.Workloads = config.Workloads{Prefixes: *prefixes, ToHost: act, DeclRange: blk.DefRange}
	}
}

// strOK is str, and whether the value was a string at all (if not, that
// is reported, and nothing more should be said about the value).
func (b *builder) strOK(a *hcl.Attribute) (string, bool) {
	s, diags := stringAttr(a)
	b.diags = append(b.diags, diags...)
	return s, !diags.HasErrors()
}

// MaxWorkloadPrefixes bounds the workload interface prefixes: each is a
// rule in three base chains, met by packets of interfaces without a host
// endpoint.
const MaxWorkloadPrefixes = 100

func (b *builder) maxPrefixes(n int, rng hcl.Range, field string) {
	if n > MaxWorkloadPrefixes {
		b.diags = append(b.diags, errAt(rng, "Too many interface prefixes",
			"%s gives %d prefixes; at most %d are taken. Name workload interfaces by the few prefixes their software gives them (\"cali\", \"docker\", \"vnet\").",
			field, n, MaxWorkloadPrefixes))
	}
}

// workloadPrefixRE is what an interface name prefix may be: Felix's own
// rule for InterfacePrefix (1-15 letters, digits, '_' or '-'), and '.'
// in native files, which interface names may hold.
var (
	workloadPrefixRE       = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,15}$`)
	workloadPrefixNativeRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
)

// workloadPrefix checks one workload interface prefix; calico selects
// Calico's wording and rule.
func (b *builder) workloadPrefix(p string, rng hcl.Range, calico bool) (string, bool) {
	field, re := "interface_prefixes", workloadPrefixNativeRE
	if calico {
		field, re = "interfacePrefix", workloadPrefixRE
	}
	switch {
	case p == "":
		b.diags = append(b.diags, errAt(rng, "Empty interface prefix",
			"An empty %s would make every interface a workload interface, the host's own included. Name the prefixes of workload interfaces, such as \"cali\".", field))
	case strings.TrimRight(p, "*+") != p && re.MatchString(strings.TrimRight(p, "*+")):
		b.diags = append(b.diags, errAt(rng, "Invalid interface prefix",
			"%s holds prefixes, not patterns: write %q, not %q.", field, strings.TrimRight(p, "*+"), p))
	case !re.MatchString(p):
		allowed := "letters, digits, '.', '_' or '-'"
		if calico {
			allowed = "letters, digits, '_' or '-' (as Felix reads it)"
		}
		b.diags = append(b.diags, errAt(rng, "Invalid interface prefix", "%q is not an interface name prefix: 1-15 %s.", p, allowed))
	case strings.HasPrefix("lo", p):
		b.diags = append(b.diags, errAt(rng, "Interface prefix matches lo",
			"Prefix %q makes the loopback interface lo a workload interface, so the host's own connections to itself would meet the workload rules. Use a longer prefix.", p))
	default:
		return p, true
	}
	return "", false
}

// toHostAction reads a workload-to-host action: in any case in native
// files; in Calico's, exactly Drop, Accept or Return, as Calico's
// validation takes them.
func (b *builder) toHostAction(v string, rng hcl.Range, calico bool) config.ToHostAction {
	a := config.ToHostAction(strings.ToLower(v))
	switch a {
	case config.ToHostDrop, config.ToHostAccept, config.ToHostReturn:
		if !calico || v == strings.ToUpper(v[:1])+string(a[1:]) {
			return a
		}
	}
	if calico {
		b.diags = append(b.diags, errAt(rng, "Invalid defaultEndpointToHostAction",
			"defaultEndpointToHostAction is Drop, Accept or Return (in that case, as Calico validates it), not %q.%s", v, meant(v, "Drop", "Accept", "Return")))
	} else {
		b.diags = append(b.diags, errAt(rng, "Invalid to_host_action",
			"to_host_action is \"drop\", \"accept\" or \"return\", not %q.%s", v, meant(v, "drop", "accept", "return")))
	}
	return ""
}

func (b *builder) decodeTier(blk *hcl.Block) {
	name := blk.Labels[0]
	c := b.content(blk, tierSchema)
	if !b.validName("tier", name, blk.LabelRanges[0]) || !b.unique("tier", name, blk.DefRange) || c == nil {
		return
	}
	if name == config.DefaultTier {
		b.diags = append(b.diags, errAt(blk.LabelRanges[0], "The default tier cannot be declared",
			"Tier %q is built in, with order %d and default action deny; policies without a tier are in it.", name, config.DefaultTierOrder))
		return
	}
	t := &config.Tier{Name: name, DefaultAction: config.Deny, DeclRange: blk.DefRange}
	if a := c.Attributes["order"]; a != nil {
		t.Order = b.order(a)
	}
	if a := c.Attributes["default_action"]; a != nil {
		switch act := config.Action(strings.ToLower(b.str(a))); act {
		case config.Deny, config.Pass:
			t.DefaultAction = act
		default:
			v := b.str(a)
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid default action", "A tier's default_action is \"deny\" or \"pass\", not %q.%s", v, meant(v, "deny", "pass")))
		}
	}
	b.cfg.Tiers = append(b.cfg.Tiers, t)
}

func (b *builder) decodeSettings(blk *hcl.Block) {
	if !b.unique("settings", "", blk.DefRange) {
		return
	}
	c := b.content(blk, settingsSchema)
	b.cfg.Settings.DeclRange = blk.DefRange
	if c == nil {
		return
	}
	if v, ok := b.boolSetting(c, "allow_ipv6_neighbor_discovery"); ok {
		b.cfg.Settings.AllowIPv6ND = v
	}
	if v, ok := b.boolSetting(c, "lockout_check"); ok {
		b.cfg.Settings.SkipLockoutCheck = !v
	}
	if v, ok := b.boolSetting(c, "drop_log"); ok {
		b.cfg.Settings.DropLog = v
	}
	if v, ok := b.wholeSetting(c, "drop_log_group", 0, 65535, "an NFLOG group"); ok {
		b.cfg.Settings.DropLogGroup = uint16(v)
	}
	if v, ok := b.wholeSetting(c, "drop_log_rate", 1, config.MaxDropLogRate, "packets a second for each deciding rule"); ok {
		b.cfg.Settings.DropLogRate = uint32(v)
	}
	for _, d := range []struct {
		name string
		to   *uint32
		lo   int64
	}{{"dns_min_ttl", &b.cfg.Settings.DNSMinTTL, 1}, {"dns_max_ttl", &b.cfg.Settings.DNSMaxTTL, 1}, {"dns_grace", &b.cfg.Settings.DNSGrace, 0}} {
		if v, ok := b.wholeSetting(c, d.name, d.lo, 7*24*3600, "seconds"); ok {
			*d.to = uint32(v)
		}
	}
	if s := b.cfg.Settings; s.DNSMinTTL > s.DNSMaxTTL {
		b.diags = append(b.diags, errAt(blk.DefRange, "Invalid dns_min_ttl",
			"dns_min_ttl (%d s) is above dns_max_ttl (%d s): a name's answer is kept at least the one and at most the other.", s.DNSMinTTL, s.DNSMaxTTL))
	}
}

// staged reads a policy's staged: true (it would be added, or replace the
// enforced policy of its name), false, or "delete" (it would take that one
// away).
func (b *builder) staged(a *hcl.Attribute) config.StagedAction {
	v, diags := value(a)
	b.diags = append(b.diags, diags...)
	switch {
	case diags.HasErrors():
	case v.Type() == cty.Bool && v.True():
		return config.StagedSet
	case v.Type() == cty.Bool:
	case v.Type() == cty.String && v.AsString() == "delete":
		return config.StagedDelete
	default:
		b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid staged",
			"staged is true (the policy would be added, or replace the enforced policy of its name), false, or \"delete\" (it would take that policy away), not %s.", describe(v)))
	}
	return ""
}

// wholeSetting reads the settings attribute name, a whole number from lo
// to hi (what says what it counts); ok is false when it is absent or bad
// (which it reports).
func (b *builder) wholeSetting(c *hcl.BodyContent, name string, lo, hi int64, what string) (int64, bool) {
	a := c.Attributes[name]
	if a == nil {
		return 0, false
	}
	n, f, ok := b.wholeNumber(a, lo, hi)
	if !ok && f != nil {
		b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid "+name,
			"%s is %s, a whole number from %d to %d, not %s.", name, what, lo, hi, f.Text('g', 10)))
	}
	return n, ok
}

// wholeNumber reads a, a whole number from lo to hi. A value that is no
// number is reported; one out of range or not whole is the caller's to
// report, in its terms (f holds it, nil when no number).
func (b *builder) wholeNumber(a *hcl.Attribute, lo, hi int64) (n int64, f *big.Float, ok bool) {
	f, diags := numberAttr(a)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return 0, nil, false
	}
	n, acc := f.Int64()
	return n, f, acc == big.Exact && n >= lo && n <= hi
}

// boolSetting reads the settings attribute name, true or false; ok is
// false when it is absent or not a boolean (which it reports).
func (b *builder) boolSetting(c *hcl.BodyContent, name string) (v, ok bool) {
	a := c.Attributes[name]
	if a == nil {
		return false, false
	}
	val, diags := value(a)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return false, false
	}
	if val.Type() != cty.Bool {
		b.diags = append(b.diags, errAt(a.Expr.Range(), "Expected true or false", "%s is true or false.", name))
		return false, false
	}
	return val.True(), true
}

// namedPorts reads an endpoint's ports: [{ name = "ssh", protocol = "tcp", port = 22 }].
func (b *builder) namedPorts(a *hcl.Attribute) []config.NamedPort {
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	var out []config.NamedPort
	for _, it := range items {
		t := it.val.Type()
		if !t.IsObjectType() {
			b.diags = append(b.diags, errAt(it.rng, "Invalid named port", "Each port is { name = \"ssh\", protocol = \"tcp\", port = 22 }."))
			continue
		}
		np, err := namedPortFrom(it.val)
		if err != nil {
			b.diags = append(b.diags, errAt(it.rng, "Invalid named port", "%s.", err))
			continue
		}
		out = append(out, np)
	}
	return out
}

// namedPortFrom checks one named port given as an object with name,
// protocol (tcp, udp, sctp, any case) and port.
func namedPortFrom(v cty.Value) (config.NamedPort, error) {
	var np config.NamedPort
	get := func(k string) (cty.Value, bool) {
		if !v.Type().HasAttribute(k) {
			return cty.NilVal, false
		}
		return v.GetAttr(k), true
	}
	name, ok := get("name")
	if !ok || name.Type() != cty.String || !portName.MatchString(name.AsString()) || strings.IndexFunc(name.AsString(), isLetter) < 0 {
		return np, fmt.Errorf("a named port needs a name of letters, digits, '.', '_' or '-', with at least one letter")
	}
	np.Name = name.AsString()
	proto, ok := get("protocol")
	if !ok || proto.Type() != cty.String {
		return np, fmt.Errorf("named port %q needs a protocol: tcp, udp or sctp", np.Name)
	}
	switch strings.ToLower(proto.AsString()) {
	case "tcp":
		np.Protocol = config.ProtoTCP
	case "udp":
		np.Protocol = config.ProtoUDP
	case "sctp":
		np.Protocol = config.ProtoSCTP
	default:
		return np, fmt.Errorf("named port %q: protocol %q is not tcp, udp or sctp", np.Name, proto.AsString())
	}
	port, ok := get("port")
	if !ok || port.Type() != cty.Number {
		return np, fmt.Errorf("named port %q needs a port number", np.Name)
	}
	n, acc := port.AsBigFloat().Int64()
	if acc != 0 || n < 1 || n > 65535 {
		return np, fmt.Errorf("named port %q: port is a number 1-65535", np.Name)
	}
	np.Port = uint16(n)
	if len(v.Type().AttributeTypes()) > 3 {
		return np, fmt.Errorf("named port %q: only name, protocol and port are allowed", np.Name)
	}
	return np, nil
}

// checkStages applies Calico's rules for pre-DNAT and untracked policies,
// naming the fields as the file spells them.
func (b *builder) checkStages(p *config.Policy, preDNAT, doNotTrack, applyOnForward string) {
	switch {
	case p.PreDNAT && p.DoNotTrack:
		b.diags = append(b.diags, errAt(p.DeclRange, "Pre-DNAT and untracked together", "A policy sets %s or %s, not both.", preDNAT, doNotTrack))
	case (p.PreDNAT || p.DoNotTrack) && !p.ApplyOnForward:
		name := preDNAT
		if p.DoNotTrack {
			name = doNotTrack
		}
		b.diags = append(b.diags, errAt(p.DeclRange, name+" needs "+applyOnForward, "A %s policy also governs forwarded traffic; set %s = true, as Calico requires.", name, applyOnForward))
	case p.PreDNAT && (len(p.Egress) > 0 || p.Applies(config.Egress)):
		b.diags = append(b.diags, errAt(p.DeclRange, "Pre-DNAT policy with egress", "A pre-DNAT policy applies to ingress only; drop its egress rules and types."))
	}
}

// order reads a policy's or tier's order.
func (b *builder) order(a *hcl.Attribute) *float64 {
	f, diags := numberAttr(a)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	o, _ := f.Float64()
	return &o
}

// defaultTypes is Calico's types defaulting: egress rules only → egress;
// both → both; otherwise ingress.
func defaultTypes(p *config.Policy) []config.Direction {
	switch {
	case len(p.Egress) > 0 && len(p.Ingress) == 0:
		return []config.Direction{config.Egress}
	case len(p.Egress) > 0:
		return []config.Direction{config.Ingress, config.Egress}
	}
	return []config.Direction{config.Ingress}
}

// boolean reads true or false.
func (b *builder) boolean(a *hcl.Attribute) bool {
	v, diags := value(a)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return false
	}
	if v.Type() != cty.Bool {
		b.diags = append(b.diags, errAt(a.Expr.Range(), "Expected true or false", "%s is true or false.", a.Name))
		return false
	}
	return v.True()
}

// strings reads a list of strings.
func (b *builder) strings(a *hcl.Attribute) []string {
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	var out []string
	for _, it := range items {
		if it.val.Type() != cty.String {
			b.diags = append(b.diags, errAt(it.rng, "Expected a string", "Each element of %q must be a quoted string.", a.Name))
			continue
		}
		out = append(out, it.val.AsString())
	}
	return out
}

func (b *builder) str(a *hcl.Attribute) string {
	s, diags := stringAttr(a)
	b.diags = append(b.diags, diags...)
	return s
}

func (b *builder) labels(a *hcl.Attribute) map[string]string {
	l, diags := labelsAttr(a)
	b.diags = append(b.diags, diags...)
	if l == nil {
		l = map[string]string{}
	}
	return l
}

// validName checks an object name: it becomes part of kernel chain and set
// names, so it is limited to letters, digits and . _ -.
func (b *builder) validName(kind, name string, rng hcl.Range) bool {
	ok := name != "" && len(name) <= 253
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			ok = false
		}
	}
	if !ok {
		b.diags = append(b.diags, errAt(rng, "Invalid name", "The %s name %q must be 1-253 letters, digits, '.', '_' or '-' (as long as Calico's names).", kind, name))
	}
	return ok
}

// unique records a named object and reports a duplicate, naming both places.
func (b *builder) unique(kind, name string, rng hcl.Range) bool {
	key := kind + " " + name
	if prev, dup := b.seen[key]; dup {
		b.diags = append(b.diags, duplicate(kind, name, rng, prev))
		return false
	}
	b.seen[key] = rng
	b.declared = append(b.declared, declared{kind, name, rng})
	return true
}

func duplicate(kind, name string, rng, prev hcl.Range) *hcl.Diagnostic {
	what := fmt.Sprintf("%s %q", strings.ReplaceAll(kind, "_", " "), name)
	if name == "" {
		what = kind + " block"
	}
	one := "All files of the directory form one configuration; keep one."
	if IsDatastore(rng.Filename) || IsDatastore(prev.Filename) {
		one = "The files and the etcd datastore form one configuration; keep one (files may add local policies, under names of their own)."
	}
	return errAt(rng, "Duplicate "+strings.ReplaceAll(kind, "_", " "),
		"The %s is already declared at %s. %s", what, prev, one)
}
