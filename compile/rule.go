package compile

import (
	"fmt"

	"net/netip"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// families is a set of IP families; nil means "any".
type families map[ruleset.IPFamily]bool

var bothFamilies = families{ruleset.IPv4: true, ruleset.IPv6: true}

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

// entityFamilies is the families an entity's addresses constrain a rule to.
func entityFamilies(e config.Entity) families {
	var fs families
	if len(e.Nets) > 0 {
		fs = families{}
		for _, n := range e.Nets {
			fs[familyOf(n)] = true
		}
	}
	if e.Selector != nil {
		fs = intersect(fs, bothFamilies)
	}
	return fs
}

// rule compiles one policy rule into one kernel rule per IP family it needs
// (one rule when it names no addresses).
func (c *compiler) rule(p *config.Policy, d dirInfo, idx int, r *config.Rule) []*ruleset.Rule {
	addrFams := intersect(entityFamilies(r.Source), entityFamilies(r.Destination))
	fams := addrFams
	if r.Protocol != nil {
		switch r.Protocol.Number {
		case config.ProtoICMP:
			fams = intersect(fams, families{ruleset.IPv4: true})
		case config.ProtoICMPv6:
			fams = intersect(fams, families{ruleset.IPv6: true})
		}
	}
	if fams != nil && len(fams) == 0 {
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Rule can never match",
			Detail: fmt.Sprintf("Rule %d of %s rules of policy %q mixes IPv4 and IPv6 (in its networks or protocol), so no packet matches it; split it into one rule per IP version.",
				idx+1, d.dir, p.Name),
			Subject: r.DeclRange.Ptr(),
		})
		return nil
	}
	if addrFams == nil {
		return []*ruleset.Rule{c.kernelRule(p, d, idx, r, "")}
	}
	var out []*ruleset.Rule
	for _, f := range []ruleset.IPFamily{ruleset.IPv4, ruleset.IPv6} {
		if fams[f] {
			out = append(out, c.kernelRule(p, d, idx, r, f))
		}
	}
	return out
}

// kernelRule builds the rule for family f ("" when addresses are not
// matched).
func (c *compiler) kernelRule(p *config.Policy, d dirInfo, idx int, r *config.Rule, f ruleset.IPFamily) *ruleset.Rule {
	kr := &ruleset.Rule{Counter: true}
	for _, side := range []struct {
		e   config.Entity
		dir ruleset.Dir
	}{{r.Source, ruleset.Src}, {r.Destination, ruleset.Dst}} {
		if len(side.e.Nets) > 0 {
			kr.Matches = append(kr.Matches, ruleset.Addr{Dir: side.dir, Family: f, Set: c.netsSet(f, side.e.Nets)})
		}
		if side.e.Selector != nil {
			kr.Matches = append(kr.Matches, ruleset.Addr{Dir: side.dir, Family: f, Set: c.selectorSet(f, side.e.Selector)})
		}
	}
	if r.Protocol != nil {
		ports := 0
		for _, side := range []struct {
			e   config.Entity
			dir ruleset.Dir
		}{{r.Source, ruleset.Src}, {r.Destination, ruleset.Dst}} {
			if len(side.e.Ports) > 0 {
				kr.Matches = append(kr.Matches, c.portMatch(r.Protocol.Number, side.dir, side.e.Ports))
				ports++
			}
		}
		if ports == 0 {
			kr.Matches = append(kr.Matches, ruleset.L4Proto{Proto: r.Protocol.Number})
		}
	}
	switch r.Action {
	case config.Allow:
		kr.Verdict = ruleset.Accept()
	case config.Deny:
		kr.Verdict = ruleset.Drop()
	case config.Log:
		kr.Log = &ruleset.Log{Prefix: logPrefix(p.Name, d.dir, idx)}
	}
	return kr
}

// logPrefix names the policy and rule; nft limits prefixes to 127 bytes.
func logPrefix(policy string, d config.Direction, idx int) string {
	s := fmt.Sprintf("hostwall %s %s/%d: ", policy, d, idx+1)
	if len(s) > 127 {
		s = s[:122] + "…: "
	}
	return s
}

// failsafeChain emits the failsafe chain of a direction and reports whether
// it has any rule.
func (c *compiler) failsafeChain(d dirInfo) bool {
	entries := c.cfg.Failsafe.Inbound
	if d.dir == config.Egress {
		entries = c.cfg.Failsafe.Outbound
	}
	if len(entries) == 0 {
		return false
	}
	c.owner = OwnerFailsafe
	ch := &ruleset.Chain{Name: d.fsChain, Owner: OwnerFailsafe, Comment: fmt.Sprintf("failsafe ports, %s: open whatever the policies say", d.dir)}
	// Entries without a network share one port set per protocol.
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
	for _, proto := range protos {
		ch.Rules = append(ch.Rules, &ruleset.Rule{
			Matches: []ruleset.Match{c.portMatch(proto, ruleset.Dst, byProto[proto])},
			Verdict: ruleset.Accept(),
		})
	}
	for _, e := range entries {
		if !e.Net.IsValid() {
			continue
		}
		f := familyOf(e.Net)
		ch.Rules = append(ch.Rules, &ruleset.Rule{
			Matches: []ruleset.Match{
				ruleset.Addr{Dir: d.remote, Family: f, Set: c.netsSet(f, []netip.Prefix{e.Net})},
				ruleset.Port{Proto: e.Protocol, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: e.Port, Hi: e.Port}},
			},
			Verdict: ruleset.Accept(),
		})
	}
	c.t.Chains = append(c.t.Chains, ch)
	return true
}
