package compile

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/suggest"
	"github.com/hostwall/hostwall/ruleset"
)

// families is a set of IP families; nil means "any".
type families map[ruleset.IPFamily]bool

var bothFamilies = families{ruleset.IPv4: true, ruleset.IPv6: true}

func familySet(fs ...ruleset.IPFamily) families {
	out := families{}
	for _, f := range fs {
		out[f] = true
	}
	return out
}

// intersect narrows a by b; nil stands for every family.
func intersect(a, b families) families {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := families{}
	for f := range a {
		if b[f] {
			out[f] = true
		}
	}
	return out
}

// netFamilies is the families of a list of networks; nil for an empty list.
func netFamilies(nets []netip.Prefix) families {
	if len(nets) == 0 {
		return nil
	}
	fs := families{}
	for _, n := range nets {
		fs[familyOf(n)] = true
	}
	return fs
}

// entityFamilies is the families an entity's addresses constrain a rule to,
// as Calico infers a rule's IP version from its networks.
func entityFamilies(e config.Entity) families {
	fs := intersect(netFamilies(e.Nets), netFamilies(e.NotNets))
	if e.Selector != nil || e.NotSelector != nil || len(e.NamedPorts)+len(e.NotNamedPorts) > 0 {
		fs = intersect(fs, bothFamilies)
	}
	return fs
}

// ruleFamilies returns the families a rule applies to (nil: both, without
// needing to say so) and whether the kernel rule must be split per family.
func ruleFamilies(r *config.Rule) (fams families, split bool) {
	fams = intersect(entityFamilies(r.Source), entityFamilies(r.Destination))
	split = fams != nil
	switch r.IPVersion {
	case 4:
		fams, split = intersect(fams, familySet(ruleset.IPv4)), true
	case 6:
		fams, split = intersect(fams, familySet(ruleset.IPv6)), true
	}
	if r.Protocol != nil {
		switch r.Protocol.Number {
		case config.ProtoICMP:
			fams = intersect(fams, familySet(ruleset.IPv4))
		case config.ProtoICMPv6:
			fams = intersect(fams, familySet(ruleset.IPv6))
		}
	}
	return fams, split
}

// rule compiles one policy rule into kernel rules: one per IP family it
// needs (one rule when it names no addresses), and two where a negated ICMP
// type and code make an "or".
func (c *compiler) rule(p *config.Policy, d dirInfo, idx int, r *config.Rule) []*ruleset.Rule {
	var out []*ruleset.Rule
	for _, ms := range c.matchLists(p, d, idx, r) {
		out = appendRule(out, c.finish(p, d, idx, r, ms))
	}
	return out
}

// matchLists are the match lists of the kernel rules a policy rule
// becomes (rule), with no verdict and nothing emitted: the re-checks of a
// tier chain use them.
func (c *compiler) matchLists(p *config.Policy, d dirInfo, idx int, r *config.Rule) [][]ruleset.Match {
	c.warnUndefinedPorts(p, d, idx, r)
	for _, e := range []*config.Entity{&r.Source, &r.Destination} {
		if e.MatchesNothing() {
			c.warnOnce(fmt.Sprintf("no address %s %s %d", p.Name, d.dir, idx), &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Domain names match nothing yet",
				Detail: fmt.Sprintf("Rule %d of the %s rules of policy %q names %s, which have no address now (they did not resolve, or have no A or AAAA record): the rule matches no packet until one resolves.",
					idx+1, d.dir, p.Name, strings.Join(e.Domains, ", ")),
				Subject: e.DomainsRange.Ptr(),
			})
			return nil
		}
	}
	fams, split := ruleFamilies(r)
	if fams != nil && len(fams) == 0 {
		c.warnOnce(fmt.Sprintf("never %s %s %d", p.Name, d.dir, idx), &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Rule can never match",
			Detail: fmt.Sprintf("Rule %d of the %s rules of policy %q mixes IPv4 and IPv6 (in its networks, protocol or ip_version), so no packet matches it; split it into one rule per IP version.",
				idx+1, d.dir, p.Name),
			Subject: r.DeclRange.Ptr(),
		})
		return nil
	}
	domains := r.CountsSetDomains(d.dir)
	if !split {
		return c.alternatives(r, "", domains)
	}
	var out [][]ruleset.Match
	for _, f := range []ruleset.IPFamily{ruleset.IPv4, ruleset.IPv6} {
		if fams == nil || fams[f] {
			out = append(out, c.alternatives(r, f, domains)...)
		}
	}
	return out
}

// alternatives returns the match lists of a rule for family f ("" when
// addresses are not matched); a packet matches the rule when it matches any
// of them. Port numbers and port names of one side are alternatives; a
// negated ICMP type and code are too.
func (c *compiler) alternatives(r *config.Rule, f ruleset.IPFamily, domains bool) [][]ruleset.Match {
	var base []ruleset.Match
	sides := []struct {
		e   config.Entity
		dir ruleset.Dir
	}{{r.Source, ruleset.Src}, {r.Destination, ruleset.Dst}}
	for _, side := range sides {
		switch {
		case len(side.e.Domains) > 0:
			base = append(base, ruleset.Addr{Dir: side.dir, Family: f, Set: c.domainSet(f, side.e.Domains, side.e.Nets)})
		case len(side.e.Nets) > 0:
			base = append(base, ruleset.Addr{Dir: side.dir, Family: f, Set: c.netsSet(f, side.e.Nets)})
		}
		if len(side.e.NotNets) > 0 {
			base = append(base, ruleset.Addr{Dir: side.dir, Family: f, Set: c.netsSet(f, side.e.NotNets), Negate: true})
		}
		if side.e.Selector != nil {
			base = append(base, ruleset.Addr{Dir: side.dir, Family: f, Set: c.selectorSet(f, side.e.Selector, side.e.SelectorRange, domains && side.dir == ruleset.Dst)})
		}
		if side.e.NotSelector != nil {
			base = append(base, ruleset.Addr{Dir: side.dir, Family: f, Set: c.selectorSet(f, side.e.NotSelector, side.e.NotSelectorRange, false), Negate: true})
		}
	}
	if f != "" && len(base) == 0 {
		base = append(base, ruleset.NFProto{Family: f}) // ip_version alone
	}
	var proto uint8
	if r.Protocol != nil {
		proto = r.Protocol.Number
	}
	alts := [][]ruleset.Match{base}
	numeric := false
	for _, side := range sides {
		var options [][]ruleset.Match
		if len(side.e.Ports) > 0 {
			options = append(options, []ruleset.Match{c.portMatch(proto, side.dir, side.e.Ports, false)})
			numeric = true
		}
		if len(side.e.NamedPorts) > 0 {
			options = append(options, []ruleset.Match{ruleset.NamedPort{Dir: side.dir, Family: f, Set: c.namedPortSet(f, side.e, side.e.NamedPorts, r.Protocol)}})
		}
		var always []ruleset.Match
		if len(side.e.NotPorts) > 0 {
			always = append(always, c.portMatch(proto, side.dir, side.e.NotPorts, true))
			numeric = true
		}
		if len(side.e.NotNamedPorts) > 0 {
			always = append(always, ruleset.NamedPort{Dir: side.dir, Family: f, Set: c.namedPortSet(f, side.e, side.e.NotNamedPorts, r.Protocol), Negate: true})
		}
		if len(options) == 0 {
			options = [][]ruleset.Match{nil}
		}
		var next [][]ruleset.Match
		for _, a := range alts {
			for _, o := range options {
				next = append(next, append(append(slices.Clone(a), o...), always...))
			}
		}
		alts = next
	}
	icmpFam := ruleset.IPv4
	if r.Protocol != nil && r.Protocol.Number == config.ProtoICMPv6 {
		icmpFam = ruleset.IPv6
	}
	var tail []ruleset.Match
	if r.Protocol != nil && !numeric && r.ICMP == nil && r.NotICMP == nil {
		tail = append(tail, ruleset.L4Proto{Proto: proto})
	}
	if r.NotProtocol != nil {
		tail = append(tail, ruleset.L4Proto{Proto: r.NotProtocol.Number, Negate: true})
	}
	if r.ICMP != nil {
		tail = append(tail, ruleset.ICMPType{Family: icmpFam, Type: r.ICMP.Type})
		if r.ICMP.Code != nil {
			tail = append(tail, ruleset.ICMPCode{Family: icmpFam, Code: *r.ICMP.Code})
		}
	}
	icmpAlts := [][]ruleset.Match{nil}
	if r.NotICMP != nil {
		// not (type T and code C) = type != T, or code != C.
		icmpAlts = [][]ruleset.Match{{ruleset.ICMPType{Family: icmpFam, Type: r.NotICMP.Type, Negate: true}}}
		if r.NotICMP.Code != nil {
			icmpAlts = append(icmpAlts, []ruleset.Match{ruleset.ICMPCode{Family: icmpFam, Code: *r.NotICMP.Code, Negate: true}})
		}
	}
	var out [][]ruleset.Match
	for _, a := range alts {
		for _, ia := range icmpAlts {
			out = append(out, append(append(slices.Clone(a), tail...), ia...))
		}
	}
	return out
}

// namedPortSet returns the set of (address, protocol, port) of the named
// ports called names: of every endpoint the side's selector matches (every
// endpoint when it has none), of any node, bound to its expected IPs, and of
// the rule's protocol when it has one.
func (c *compiler) namedPortSet(f ruleset.IPFamily, e config.Entity, names []string, proto *config.Protocol) string {
	var elems []ruleset.Element
	for _, hep := range c.cfg.Endpoints {
		if e.Selector != nil && !e.Selector.Matches(c.labels(hep)) {
			continue
		}
		for _, np := range hep.Ports {
			if !slices.Contains(names, np.Name) || (proto != nil && proto.Number != np.Protocol) {
				continue
			}
			for _, a := range hep.ExpectedIPs {
				if (f == ruleset.IPv6) == a.Is6() {
					elems = append(elems, ruleset.NamedPortElement(a, np.Protocol, np.Port))
				}
			}
		}
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	key := []string{"names " + strings.Join(sorted, ",")}
	if proto != nil {
		key = append(key, fmt.Sprintf("protocol %d", proto.Number))
	}
	if e.Selector != nil {
		key = append(key, "selector "+e.Selector.String())
	}
	return c.addSet(&ruleset.Set{
		Name:     c.setName("np", familySuffix(f), key...),
		Type:     f.NamedPortType(),
		Comment:  "named ports " + strings.Join(names, ", "),
		Elements: elems,
	})
}

func appendRule(rs []*ruleset.Rule, r *ruleset.Rule) []*ruleset.Rule {
	if r == nil {
		return rs
	}
	return append(rs, r)
}

// finish gives a kernel rule its counter and the rule's action (nil: the
// rule has no place in the copy being emitted).
func (c *compiler) finish(p *config.Policy, d dirInfo, idx int, r *config.Rule, ms []ruleset.Match) *ruleset.Rule {
	kr := &ruleset.Rule{Counter: true, Matches: ms, Origin: &ruleset.Origin{Kind: ruleset.OriginPolicyRule,
		Direction: d.side(), Tier: p.Tier, Policy: p.Name, Rule: idx + 1, Action: string(r.Action), Audit: c.copy.audit}}
	if c.copy.staged {
		return c.stagedRule(p, d, r, kr)
	}
	switch r.Action {
	case config.Allow:
		kr.Verdict = c.accept(d, c.copy.tally)
		switch {
		case d.forward:
			kr.Verdict = ruleset.Verdict{Kind: ruleset.VerdictReturn} // on to the other side
		case d.stage == stageUntracked:
			kr.SetMark, kr.Notrack = AcceptMark, true
		case d.stage == stagePreDNAT:
			kr.SetMark = AcceptMark
		}
	case config.Deny:
		kr.Verdict = ruleset.Drop()
		switch {
		case c.copy.audit && c.auditReturns(d):
			// Audited where a return goes on: the tier chain logs it and
			// returns (rechecks).
			kr.Verdict = ruleset.Return()
		case c.copy.audit || c.copy.tally || c.cfg.Settings.DropLog: // an audited deny accepts, logged when the drop log is on
			kr.Verdict = ruleset.Jump(c.dropChain(kr.Origin, p, d, ms))
		}
	case config.Pass:
		// Back to the endpoint's tier chain, which sends it to the next tier.
		kr.Verdict = ruleset.Verdict{Kind: ruleset.VerdictReturn}
	case config.Log:
		label := string(d.dir)
		switch {
		case d.forward:
			label = "forwarded-" + label
		case d.stage == stageUntracked:
			label = "untracked-" + label
		case d.stage == stagePreDNAT:
			label = "pre-dnat-" + label
		}
		kr.Log = &ruleset.Log{Prefix: logPrefix(p.Name, label, idx)}
	}
	return kr
}

// dropChain emits (once) the chain a deny rule of policy p matching ms
// jumps to when the drop log is on: it logs the packet, at most the
// configured rate, and drops it. A chain, not a log rule before the deny,
// so that the deny's matches are evaluated once; a jump, not a goto, so
// that a rule looking a sharded set up can still be sent down its slot
// chains (shard). Named by the matches, not the rule's position: a rule
// inserted above leaves the deny rule itself (and its counter) alone, only
// the log's prefix changes. Two deny rules of one policy with the same
// matches share the first's chain: the second never sees a packet.
//
// In a policy's audit copy (policyChain with audit) the chain is the audit one
// (`…/audit/<tag>`): it logs, when the drop log is on, and accepts. In a
// tallying copy it first runs the staged view (`…/drop-tally/<tag>`,
// `…/audit-tally/<tag>`).
func (c *compiler) dropChain(o *ruleset.Origin, p *config.Policy, d dirInfo, ms []ruleset.Match) string {
	tag := matchesTag(ms)
	kind, verdict, does := "drop", ruleset.Drop(), "logs the drops"
	if o.Audit {
		kind, verdict, does = "audit", ruleset.Accept(), "logs and accepts the drops"
	}
	if c.copy.tally {
		kind, does = kind+"-tally", "runs the staged view, then "+does
	}
	name := kernelName("pol", p.Name, d.suffix, kind, tag)
	if c.policyChains[name] {
		return name
	}
	c.policyChains[name] = true
	var rules []*ruleset.Rule
	if c.copy.tally {
		rules = append(rules, c.tally(d, false))
	}
	if l := c.dropLog(o); l != nil {
		rules = append(rules, l)
	}
	c.t.Chains = append(c.t.Chains, &ruleset.Chain{Name: name, Owner: c.owner,
		Comment: fmt.Sprintf("policy %q, %s, %s %s: %s of rule %d", p.Name, d.side(), kind, tag, does, o.Rule),
		Rules:   append(rules, &ruleset.Rule{Verdict: verdict})})
	return name
}

// dropLog returns the rule that sends a packet the next rule drops to the
// drop log, at most the configured rate for each deciding rule (over it,
// the rule stops and the next drops unlogged); nil when the log is off.
func (c *compiler) dropLog(o *ruleset.Origin) *ruleset.Rule {
	s := c.cfg.Settings
	if !s.DropLog {
		return nil
	}
	g := s.DropLogGroup
	return &ruleset.Rule{Limit: &ruleset.Limit{Rate: uint64(s.DropLogRate), Burst: s.DropLogRate},
		Log: &ruleset.Log{Prefix: DropPrefix(o), Group: &g}, Origin: o}
}

// withDropLog appends to ch the drop rule r, after its drop-log rule (a
// drop audited, accepting, is logged too).
func (c *compiler) withDropLog(ch *ruleset.Chain, r *ruleset.Rule) {
	if l := c.dropLog(r.Origin); l != nil && (r.Verdict.Kind == ruleset.VerdictDrop || r.Origin.Audit) {
		ch.Rules = append(ch.Rules, l)
	}
	ch.Rules = append(ch.Rules, r)
}

// matchesTag names a rule's chains by its matches (dropChain).
func matchesTag(ms []ruleset.Match) string {
	h := sha256.Sum256([]byte((&ruleset.Rule{Matches: ms}).String()))
	return hashText(h[:5])
}

// DropPrefix is the drop log's prefix for packets that o drops: readable
// (tcpdump -i nflog:GROUP and ulogd show it), unique within a table, at
// most the kernel's 127 bytes (a longer one keeps its start and gains a
// hash of the whole). hostwall drops maps it back to o through the table.
func DropPrefix(o *ruleset.Origin) string {
	var p string
	what := "drop"
	switch {
	case o.Audit:
		what = "audit"
	case o.Staged:
		what = "staged"
	}
	switch o.Kind {
	case ruleset.OriginPolicyRule:
		p = fmt.Sprintf("hostwall %s %s/%s %s/%d", what, o.Tier, o.Policy, o.Direction, o.Rule)
	case ruleset.OriginEndOfTier:
		p = fmt.Sprintf("hostwall %s end-of-tier %s %s %s", what, o.Tier, o.Endpoint, o.Direction)
	case ruleset.OriginDefaultDeny:
		p = fmt.Sprintf("hostwall %s default-deny %s %s", what, o.Endpoint, o.Direction)
	default:
		p = fmt.Sprintf("hostwall %s %s %s", what, strings.ReplaceAll(string(o.Kind), " ", "-"), o.Direction)
	}
	const most = 127
	if len(p) > most {
		h := sha256.Sum256([]byte(p))
		tail := "~" + hashText(h[:10])
		p = p[:most-len(tail)] + tail
	}
	return p
}

// logPrefix names the policy and rule; nft limits prefixes to 127 bytes.
// A policy name too long for it keeps its start and gains a hash of the
// whole, so that the direction and rule stay and two long names that
// start alike stay apart.
func logPrefix(policy, dir string, idx int) string {
	tail := fmt.Sprintf(" %s/%d: ", dir, idx+1)
	if room := 127 - len("hostwall ") - len(tail); len(policy) > room {
		h := sha256.Sum256([]byte(policy))
		cut := room - len("…") - 9
		policy = policy[:cut] + "…" + hashText(h[:5])
	}
	return "hostwall " + policy + tail
}

// failsafeChain emits the failsafe chain of a direction and reports whether
// it has any rule: the direction's entries by destination port, then the
// other direction's TCP entries by source port for segments without SYN.
//
// The second part keeps failsafe connections that predate connection
// tracking alive (the SSH session that applies the first ruleset): the
// kernel only starts tracking when the first ct rule arrives, so the next
// segment of such a connection is "new", not "established". A segment
// without SYN cannot open a connection, so these rules let no new one by.
func (c *compiler) failsafeChain(d dirInfo) bool {
	same, other := c.cfg.Failsafe.Inbound, c.cfg.Failsafe.Outbound
	if d.dir == config.Egress {
		same, other = other, same
	}
	var pickup []config.ProtoPort
	for _, e := range other {
		if e.Protocol == config.ProtoTCP {
			pickup = append(pickup, e)
		}
	}
	if len(same)+len(pickup) == 0 {
		return false
	}
	c.owner = OwnerFailsafe
	ch := &ruleset.Chain{Name: d.fsChain, Owner: OwnerFailsafe, Comment: fmt.Sprintf("failsafe ports, %s: open whatever the policies say", d.dir)}
	c.failsafeRules(ch, d, same, ruleset.Dst, nil)
	c.failsafeRules(ch, d, pickup, ruleset.Src, ruleset.TCPNotSYN{})
	c.t.Chains = append(c.t.Chains, ch)
	return true
}

// failsafeRules appends an accept rule per entry with a network, and one per
// protocol (a port set) for the entries without, matching the port on side
// and, when not nil, also extra.
func (c *compiler) failsafeRules(ch *ruleset.Chain, d dirInfo, entries []config.ProtoPort, side ruleset.Dir, extra ruleset.Match) {
	with := func(ms ...ruleset.Match) []ruleset.Match {
		if extra != nil {
			ms = append(ms, extra)
		}
		return ms
	}
	byProto := map[uint8][]config.PortRange{}
	var protos []uint8
	for _, e := range entries {
		if e.Net.IsValid() {
			continue
		}
		if byProto[e.Protocol] == nil {
			protos = append(protos, e.Protocol)
		}
		byProto[e.Protocol] = append(byProto[e.Protocol], config.PortRange{Lo: e.Port, Hi: e.Port})
	}
	o := &ruleset.Origin{Kind: ruleset.OriginFailsafe, Direction: string(d.dir), Action: string(config.Allow)}
	for _, proto := range protos {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: with(c.portMatch(proto, side, byProto[proto], false)), Counter: true, Verdict: ruleset.Accept(), Origin: o})
	}
	for _, e := range entries {
		if !e.Net.IsValid() {
			continue
		}
		f := familyOf(e.Net)
		ch.Rules = append(ch.Rules, &ruleset.Rule{
			Matches: with(
				ruleset.Addr{Dir: d.remote, Family: f, Set: c.netsSet(f, []netip.Prefix{e.Net})},
				ruleset.Port{Proto: e.Protocol, Dir: side, Range: ruleset.PortRange{Lo: e.Port, Hi: e.Port}},
			),
			Counter: true,
			Verdict: ruleset.Accept(),
			Origin:  o,
		})
	}
}

// warnShadowedDenies warns about deny rules that a failsafe port overrides
// on some endpoint they apply to: the failsafe wins, so the port stays open.
func (c *compiler) warnShadowedDenies(heps []*config.HostEndpoint, policies []*config.Policy) {
	for _, d := range directions {
		entries := c.cfg.Failsafe.Inbound
		if d.dir == config.Egress {
			entries = c.cfg.Failsafe.Outbound
		}
		for _, p := range policies {
			if !p.Applies(d.dir) || !c.selectsAny(p, heps) {
				continue
			}
			for i, r := range p.Rules(d.dir) {
				if r.Action != config.Deny {
					continue
				}
				// Only a rule that names the port: "deny the rest" after
				// the allows is the usual policy, and the failsafe ports
				// staying open is what failsafe ports are for.
				if len(r.Destination.Ports) == 0 {
					continue
				}
				for _, e := range entries {
					if !denies(r, e) {
						continue
					}
					how := "remove the entry from the failsafe block (or from failsafeInboundHostPorts and failsafeOutboundHostPorts in a FelixConfiguration)"
					if c.cfg.Failsafe.DeclRange.Filename == "" {
						how = "add a failsafe block that lists the entries to keep open, without this one (Calico's defaults are in force now)"
					}
					c.warnOnce(fmt.Sprintf("shadow %s %s %d", p.Name, d.dir, i), &hcl.Diagnostic{
						Severity: hcl.DiagWarning,
						Summary:  "Deny rule shadowed by a failsafe port",
						Detail: fmt.Sprintf("Rule %d of the %s rules of policy %q denies port %d, which failsafe entry %s keeps open: failsafe ports are accepted before any policy. "+
							"To close it, %s.", i+1, d.dir, p.Name, e.Port, formatProtoPort(e), how),
						Subject: r.DeclRange.Ptr(),
					})
					break
				}
			}
		}
	}
}

func (c *compiler) selectsAny(p *config.Policy, heps []*config.HostEndpoint) bool {
	for _, h := range heps {
		if p.Selector.Matches(c.labels(h)) {
			return true
		}
	}
	return false
}

// denies reports whether a deny rule can match traffic to failsafe entry e
// (protocol and destination port; addresses are not considered).
func denies(r *config.Rule, e config.ProtoPort) bool {
	if r.Protocol != nil && r.Protocol.Number != e.Protocol {
		return false
	}
	if r.NotProtocol != nil && r.NotProtocol.Number == e.Protocol {
		return false
	}
	in := func(ports []config.PortRange) bool {
		for _, p := range ports {
			if p.Lo <= e.Port && e.Port <= p.Hi {
				return true
			}
		}
		return false
	}
	if len(r.Destination.Ports) > 0 && !in(r.Destination.Ports) {
		return false
	}
	return !in(r.Destination.NotPorts)
}

func formatProtoPort(e config.ProtoPort) string {
	if e.Net.IsValid() {
		return fmt.Sprintf("%s:%s:%d", ruleset.ProtoName(e.Protocol), e.Net, e.Port)
	}
	return fmt.Sprintf("%s:%d", ruleset.ProtoName(e.Protocol), e.Port)
}

// warnUndefinedPorts warns of a port name in rule r that no host endpoint
// (of any node) defines: in ports it matches nothing, in not_ports it
// excludes nothing — either way not what was written, most often a typo.
func (c *compiler) warnUndefinedPorts(p *config.Policy, d dirInfo, idx int, r *config.Rule) {
	defined := map[string]bool{}
	var names []string
	for _, hep := range c.cfg.Endpoints {
		for _, np := range hep.Ports {
			if !defined[np.Name] {
				defined[np.Name] = true
				names = append(names, np.Name)
			}
		}
	}
	for _, side := range []struct {
		what string
		e    config.Entity
	}{{"source", r.Source}, {"destination", r.Destination}} {
		for _, list := range []struct {
			field, effect string
			names         []string
		}{{"ports", "matches nothing", side.e.NamedPorts}, {"not_ports", "excludes nothing", side.e.NotNamedPorts}} {
			for _, name := range list.names {
				if defined[name] {
					continue
				}
				hint := "Define it in the ports of the host endpoints it is meant for, or give the port number."
				if s := suggest.Name(name, names); s != "" {
					hint = fmt.Sprintf("Did you mean %q? ", s) + hint
				}
				c.warnOnce(fmt.Sprintf("port %s %s %d %s %s %s", p.Name, d.dir, idx, side.what, list.field, name), &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Undefined port name",
					Detail: fmt.Sprintf("Rule %d of the %s rules of policy %q names port %q in its %s %s, and no host endpoint defines a port of that name: it %s. %s",
						idx+1, d.dir, p.Name, name, side.what, list.field, list.effect, hint),
					Subject: r.DeclRange.Ptr(),
				})
			}
		}
	}
}
