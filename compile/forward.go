package compile

import (
	"fmt"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// Names of the forward-path objects, present only when some policy has
// apply_on_forward.
const (
	ChainForward = "forward"
	ChainFwdIn   = "fwd-in"
	ChainFwdOut  = "fwd-out"
	MapFwdIn     = "hep-fwd-in"
	MapFwdOut    = "hep-fwd-out"
)

// The two sides of a routed packet: the endpoint it arrives on (its
// ingress policies) and the one it leaves by (egress).
var forwardSides = []dirInfo{
	{dir: config.Ingress, suffix: "fwd-in", ifDir: ruleset.IIF, hook: ruleset.HookForward, base: ChainFwdIn, vmap: MapFwdIn, remote: ruleset.Src, forward: true},
	{dir: config.Egress, suffix: "fwd-out", ifDir: ruleset.OIF, hook: ruleset.HookForward, base: ChainFwdOut, vmap: MapFwdOut, remote: ruleset.Dst, forward: true},
}

// forward emits the forward hook:
//
//	chain forward { type filter hook forward priority filter; policy accept;
//	  ct state established,related accept ; jump fwd-in ; jump fwd-out }
//	chain fwd-in { iifname vmap @hep-fwd-in ; goto hep-<wildcard>-fwd-in }
//
// The map's elements goto the endpoint's chain, so when that chain returns
// (allowed, or no policy decided) evaluation goes back to the forward chain
// and on to the other side, skipping the wildcard fallback. Only
// apply_on_forward policies take part; there is no failsafe and no profile,
// and what no selecting tier decides is let through, as in Calico.
func (c *compiler) forward(heps, wildcard []*config.HostEndpoint, policies []*config.Policy) {
	c.owner = OwnerDispatch
	c.t.Chains = append(c.t.Chains, &ruleset.Chain{
		Owner: OwnerDispatch, Name: ChainForward,
		Base:    &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: ruleset.HookForward, Priority: 0, Policy: ruleset.PolicyAccept},
		Comment: "forward hook: established traffic passes; the rest goes through host endpoints, apply_on_forward policies only",
		Rules:   []*ruleset.Rule{acceptEstablished(), {Verdict: ruleset.Jump(ChainFwdIn)}, {Verdict: ruleset.Jump(ChainFwdOut)}},
	})
	for _, d := range forwardSides {
		c.owner = OwnerDispatch
		dispatch := &ruleset.Chain{Owner: OwnerDispatch, Name: d.base, Comment: fmt.Sprintf("forwarded traffic, %s side", d.dir),
			Rules: []*ruleset.Rule{{Verdict: ruleset.VMap(d.ifDir, d.vmap)}}}
		c.t.Chains = append(c.t.Chains, dispatch)
		c.dispatch(dispatch, d.vmap, "host endpoints, forwarded "+string(d.dir), heps, wildcard, ruleset.Goto,
			func(hep *config.HostEndpoint) string { return c.hepForwardChain(d, hep, policies) })
	}
}

// hepForwardChain emits one endpoint's chain for one side of forwarded
// traffic: invalid drop, then the tiers (tail called, so their return goes
// straight back to the forward chain). The forward chain has accepted
// established and related traffic already.
func (c *compiler) hepForwardChain(d dirInfo, hep *config.HostEndpoint, policies []*config.Policy) string {
	ch := c.endpointChain(d, hep)
	if c.markUsed(d) {
		// Allowed on arrival by the untracked or pre-DNAT stage: this side
		// is done; the other side still applies.
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: []ruleset.Match{ruleset.Mark{Mask: AcceptMark, Value: AcceptMark}}, Verdict: ruleset.Verdict{Kind: ruleset.VerdictReturn}})
	}
	ch.Rules = append(ch.Rules, countedDropInvalid(d, hep))
	ch.Rules = append(ch.Rules, c.tiers(d, hep, c.selectingTiers(d, c.labels(hep), policies), noTally)...)
	c.t.Chains = append(c.t.Chains, ch)
	return ch.Name
}
