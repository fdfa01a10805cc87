package compile

import (
	"fmt"
	"slices"

	"net/netip"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// Names of the untracked and pre-DNAT objects, present only when such
// policies exist.
const (
	ChainRawPrerouting    = "raw-prerouting"
	ChainRawOutput        = "raw-output"
	ChainManglePrerouting = "mangle-prerouting"
	MapRawIn              = "hep-raw-in"
	MapRawOut             = "hep-raw-out"
	MapPreDNATIn          = "hep-pre-in"
	FailsafeRawIn         = "failsafe-raw-in"
	FailsafeRawOut        = "failsafe-raw-out"
)

var (
	untrackedSides = []dirInfo{
		{dir: config.Ingress, suffix: "raw-in", ifDir: ruleset.IIF, hook: ruleset.HookPrerouting, base: ChainRawPrerouting, vmap: MapRawIn, fsChain: FailsafeRawIn, remote: ruleset.Src, stage: stageUntracked},
		{dir: config.Egress, suffix: "raw-out", ifDir: ruleset.OIF, hook: ruleset.HookOutput, base: ChainRawOutput, vmap: MapRawOut, fsChain: FailsafeRawOut, remote: ruleset.Dst, stage: stageUntracked},
	}
	preDNATSide = dirInfo{dir: config.Ingress, suffix: "pre-in", ifDir: ruleset.IIF, hook: ruleset.HookPrerouting, base: ChainManglePrerouting,
		vmap: MapPreDNATIn, fsChain: FailsafeIn, remote: ruleset.Src, stage: stagePreDNAT}
)

// markUsed reports whether the filter chains of d must honour AcceptMark.
func (c *compiler) markUsed(d dirInfo) bool {
	if d.dir == config.Egress {
		return c.cfg.HasUntrackedPolicies() && !d.forward
	}
	return c.cfg.HasUntrackedPolicies() || c.cfg.HasPreDNATPolicies()
}

// untracked emits the raw stage: base chains at the raw priority of
// prerouting and output whose maps goto each endpoint's raw chain: the
// failsafe ports first (both ways, so a failsafe flow is never half
// untracked), then the untracked tiers. An allow there marks the packet,
// exempts it from connection tracking and accepts it; the filter chains
// accept marked packets. Nothing is dropped at the end. Wildcard endpoints
// ignore untracked policies, as in Calico.
func (c *compiler) untracked(heps, wildcard []*config.HostEndpoint, policies []*config.Policy) {
	for _, h := range wildcard {
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Untracked policies ignore the wildcard endpoint",
			Detail:   fmt.Sprintf("do_not_track policies do not apply to host endpoint %q (interface \"*\"), as in Calico; name the interface to use them.", h.Name),
			Subject:  h.DeclRange.Ptr(),
		})
	}
	for _, d := range untrackedSides {
		c.stageBase(d, heps, nil, policies)
		c.rawFailsafe(d)
	}
}

// preDNAT emits the pre-DNAT stage: mangle prerouting, ingress only;
// what an untracked policy allowed is accepted first, then
// established/related and the failsafe ports; an allow marks and accepts,
// nothing is dropped at the end.
func (c *compiler) preDNAT(heps, wildcard []*config.HostEndpoint, policies []*config.Policy) {
	c.stageBase(preDNATSide, heps, wildcard, policies)
}

// stageBase emits a stage's base chain, its map of endpoint chains (goto,
// so that an endpoint chain's end is the base chain's end and the wildcard
// rule after the map is only met by interfaces without an endpoint), and
// the endpoint chains.
func (c *compiler) stageBase(d dirInfo, heps, wildcard []*config.HostEndpoint, policies []*config.Policy) {
	c.owner = OwnerDispatch
	prio := ruleset.PriorityRaw
	if d.stage == stagePreDNAT {
		prio = ruleset.PriorityMangle
	}
	base := &ruleset.Chain{
		Owner: OwnerDispatch, Name: d.base,
		Base:    &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: d.hook, Priority: prio, Policy: ruleset.PolicyAccept},
		Comment: fmt.Sprintf("%s hook at priority %d: %s policies", d.hook, prio, map[stage]string{stageUntracked: "untracked", stagePreDNAT: "pre-DNAT"}[d.stage]),
		Rules:   []*ruleset.Rule{{Verdict: ruleset.VMap(d.ifDir, d.vmap)}},
	}
	if d.stage == stagePreDNAT && c.cfg.HasUntrackedPolicies() {
		// What an untracked policy allowed skips the pre-DNAT policies,
		// as Felix's mangle PREROUTING accepts what the raw table did.
		base.Rules = slices.Insert(base.Rules, 0, &ruleset.Rule{Matches: []ruleset.Match{ruleset.Mark{Mask: AcceptMark, Value: AcceptMark}}, Verdict: ruleset.Accept()})
	}
	c.t.Chains = append(c.t.Chains, base)
	if d.stage == stagePreDNAT {
		// Pre-DNAT policies are for host endpoints: what comes from a
		// workload skips them (Felix's mangle PREROUTING accepts it
		// before its host endpoint dispatch).
		c.workloadRules(base, d)
	}
	c.dispatch(base, d.vmap, fmt.Sprintf("host endpoints, %s %s", map[stage]string{stageUntracked: "untracked", stagePreDNAT: "pre-DNAT"}[d.stage], d.dir),
		heps, wildcard, ruleset.Goto, func(hep *config.HostEndpoint) string { return c.stageChain(d, hep, policies) })
}

// stageChain emits one endpoint's chain of an untracked or pre-DNAT stage.
func (c *compiler) stageChain(d dirInfo, hep *config.HostEndpoint, policies []*config.Policy) string {
	ch := c.endpointChain(d, hep)
	if d.stage == stagePreDNAT {
		ch.Rules = append(ch.Rules, acceptEstablished())
	}
	if c.t.Chain(d.fsChain) != nil || (d.stage == stageUntracked && c.hasRawFailsafe(d)) {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Verdict: ruleset.Jump(d.fsChain)})
	}
	ch.Rules = append(ch.Rules, c.tiers(d, hep, c.selectingTiers(d, c.labels(hep), policies), noTally)...)
	c.t.Chains = append(c.t.Chains, ch)
	return ch.Name
}

func (c *compiler) hasRawFailsafe(d dirInfo) bool {
	return len(c.cfg.Failsafe.Inbound)+len(c.cfg.Failsafe.Outbound) > 0
}

// rawFailsafe emits the raw stage's failsafe chain of a direction: the
// failsafe ports of the direction by destination port, and those of the
// other direction by source port (their replies), each from or to the
// entry's network. Accepted here, they skip the untracked policies and are
// tracked as usual.
func (c *compiler) rawFailsafe(d dirInfo) {
	if !c.hasRawFailsafe(d) {
		return
	}
	c.owner = OwnerFailsafe
	ch := &ruleset.Chain{Name: d.fsChain, Owner: OwnerFailsafe, Comment: fmt.Sprintf("failsafe ports before untracked policies, %s (replies included)", d.dir)}
	same, other := c.cfg.Failsafe.Inbound, c.cfg.Failsafe.Outbound
	if d.dir == config.Egress {
		same, other = other, same
	}
	for _, group := range []struct {
		entries []config.ProtoPort
		side    ruleset.Dir
	}{{same, ruleset.Dst}, {other, ruleset.Src}} {
		for _, e := range group.entries {
			ms := []ruleset.Match{}
			if e.Net.IsValid() {
				f := familyOf(e.Net)
				ms = append(ms, ruleset.Addr{Dir: d.remote, Family: f, Set: c.netsSet(f, []netip.Prefix{e.Net})})
			}
			ms = append(ms, ruleset.Port{Proto: e.Protocol, Dir: group.side, Range: ruleset.PortRange{Lo: e.Port, Hi: e.Port}})
			ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: ms, Verdict: ruleset.Accept()})
		}
	}
	c.t.Chains = append(c.t.Chains, ch)
}
