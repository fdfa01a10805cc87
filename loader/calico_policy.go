package loader

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hostwall/hostwall/config"
)

func unwrapSeq(e *yamlExpr) []ast.Node {
	seq, ok := unwrap(e.node, e.anchors).(*ast.SequenceNode)
	if !ok {
		return nil
	}
	return seq.Values
}

func (b *builder) calicoGNP(m *calicoMeta, spec *yamlBody) {
	b.calicoPolicy(m, spec, calicoGNPSchema, "")
}

// calicoStagedGNP reads a StagedGlobalNetworkPolicy: a GlobalNetworkPolicy
// with spec.stagedAction, Set (the default: it would add the policy, or
// replace the enforced one of its name) or Delete (it would take that one
// away).
func (b *builder) calicoStagedGNP(m *calicoMeta, spec *yamlBody) {
	b.calicoPolicy(m, spec, calicoStagedGNPSchema, config.StagedSet)
}

// calicoPolicy reads a GlobalNetworkPolicy's spec, or a staged one's.
func (b *builder) calicoPolicy(m *calicoMeta, spec *yamlBody, schema *hcl.BodySchema, staged config.StagedAction) {
	c := b.calicoContent(spec, schema)
	kind := "policy"
	if staged != "" {
		kind = "staged policy"
	}
	name := m.name
	if t := c.Attributes["tier"]; t == nil || b.str(t) == "" || b.str(t) == config.DefaultTier {
		name = clientPolicyName(name)
	}
	if !b.unique(kind, name, m.nameRange) {
		return
	}
	p := &config.Policy{Name: name, Tier: config.DefaultTier, Selector: config.All(), DeclRange: m.nameRange, Staged: staged}
	if a := c.Attributes["stagedAction"]; a != nil && staged != "" {
		switch v := b.str(a); v {
		case "Set", "":
		case "Delete":
			p.Staged = config.StagedDelete
		default:
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid stagedAction",
				"spec.stagedAction is Set or Delete (as Calico validates it), not %q.%s", v, meant(v, "Set", "Delete")))
		}
	}
	if a := c.Attributes["tier"]; a != nil {
		if t := b.str(a); t != "" {
			p.Tier = t
		}
		if p.Tier != config.DefaultTier {
			b.tierRefs = append(b.tierRefs, tierRef{p.Tier, a.Expr.Range(), p.Name})
		}
	}
	switch {
	case strings.HasPrefix(m.name, "knp.default."):
		b.diags = append(b.diags, errAt(m.nameRange, "Reserved policy name", "Names starting with knp.default. are reserved for Kubernetes network policies."))
	case p.Tier == config.DefaultTier && strings.Contains(m.name, ".") && !strings.HasPrefix(m.name, "default."):
		b.diags = append(b.diags, errAt(m.nameRange, "Policy name with a dot",
			"In Calico a dot separates a policy's tier from its name; %q would be in tier %q. Name it without dots, or set spec.tier.", m.name, strings.SplitN(m.name, ".", 2)[0]))
	}
	if p.Tier != config.DefaultTier && !strings.HasPrefix(m.name, p.Tier+".") {
		b.diags = append(b.diags, errAt(m.nameRange, "Policy name lacks its tier prefix",
			"A GlobalNetworkPolicy in tier %q must be named %q, as Calico requires.", p.Tier, p.Tier+"."+m.name))
	}
	if a := c.Attributes["selector"]; a != nil {
		if sel := b.calicoSelector(a); sel != nil {
			p.Selector = sel
		}
	}
	if a := c.Attributes["order"]; a != nil {
		p.Order = b.order(a)
	}
	for _, dir := range []string{"ingress", "egress"} {
		a := c.Attributes[dir]
		if a == nil {
			continue
		}
		for _, item := range b.items(spec, a) {
			r := b.calicoRule(item)
			if r == nil {
				continue
			}
			if dir == "ingress" {
				p.Ingress = append(p.Ingress, r)
			} else {
				p.Egress = append(p.Egress, r)
			}
			b.checkDomains(r, dir == "ingress", "domains", "nets", "selector", "source", "destination")
			if dir == "ingress" && len(r.Source.Domains) > 0 {
				b.diags = append(b.diags, errAt(r.Source.DomainsRange, "Invalid domains",
					"Calico takes domains in an egress rule's destination alone; hostwall's own HCL or YAML also takes them in an ingress rule's source."))
			}
		}
	}
	p.Types = b.calicoTypes(c.Attributes["types"], p)
	flags := map[string]bool{}
	for _, name := range []string{"applyOnForward", "preDNAT", "doNotTrack"} {
		if a := c.Attributes[name]; a != nil {
			v, diags := value(a)
			b.diags = append(b.diags, diags...)
			if !diags.HasErrors() {
				if v.Type() != cty.Bool {
					b.diags = append(b.diags, errAt(a.Expr.Range(), "Expected true or false", "%s is true or false.", name))
				} else {
					flags[name] = v.True()
				}
			}
		}
	}
	p.ApplyOnForward, p.PreDNAT, p.DoNotTrack = flags["applyOnForward"], flags["preDNAT"], flags["doNotTrack"]
	b.checkStages(p, "preDNAT", "doNotTrack", "applyOnForward")
	if a := c.Attributes["performanceHints"]; a != nil {
		hints := b.strings(a)
		for i, h := range hints {
			switch {
			case h != "AssumeNeededOnEveryNode":
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid performance hint", "%q is not a performance hint Calico knows (AssumeNeededOnEveryNode).", h))
			case slices.Contains(hints[:i], h):
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Duplicate performance hint", "%q is listed twice.", h))
			}
		}
	}
	for _, name := range []string{"namespaceSelector", "serviceAccountSelector"} {
		if a := c.Attributes[name]; a != nil && b.str(a) != "" {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Not supported: "+name, "%s", notSupported(name)))
		}
	}
	b.cfg.Policies = append(b.cfg.Policies, p)
}

// calicoTypes reads Ingress/Egress, or defaults them as Calico does.
func (b *builder) calicoTypes(a *hcl.Attribute, p *config.Policy) []config.Direction {
	if a == nil {
		return defaultTypes(p)
	}
	items, diags := listAttr(a)
	b.diags = append(b.diags, diags...)
	var out []config.Direction
	for _, it := range items {
		var d config.Direction
		given := ""
		if it.val.Type() == cty.String {
			given = it.val.AsString()
			d = map[string]config.Direction{"Ingress": config.Ingress, "Egress": config.Egress}[given]
		}
		switch {
		case d == "":
			b.diags = append(b.diags, errAt(it.rng, "Invalid policy type", "types holds \"Ingress\" and \"Egress\" (exact case), not %s.%s", describe(it.val), meant(given, "Ingress", "Egress")))
		case slices.Contains(out, d):
			b.diags = append(b.diags, errAt(it.rng, "Duplicate policy type", "%q is listed twice.", d))
		default:
			out = append(out, d)
		}
	}
	for _, d := range []config.Direction{config.Ingress, config.Egress} {
		if len(p.Rules(d)) > 0 && !slices.Contains(out, d) {
			// Calico accepts this and ignores those rules.
			b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Rules for a direction the policy does not apply to",
				Detail:  fmt.Sprintf("Policy %q has %s rules but types does not include %s; as in Calico, those rules are ignored.", p.Name, d, d),
				Subject: a.Expr.Range().Ptr()})
		}
	}
	return out
}

// calicoSelector parses a policy or rule selector; global() belongs to
// namespace selectors only.
func (b *builder) calicoSelector(a *hcl.Attribute) *config.Selector {
	sel, diags := selectorAttr(a)
	b.diags = append(b.diags, diags...)
	if sel != nil && strings.Contains(sel.String(), "global()") {
		b.diags = append(b.diags, errAt(a.Expr.Range(), "global() in a selector", "global() is only meaningful in a namespaceSelector."))
		return nil
	}
	return sel
}

var annotationKey = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// calicoRuleMetadata checks a rule's annotations (they become comments
// in Calico and have no effect here).
func (b *builder) calicoRuleMetadata(parent *yamlBody, a *hcl.Attribute) {
	c := b.calicoContent(b.sub(parent, a), &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "annotations"}}})
	if an := c.Attributes["annotations"]; an != nil {
		for k := range b.labels(an) {
			if !annotationKey.MatchString(k) {
				b.diags = append(b.diags, errAt(an.Expr.Range(), "Invalid annotation key", "%q is not a valid annotation key.", k))
			}
		}
	}
}

var calicoActions = map[string]config.Action{"Allow": config.Allow, "Deny": config.Deny, "Log": config.Log, "Pass": config.Pass}

func (b *builder) calicoRule(item *yamlBody) *config.Rule {
	c := b.calicoContent(item, calicoRuleSchema)
	r := &config.Rule{DeclRange: item.at}
	if a := c.Attributes["action"]; a != nil {
		s := b.str(a)
		act, ok := calicoActions[s]
		if !ok {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid action", "action %q is not Allow, Deny, Log or Pass (exact case).%s", s, meant(s, "Allow", "Deny", "Log", "Pass")))
		}
		r.Action = act
	}
	if a := c.Attributes["protocol"]; a != nil {
		r.Protocol = b.calicoProtocol(a, false)
	}
	if a := c.Attributes["notProtocol"]; a != nil {
		r.NotProtocol = b.calicoProtocol(a, false)
	}
	if a := c.Attributes["ipVersion"]; a != nil {
		if f, diags := numberAttr(a); diags.HasErrors() {
			b.diags = append(b.diags, diags...)
		} else if v, acc := f.Int64(); acc != 0 || (v != 4 && v != 6) {
			b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid IP version", "ipVersion is 4 or 6."))
		} else {
			r.IPVersion = int(v)
		}
	}
	for _, name := range []string{"icmp", "notICMP"} {
		if a := c.Attributes[name]; a != nil {
			m := b.calicoICMP(b.sub(item, a))
			if name == "icmp" {
				r.ICMP = m
			} else {
				r.NotICMP = m
			}
		}
	}
	for _, name := range []string{"source", "destination"} {
		if a := c.Attributes[name]; a != nil {
			e := b.calicoEntity(b.sub(item, a), r)
			if name == "source" {
				r.Source = e
			} else {
				r.Destination = e
			}
		}
	}
	if a := c.Attributes["metadata"]; a != nil {
		b.calicoRuleMetadata(item, a)
	}
	if a := c.Attributes["http"]; a != nil {
		b.diags = append(b.diags, errAt(a.NameRange, "Not supported: http", "HTTP matches need Calico's application layer; hostwall filters packets."))
	}
	b.checkRule(r, item.at)
	b.calicoOneFamily(r, item.at)
	return r
}

// calicoOneFamily enforces Calico's rule that all networks of a rule are of
// one IP version.
func (b *builder) calicoOneFamily(r *config.Rule, rng hcl.Range) {
	var all []netip.Prefix
	for _, e := range []config.Entity{r.Source, r.Destination} {
		all = append(append(all, e.Nets...), e.NotNets...)
	}
	for _, n := range all {
		if n.Addr().Is4() != all[0].Addr().Is4() {
			b.diags = append(b.diags, errAt(rng, "Rule mixes IPv4 and IPv6 networks", "Calico requires one IP version per rule; split it into two rules."))
			return
		}
	}
}

func (b *builder) calicoICMP(body *yamlBody) *config.ICMPMatch {
	c := b.calicoContent(body, calicoICMPSchema)
	m := &config.ICMPMatch{}
	get := func(name string, max int64) (uint8, bool) {
		a := c.Attributes[name]
		if a == nil {
			return 0, false
		}
		v, f, ok := b.wholeNumber(a, 0, max)
		if !ok {
			if f != nil {
				b.diags = append(b.diags, errAt(a.Expr.Range(), "Invalid ICMP "+name, "The ICMP %s is a number 0-%d.", name, max))
			}
			return 0, false
		}
		return uint8(v), true
	}
	t, hasType := get("type", 254)
	code, hasCode := get("code", 255)
	m.Type = t
	if hasCode {
		m.Code = &code
		if !hasType {
			b.diags = append(b.diags, errAt(body.at, "ICMP code without a type", "Give the ICMP type the code belongs to."))
		}
	}
	if !hasType && !hasCode {
		return nil // {}: no ICMP condition
	}
	return m
}

func (b *builder) calicoEntity(body *yamlBody, r *config.Rule) config.Entity {
	c := b.calicoContent(body, calicoEntitySchema)
	var e config.Entity
	if a := c.Attributes["domains"]; a != nil {
		e.Domains, e.DomainsRange = b.domains(a, "domains"), a.NameRange
	}
	for _, name := range []string{"nets", "notNets"} {
		if a := c.Attributes[name]; a != nil {
			nets, diags := netsAttr(a)
			b.diags = append(b.diags, diags...)
			for _, n := range nets {
				if name == "notNets" && n.Bits() == 0 {
					b.diags = append(b.diags, errAt(a.Expr.Range(), "notNets matches everything",
						"notNets %s excludes every address of its family, so the rule can never match; Calico refuses it.", n))
				}
			}
			if name == "nets" {
				e.Nets = nets
			} else {
				e.NotNets = nets
			}
		}
	}
	for _, name := range []string{"selector", "notSelector"} {
		if a := c.Attributes[name]; a != nil {
			sel := b.calicoSelector(a)
			if name == "selector" {
				e.Selector, e.SelectorRange = sel, a.Expr.Range()
			} else {
				e.NotSelector, e.NotSelectorRange = sel, a.Expr.Range()
			}
		}
	}
	for _, name := range []string{"ports", "notPorts"} {
		a := c.Attributes[name]
		if a == nil {
			continue
		}
		into, names := &e.Ports, &e.NamedPorts
		if name == "notPorts" {
			into, names = &e.NotPorts, &e.NotNamedPorts
		}
		b.calicoPorts(a, into, names, true)
		// Numeric ports need a protocol that has them (named ports do
		// not: their endpoint says which); an empty list is fine.
		if len(*into) > 0 && (r.Protocol == nil || (r.Protocol.Number != config.ProtoTCP && r.Protocol.Number != config.ProtoUDP && r.Protocol.Number != config.ProtoSCTP)) {
			b.diags = append(b.diags, errAt(a.NameRange, "Ports need a protocol with ports", "Calico allows port numbers only with protocol TCP, UDP or SCTP."))
		}
	}
	for _, name := range []string{"namespaceSelector", "serviceAccounts", "services"} {
		if a := c.Attributes[name]; a != nil {
			b.diags = append(b.diags, errAt(a.NameRange, "Not supported: "+name, "%s", notSupported(name)))
		}
	}
	return e
}

// notSupported says why a Calico field about Kubernetes is refused rather
// than read: hostwall would have to decide how it matches endpoints that
// are in no namespace, and Calico's answer is not "never".
func notSupported(name string) string {
	switch name {
	case "namespaceSelector":
		return "hostwall does not evaluate namespaceSelector. Calico matches it against the labels of an endpoint's namespace, and a host endpoint is in none: a selector that needs a label (env == 'prod') is false for it, and one that excludes one (!has(env), all()) is true. Remove it, and write what should select host endpoints in selector."
	case "serviceAccountSelector", "serviceAccounts":
		return "hostwall does not evaluate " + name + ": Calico matches it against a workload's Kubernetes service account, and a host endpoint has none. Remove it, and select host endpoints by their labels."
	case "services":
		return "hostwall does not evaluate services: a Kubernetes service's endpoints are workloads, not host endpoints. Remove it, and list the addresses in nets (or a GlobalNetworkSet)."
	}
	return name + " is not supported."
}
