package loader

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hostwall/hostwall/config"
)

// Calico v3 resources (apiVersion projectcalico.org/v3), decoded into the
// same model as native files, with Calico's validation: exact-case actions
// and protocols, masked rule networks, one IP version per rule, ports only
// with TCP/UDP/SCTP, tier-prefixed policy names. Kinds that never govern
// host endpoints are skipped with a warning, so a whole `calicoctl get -o
// yaml` export can be dropped in; an unknown kind, or a field hostwall does
// not implement, is an error — never dropped silently.

const calicoAPIVersion = "projectcalico.org/v3"

// calicoSkipped are kinds that never govern host endpoints.
var calicoSkipped = []string{
	"NetworkPolicy", "NetworkSet", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy",
	"BGPPeer", "BGPConfiguration", "BGPFilter", "IPPool", "IPReservation", "IPAMConfiguration", "BlockAffinity",
	"Profile", "WorkloadEndpoint", "Node", "KubeControllersConfiguration", "ClusterInformation", "CalicoNodeStatus",
	"GlobalReport", "GlobalAlert", "GlobalThreatFeed", "LicenseKey", "KubernetesNetworkPolicy",
}

var (
	calicoTopSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "apiVersion", Required: true}, {Name: "kind", Required: true}, {Name: "metadata"}, {Name: "spec"}, {Name: "items"},
	}}
	calicoMetaSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "name", Required: true}, {Name: "namespace"}, {Name: "labels"}, {Name: "annotations"},
		// Set by the API server in exports; meaningless here.
		{Name: "resourceVersion"}, {Name: "uid"}, {Name: "creationTimestamp"}, {Name: "generation"}, {Name: "managedFields"},
		{Name: "ownerReferences"}, {Name: "finalizers"}, {Name: "generateName"}, {Name: "selfLink"},
	}}
	calicoHEPSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "node"}, {Name: "interfaceName"}, {Name: "expectedIPs"}, {Name: "profiles"}, {Name: "ports"},
	}}
	calicoGNPSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "tier"}, {Name: "order"}, {Name: "selector"}, {Name: "types"}, {Name: "ingress"}, {Name: "egress"},
		{Name: "applyOnForward"}, {Name: "preDNAT"}, {Name: "doNotTrack"}, {Name: "namespaceSelector"},
		{Name: "serviceAccountSelector"}, {Name: "performanceHints"},
	}}
	calicoStagedGNPSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{{Name: "stagedAction"}}, calicoGNPSchema.Attributes...)}
	calicoRuleSchema      = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "action", Required: true}, {Name: "protocol"}, {Name: "notProtocol"}, {Name: "ipVersion"},
		{Name: "icmp"}, {Name: "notICMP"}, {Name: "source"}, {Name: "destination"}, {Name: "http"}, {Name: "metadata"},
	}}
	calicoEntitySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "nets"}, {Name: "notNets"}, {Name: "selector"}, {Name: "notSelector"}, {Name: "ports"}, {Name: "notPorts"}, {Name: "domains"},
		{Name: "namespaceSelector"}, {Name: "serviceAccounts"}, {Name: "services"},
	}}
	calicoICMPSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "code"}}}
	calicoGNSSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "nets"}, {Name: "allowedEgressDomains"}}}
	calicoTierSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "order"}, {Name: "defaultAction"}}}
	calicoPortSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "port", Required: true}, {Name: "protocol", Required: true}}}
	calicoProtoPort  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "protocol"}, {Name: "port", Required: true}, {Name: "net"}}}
)

// isCalico reports whether a YAML document is a Calico resource.
func isCalico(b *yamlBody) bool {
	entries, _ := b.entries()
	for _, kv := range entries {
		if strings.EqualFold(keyOf(kv), "apiVersion") {
			return true
		}
	}
	return false
}

// sub returns the body of a mapping-valued attribute.
func (b *builder) sub(parent *yamlBody, a *hcl.Attribute) *yamlBody {
	e := a.Expr.(*yamlExpr)
	return &yamlBody{file: parent.file, node: e.node, at: a.NameRange, anchors: parent.anchors, fold: parent.fold}
}

// items returns the bodies of a sequence-valued attribute.
func (b *builder) items(parent *yamlBody, a *hcl.Attribute) []*yamlBody {
	e := a.Expr.(*yamlExpr)
	ranges := e.ElementRanges()
	if ranges == nil {
		if v, _ := e.Value(nil); !v.IsNull() {
			b.diags = append(b.diags, errAt(e.Range(), "Expected a list", "%q must be a list.", a.Name))
		}
		return nil
	}
	seq := unwrapSeq(e)
	out := make([]*yamlBody, len(seq))
	for i, n := range seq {
		out[i] = &yamlBody{file: parent.file, node: n, at: ranges[i], anchors: parent.anchors, fold: parent.fold}
	}
	return out
}

func (b *builder) calicoContent(body *yamlBody, schema *hcl.BodySchema) *hcl.BodyContent {
	c, diags := body.Content(schema)
	b.diags = append(b.diags, diags...)
	return c
}

func (b *builder) decodeCalico(body *yamlBody) {
	body.fold = true
	c := b.calicoContent(body, calicoTopSchema)
	if c.Attributes["apiVersion"] == nil || c.Attributes["kind"] == nil {
		return
	}
	if v := b.str(c.Attributes["apiVersion"]); v != calicoAPIVersion {
		b.diags = append(b.diags, errAt(c.Attributes["apiVersion"].Expr.Range(), "Unsupported apiVersion",
			"apiVersion %q is not %q; hostwall reads Calico v3 resources (export them with calicoctl get -o yaml).", v, calicoAPIVersion))
		return
	}
	kindAttr := c.Attributes["kind"]
	kind := b.str(kindAttr)
	if IsDatastore(body.file) && !b.checkDatastoreKind(body.file, kind, kindAttr.Expr.Range()) {
		return
	}
	if kind == "List" || strings.HasSuffix(kind, "List") {
		if a := c.Attributes["items"]; a != nil {
			for _, item := range b.items(body, a) {
				b.decodeCalico(item)
			}
		}
		return
	}
	if c.Attributes["items"] != nil {
		b.diags = append(b.diags, errAt(c.Attributes["items"].NameRange, "Unsupported argument", "Only a List has items."))
	}
	if slices.Contains(calicoSkipped, kind) {
		b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Calico kind skipped",
			Detail:  fmt.Sprintf("A %s never governs host endpoints; hostwall skips it.", kind),
			Subject: kindAttr.Expr.Range().Ptr()})
		return
	}
	decoders := map[string]func(*calicoMeta, *yamlBody){
		"HostEndpoint": b.calicoHEP, "GlobalNetworkPolicy": b.calicoGNP, "GlobalNetworkSet": b.calicoGNS,
		"StagedGlobalNetworkPolicy": b.calicoStagedGNP,
		"FelixConfiguration":        b.calicoFelix, "Tier": b.calicoTier,
	}
	dec, ok := decoders[kind]
	if !ok {
		b.diags = append(b.diags, errAt(kindAttr.Expr.Range(), "Unknown Calico kind",
			"hostwall reads HostEndpoint, GlobalNetworkPolicy, StagedGlobalNetworkPolicy, GlobalNetworkSet, FelixConfiguration, Tier and List, and skips the kinds that never govern host endpoints; %q is neither.", kind))
		return
	}
	if c.Attributes["metadata"] == nil {
		b.diags = append(b.diags, errAt(body.at, "Missing metadata", "A %s needs metadata with a name.", kind))
		return
	}
	meta := b.calicoMetadata(body, c.Attributes["metadata"], kind)
	if meta == nil {
		return
	}
	if IsDatastore(body.file) && !b.checkDatastoreName(body.file, meta) {
		return
	}
	spec := &yamlBody{file: body.file, at: kindAttr.NameRange, anchors: body.anchors, fold: body.fold}
	if a := c.Attributes["spec"]; a != nil {
		spec = b.sub(body, a)
	}
	dec(meta, spec)
}

type calicoMeta struct {
	name      string
	nameRange hcl.Range
	labels    map[string]string
	namespace string
}

var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// tierLabel is the label libcalico-go gives a policy of a tier other than
// default, naming it (exports and the datastore hold it).
const tierLabel = "projectcalico.org/tier"

func (b *builder) calicoMetadata(parent *yamlBody, a *hcl.Attribute, kind string) *calicoMeta {
	c := b.calicoContent(b.sub(parent, a), calicoMetaSchema)
	if c.Attributes["name"] == nil {
		return nil
	}
	m := &calicoMeta{name: b.str(c.Attributes["name"]), nameRange: c.Attributes["name"].Expr.Range(), labels: map[string]string{}}
	if !dnsSubdomain.MatchString(m.name) || len(m.name) > 253 {
		b.diags = append(b.diags, errAt(m.nameRange, "Invalid name",
			"%q is not a valid Calico resource name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit.", m.name))
		return nil
	}
	if l := c.Attributes["labels"]; l != nil {
		labels, diags := labelsAs(l, true)
		b.diags = append(b.diags, diags...)
		if labels != nil {
			m.labels = labels
		}
		policy := kind == "GlobalNetworkPolicy" || kind == "StagedGlobalNetworkPolicy"
		if _, ok := m.labels[tierLabel]; ok && policy {
			delete(m.labels, tierLabel) // Calico's own, kept with the policy's tier
		}
		for k := range m.labels {
			if strings.HasPrefix(k, "projectcalico.org/") {
				b.diags = append(b.diags, errAt(l.Expr.Range(), "Reserved label", "Label %q uses the reserved prefix projectcalico.org/.", k))
			}
		}
	}
	if ns := c.Attributes["namespace"]; ns != nil {
		m.namespace = b.str(ns)
	}
	return m
}

func (b *builder) calicoHEP(m *calicoMeta, spec *yamlBody) {
	c := b.calicoContent(spec, calicoHEPSchema)
	if !b.unique("host_endpoint", m.name, m.nameRange) {
		return
	}
	hep := &config.HostEndpoint{Name: m.name, Labels: m.labels, DeclRange: m.nameRange, Calico: true}
	if a := c.Attributes["node"]; a != nil {
		hep.Node = b.str(a)
	}
	if hep.Node == "" {
		b.diags = append(b.diags, errAt(m.nameRange, "Host endpoint without a node",
			"Calico requires spec.node: the host the endpoint belongs to (hostwall compares it with the host name, --host-name)."))
	}
	if a := c.Attributes["interfaceName"]; a != nil {
		hep.Interface = b.str(a)
		if hep.Interface != "" {
			b.checkInterface(hep.Interface, a.Expr.Range())
		}
	}
	if a := c.Attributes["expectedIPs"]; a != nil {
		nets, diags := netsAttr(a)
		b.diags = append(b.diags, diags...)
		for _, n := range nets {
			if n.IsSingleIP() {
				hep.ExpectedIPs = append(hep.ExpectedIPs, n.Addr())
			} else {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Expected IP is a network", "expectedIPs holds single addresses; %s is a network.", n))
			}
		}
	}
	if hep.Interface == "" && len(hep.ExpectedIPs) == 0 {
		b.diags = append(b.diags, errAt(m.nameRange, "Host endpoint without an interface",
			"Give spec.interfaceName (or \"*\"), or expectedIPs."))
	}
	// One with expectedIPs alone is refused by the compile of its own host
	// only: on the others its labels and addresses are all that count (a
	// fleet's datastore holds every host's endpoints).
	if a := c.Attributes["profiles"]; a != nil {
		hep.Profiles = b.strings(a)
		for _, p := range hep.Profiles {
			if !dnsSubdomain.MatchString(p) {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid profile name", "%q is not a valid profile name.", p))
			}
		}
	}
	if a := c.Attributes["ports"]; a != nil {
		for _, item := range b.items(spec, a) {
			pc := b.calicoContent(item, calicoPortSchema)
			np := config.NamedPort{}
			ok := true
			if n := pc.Attributes["name"]; n == nil || b.str(n) == "" {
				b.diags = append(b.diags, errAt(item.at, "Named port without a name", "Each entry of spec.ports needs a name."))
				ok = false
			} else {
				np.Name = b.str(n)
			}
			if p := pc.Attributes["protocol"]; p != nil {
				if proto := b.calicoProtocol(p, true); proto != nil {
					np.Protocol = proto.Number
				} else {
					ok = false
				}
			}
			if p := pc.Attributes["port"]; p != nil {
				var r []config.PortRange
				b.calicoPorts(p, &r, nil, false)
				if len(r) == 1 && r[0].Lo == r[0].Hi {
					np.Port = r[0].Lo
				} else {
					ok = false
				}
			}
			if ok {
				hep.Ports = append(hep.Ports, np)
			}
		}
	}
	b.cfg.Endpoints = append(b.cfg.Endpoints, hep)
}

func (b *builder) calicoGNS(m *calicoMeta, spec *yamlBody) {
	c := b.calicoContent(spec, calicoGNSSchema)
	if !b.unique("network_set", m.name, m.nameRange) {
		return
	}
	ns := &config.NetworkSet{Name: m.name, Labels: m.labels, DeclRange: m.nameRange}
	if a := c.Attributes["nets"]; a != nil {
		// Network sets use Calico's lenient "cidr" validator: host bits and
		// bare addresses are fine, and are masked.
		items, diags := listAttr(a)
		b.diags = append(b.diags, diags...)
		for _, it := range items {
			s := ""
			if it.val.Type() == cty.String {
				s = it.val.AsString()
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					b.diags = append(b.diags, errAt(it.rng, "Invalid network", "%q is not an IP address or CIDR.", s))
					continue
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			ns.Nets = append(ns.Nets, p.Masked())
		}
	}
	if a := c.Attributes["allowedEgressDomains"]; a != nil {
		ns.Domains = b.domains(a, "allowedEgressDomains")
	}
	b.cfg.NetworkSets = append(b.cfg.NetworkSets, ns)
}

func (b *builder) calicoTier(m *calicoMeta, spec *yamlBody) {
	c := b.calicoContent(spec, calicoTierSchema)
	if m.name == config.DefaultTier {
		return // the built-in default tier, as exported
	}
	if !b.unique("tier", m.name, m.nameRange) {
		return
	}
	t := &config.Tier{Name: m.name, DefaultAction: config.Deny, DeclRange: m.nameRange}
	if a := c.Attributes["order"]; a != nil {
		t.Order = b.order(a)
	}
	if a := c.Attributes["defaultAction"]; a != nil {
		switch v := b.str(a); v {
		case "Deny":
		case "Pass":
			t.DefaultAction = config.Pass
		default:
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid default action", "A tier's defaultAction is Deny or Pass, not %q.%s", v, meant(v, "Deny", "Pass")))
		}
	}
	b.cfg.Tiers = append(b.cfg.Tiers, t)
}

// felixUsed are the FelixConfiguration fields hostwall uses.
var felixUsed = map[string]bool{"failsafeInboundHostPorts": true, "failsafeOutboundHostPorts": true,
	"interfacePrefix": true, "defaultEndpointToHostAction": true}

func (b *builder) calicoFelix(m *calicoMeta, spec *yamlBody) {
	node, perNode := strings.CutPrefix(m.name, "node.")
	if m.name != "default" && !perNode {
		b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "FelixConfiguration skipped",
			Detail:  fmt.Sprintf("Only \"default\" and \"node.<name>\" configure Felix; %q is not read.", m.name),
			Subject: m.nameRange.Ptr()})
		return
	}
	entries, diags := spec.entries()
	b.diags = append(b.diags, diags...)
	var ignored []string
	fs := config.DefaultFailsafe()
	var in, out *[]config.ProtoPort
	var prefixes *[]string
	var act config.ToHostAction
	for _, kv := range entries {
		name := keyOf(kv)
		if !felixUsed[name] {
			ignored = append(ignored, name)
			continue
		}
		attr := &hcl.Attribute{Name: name, NameRange: nodeRange(spec.file, kv.Key), Expr: &yamlExpr{file: spec.file, node: kv.Value, anchors: spec.anchors}}
		switch name {
		case "interfacePrefix":
			if list, ok := b.calicoPrefixes(attr); ok {
				prefixes = &list
			}
			continue
		case "defaultEndpointToHostAction":
			if v, ok := b.strOK(attr); ok {
				act = b.toHostAction(v, attr.Expr.Range(), true)
			}
			continue
		}
		list := []config.ProtoPort{}
		for _, item := range b.items(spec, attr) {
			if pp, ok := b.calicoProtoPort(item); ok {
				list = append(list, pp)
			}
		}
		if name == "failsafeInboundHostPorts" {
			fs.Inbound, in = list, &list
		} else {
			fs.Outbound, out = list, &list
		}
	}
	if len(ignored) > 0 {
		b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "FelixConfiguration fields ignored",
			Detail: fmt.Sprintf("hostwall uses only the failsafe ports, interfacePrefix and defaultEndpointToHostAction of a FelixConfiguration; %s have no effect here.",
				strings.Join(ignored, ", ")),
			Subject: m.nameRange.Ptr()})
	}
	switch {
	case in == nil && out == nil:
	case perNode:
		putNode(b, &b.cfg.NodeFailsafe, "failsafe", node, m.nameRange, config.NodeFailsafe{Inbound: in, Outbound: out, DeclRange: m.nameRange})
	case b.unique("failsafe", "", m.nameRange):
		fs.DeclRange = m.nameRange
		b.cfg.Failsafe = fs
	}
	switch {
	case prefixes == nil && act == "":
	case perNode:
		putNode(b, &b.cfg.NodeWorkloads, "workloads", node, m.nameRange, config.NodeWorkloads{Prefixes: prefixes, ToHost: act, DeclRange: m.nameRange, Calico: true})
	case b.unique("workloads", "", m.nameRange):
		w := config.Workloads{ToHost: act, DeclRange: m.nameRange, Calico: true}
		if prefixes != nil {
			w.Prefixes = *prefixes
		}
		b.cfg.Workloads = w
	}
}

// calicoPrefixes reads Felix's interfacePrefix: a comma-separated list of
// interface name prefixes; ok is false when it is not a string.
func (b *builder) calicoPrefixes(a *hcl.Attribute) ([]string, bool) {
	v, ok := b.strOK(a)
	if !ok {
		return nil, false
	}
	items := strings.Split(v, ",")
	var out []string
	for i, p := range items {
		if p == "" && len(items) > 1 {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Empty interface prefix",
				"Item %d of interfacePrefix %q is empty; write the prefixes separated by single commas, such as \"cali,tap\".", i+1, v))
			continue
		}
		if p, ok := b.workloadPrefix(p, a.Expr.Range(), true); ok {
			out = append(out, p)
		}
	}
	b.maxPrefixes(len(items), a.Expr.Range(), "interfacePrefix")
	return config.NormalizePrefixes(out), true
}

// putNode records in *m one node's override of kind (failsafe,
// workloads) declared at rng, unless the node has one already (an error
// naming both).
func putNode[V any](b *builder, m *map[string]V, kind, node string, rng hcl.Range, v V) {
	if !b.unique(kind, node, rng) {
		return
	}
	if *m == nil {
		*m = map[string]V{}
	}
	(*m)[node] = v
}

// calicoProtoPort reads {protocol, port, net}; protocol defaults to TCP and
// port 0 is allowed, as in Calico.
func (b *builder) calicoProtoPort(item *yamlBody) (config.ProtoPort, bool) {
	c := b.calicoContent(item, calicoProtoPort)
	pp := config.ProtoPort{Protocol: config.ProtoTCP}
	ok := true
	if a := c.Attributes["protocol"]; a != nil {
		// Either case: Calico lower-cases these for Felix, and its docs
		// and CI write them lower-case.
		switch v := b.str(a); strings.ToUpper(v) {
		case "TCP":
		case "UDP":
			pp.Protocol = config.ProtoUDP
		case "SCTP":
			pp.Protocol = config.ProtoSCTP
		default:
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid protocol", "A failsafe entry's protocol is TCP, UDP or SCTP, not %q.%s", v, meant(v, "TCP", "UDP", "SCTP")))
			ok = false
		}
	}
	if a := c.Attributes["port"]; a != nil {
		f, diags := numberAttr(a)
		b.diags = append(b.diags, diags...)
		if !diags.HasErrors() {
			v, acc := f.Int64()
			if acc != 0 || v < 0 || v > 65535 {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid port", "A port is a number 0-65535."))
				ok = false
			}
			pp.Port = uint16(v)
		} else {
			ok = false
		}
	} else {
		ok = false
	}
	if a := c.Attributes["net"]; a != nil {
		if s := b.str(a); s != "" {
			n, d := parseNet(s, a.Expr.Range())
			if d != nil {
				b.diags = append(b.diags, d)
				ok = false
			}
			pp.Net = n
		}
	}
	return pp, ok
}

// calicoProtocol reads a protocol as Calico spells it: TCP, UDP, ICMP,
// ICMPv6, SCTP, UDPLite (exact case), or 1-255 as a number or string.
func (b *builder) calicoProtocol(a *hcl.Attribute, portsOnly bool) *config.Protocol {
	v, diags := value(a)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	names := map[string]uint8{"TCP": config.ProtoTCP, "UDP": config.ProtoUDP, "ICMP": config.ProtoICMP, "ICMPv6": config.ProtoICMPv6,
		"SCTP": config.ProtoSCTP, "UDPLite": config.ProtoUDPLite}
	s, _ := scalarText(v)
	var p *config.Protocol
	if n, ok := names[s]; ok {
		p = &config.Protocol{Number: n, Name: strings.ToLower(s)}
	} else if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 255 {
		p = &config.Protocol{Number: uint8(n), Name: s}
	}
	if p == nil || portsOnly && p.Number != config.ProtoTCP && p.Number != config.ProtoUDP && p.Number != config.ProtoSCTP {
		want := "TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite (exact case) or a number 1-255"
		if portsOnly {
			want = "TCP, UDP or SCTP"
		}
		b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid protocol", "%q is not a protocol here: use %s.%s", s, want, meant(s, "TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")))
		return nil
	}
	return p
}

var portName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// calicoPorts reads Calico ports: numbers 1-65535, "first:last" ranges and
// port names (into names, when given).
func (b *builder) calicoPorts(a *hcl.Attribute, into *[]config.PortRange, names *[]string, list bool) {
	var items []item
	if list {
		var diags hcl.Diagnostics
		items, diags = listAttr(a)
		b.diags = append(b.diags, diags...)
	} else {
		v, diags := value(a)
		b.diags = append(b.diags, diags...)
		if diags.HasErrors() {
			return
		}
		items = []item{{v, a.Expr.Range()}}
	}
	for _, it := range items {
		s, _ := scalarText(it.val)
		if r, err := parsePortRange(s); err == nil {
			if r.Lo == 0 {
				b.diags = append(b.diags, errAt(it.rng, "Invalid port", "Port 0 is not valid: port numbers are 1-65535."))
				continue
			}
			*into = append(*into, r)
			continue
		}
		if portName.MatchString(s) && !strings.Contains(s, ":") && names != nil {
			*names = append(*names, s)
			continue
		}
		b.diags = append(b.diags, errAt(it.rng, "Invalid port", "%q is not a port number 1-65535, a range \"first:last\" or a port name.", s))
	}
}
