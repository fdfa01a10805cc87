package compile

import (
	"fmt"
	"math"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// The staged view in the kernel (docs/kernel.md, "Staged policies").
//
// A staged policy changes no packet's fate. For each host endpoint and
// direction (input and output) where the staged view — the enforced
// policies with the staged changes made — selects other policies than the
// enforced one, the enforced evaluation is left as it is up to the first
// tier where the two differ. From there on the endpoint's tier chains jump
// to *tallying* copies of the enforced policies, identical but for their
// verdicts: before an allow accepts, or a deny drops (as do the ends of
// tier, the default deny and the profile from there on), the packet goes
// through the *staged walk*, which evaluates the staged view from that
// same tier on with verdicts that only mark the packet, counts where the
// two views disagree, clears the marks and returns. Then the enforced
// verdict takes effect. No chain of the staged walk accepts or drops.
//
// So the staged view costs nothing on an endpoint it does not change, on
// a packet of an open connection (accepted before any endpoint chain) or
// on one the tiers before the first change decide; the packets after
// them pay the staged view's tiers from the change on.

// Packet-mark bits of the staged walk, set and cleared within it.
const (
	// StagedDecided is set when the staged view has decided the packet,
	// StagedAllows when it allowed it.
	StagedDecided = 0x20000000
	StagedAllows  = 0x40000000
	// EnforcedAllows is set, for the walk, when the enforced view allows
	// the packet (an audit endpoint's would-be drops do not).
	EnforcedAllows = 0x80000000

	stagedBits = StagedDecided | StagedAllows | EnforcedAllows
)

// StagedUncounted is the summary of the warning that the staged view was
// left out of a table (its chains would be too deep for the kernel).
const StagedUncounted = "The staged view is not counted"

// StagedAllow is the chain the staged copies' allow rules of enforced
// policies jump to: it marks the packet allowed unless decided. It exists
// only while some endpoint has staged changes.
const StagedAllow = "staged-allow"

// stagedAccept is the chain a tallying copy's allow jumps to: it runs the
// staged walk of the packet's endpoint, the enforced view allowing, then
// accepts. stagedDispatch runs the walk of the packet's endpoint: by
// interface through stagedMap, else the wildcard endpoint's.
func stagedAccept(d dirInfo) string   { return "staged-accept-" + d.suffix }
func stagedMap(d dirInfo) string      { return "staged-" + d.suffix }
func stagedDispatch(d dirInfo) string { return "staged-dispatch-" + d.suffix }

// stagedEntry is the entry chain of endpoint hep's staged walk in d.
func stagedEntry(d dirInfo, hep *config.HostEndpoint) string {
	return kernelName("hep", hep.Name, d.suffix, "staged")
}

// chainCopy says which copy of a policy's chain is emitted: the audit one
// (for endpoints in audit mode), a tallying one (the enforced rules, whose
// verdicts run the staged walk first) or the staged one (the staged walk's:
// verdicts only mark).
type chainCopy struct{ audit, tally, staged bool }

// String is the copy's part of the chain name.
func (cp chainCopy) String() string {
	switch {
	case cp.staged:
		return "staged"
	case cp.audit && cp.tally:
		return "audit-tally"
	case cp.tally:
		return "tally"
	case cp.audit:
		return "audit"
	}
	return ""
}

// does says what the copy is for, in chain comments.
func (cp chainCopy) does() string {
	switch {
	case cp.staged:
		return "staged view: marks the packet with what the staged view would do"
	case cp.tally:
		s := "for endpoints with staged changes: runs the staged view before each verdict"
		if cp.audit {
			s += ", in audit mode"
		}
		return s
	}
	return "audit: for endpoints in audit mode"
}

// stagedView is the configuration's staged view for the host.
type stagedView struct {
	// policies are the staged view's, sorted; promoted are those of them
	// that are staged (the promoted copies of staged Set policies).
	policies []*config.Policy
	promoted map[*config.Policy]bool
	// at is, by direction and endpoint, where the views differ and the
	// staged view's tiers (endpoints without staged changes are not in
	// it); wildcard, by direction, the staged wildcard endpoint.
	at       map[string]map[*config.HostEndpoint]stagedAt
	named    map[string][]*config.HostEndpoint
	wildcard map[string]*config.HostEndpoint
}

// stagedAt is an endpoint's staged view in one direction: the index of the
// first tier where it differs from the enforced one, and its tiers.
type stagedAt struct {
	tier  int
	tiers []tierPolicies
}

// newStagedView returns the staged view of full (the host's whole
// configuration), nil when it has no staged policy.
func (c *compiler) newStagedView(full *config.Config) *stagedView {
	if !full.HasStaged() {
		return nil
	}
	v := &stagedView{promoted: map[*config.Policy]bool{}, at: map[string]map[*config.HostEndpoint]stagedAt{},
		named: map[string][]*config.HostEndpoint{}, wildcard: map[string]*config.HostEndpoint{}}
	enforced := map[*config.Policy]bool{}
	for _, p := range c.cfg.Policies {
		enforced[p] = true
	}
	for _, p := range full.StagedView().Policies {
		v.policies = append(v.policies, p)
		if !enforced[p] {
			v.promoted[p] = true
		}
	}
	config.SortPolicies(v.policies)
	// A staged policy, or the enforced one it would replace or delete,
	// that applies beyond input and output: the warning names the staged
	// one's place.
	staged := map[string]*hcl.Range{}
	for _, p := range full.Policies {
		if p.Staged != "" {
			staged[p.Name] = p.DeclRange.Ptr()
		}
	}
	for _, p := range full.Policies {
		if staged[p.Name] != nil && (p.ApplyOnForward || !p.Normal()) {
			what := "forwarded"
			switch {
			case p.DoNotTrack:
				what = "untracked"
			case p.PreDNAT:
				what = "pre-DNAT"
			}
			c.warnOnce("staged-kind "+p.Name, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Staged policy counted for input and output alone",
				Detail: fmt.Sprintf("Policy %q, staged or replaced by a staged policy, applies to %s traffic: explain shows what the change would do there, but the kernel counts the staged view's disagreements on what the normal policies of traffic to and from this host decide, not on what untracked, pre-DNAT or forwarded traffic's decide.",
					p.Name, what),
				Subject: staged[p.Name],
			})
		}
	}
	return v
}

// noTally is the tier index of an endpoint without staged changes.
const noTally = math.MaxInt

// stagedEndpoints finds, before their chains are emitted, the endpoints
// whose staged view in direction d differs, and from which of their tiers
// (the chains that run the staged walk must know the walks there are).
//
// The walk starts at the tier, not at the first policy that differs in
// it: a pass by a policy before that one skips the rest of the tier, in
// both views, so a packet at an enforced verdict after that policy may
// not have passed it.
func (c *compiler) stagedEndpoints(d dirInfo, heps, wildcard []*config.HostEndpoint, policies []*config.Policy) {
	if c.staged == nil || d.forward || d.stage != stageNormal {
		return
	}
	v := c.staged
	v.at[d.suffix] = map[*config.HostEndpoint]stagedAt{}
	for _, hep := range append(append([]*config.HostEndpoint(nil), heps...), wildcard...) {
		labels := c.labels(hep)
		staged := c.selectingTiers(d, labels, v.policies)
		at, differ := firstDifference(c.selectingTiers(d, labels, policies), staged)
		if !differ {
			continue
		}
		v.at[d.suffix][hep] = stagedAt{tier: at, tiers: staged}
		if hep.Interface == "*" {
			if v.wildcard[d.suffix] == nil {
				v.wildcard[d.suffix] = hep
			}
		} else {
			v.named[d.suffix] = append(v.named[d.suffix], hep)
		}
	}
}

// stagedFrom returns the index of the first of the tiers of endpoint hep
// in direction d where its staged view differs (noTally when it does
// not) and the entry chain of its staged walk, which it emits ("" when
// none).
func (c *compiler) stagedFrom(d dirInfo, hep *config.HostEndpoint) (int, string) {
	if c.staged == nil {
		return noTally, ""
	}
	at, ok := c.staged.at[d.suffix][hep]
	if !ok {
		return noTally, ""
	}
	c.stagedWalk(d, hep, at.tiers, at.tier)
	return at.tier, stagedEntry(d, hep)
}

// firstDifference is the index of the first tier where a and b differ: a
// tier of another name, or other policies (a staged policy is always
// another).
func firstDifference(a, b []tierPolicies) (int, bool) {
	for i := 0; ; i++ {
		if i == len(a) || i == len(b) {
			return i, len(a) != len(b)
		}
		if a[i].tier.Name != b[i].tier.Name || !slices.Equal(a[i].policies, b[i].policies) {
			return i, true
		}
	}
}

// accept is the verdict of an allow: accept, or through the staged walk
// when tally.
func (c *compiler) accept(d dirInfo, tally bool) ruleset.Verdict {
	if tally {
		return ruleset.Jump(stagedAccept(d))
	}
	return ruleset.Accept()
}

// runWalk is the rule by which a chain of an endpoint runs the endpoint's
// staged walk (its entry chain), the enforced view allowing the packet or
// not. Only a packet that carries none of the walk's bits runs it: the
// bits are 0 after the walk as before, and a packet marked with them by
// other software keeps its mark (and is not counted).
func runWalk(entry string, allows bool) *ruleset.Rule {
	r := &ruleset.Rule{Matches: marked(stagedBits, 0), Verdict: ruleset.Jump(entry)}
	if allows {
		r.SetMark = EnforcedAllows
	}
	return r
}

// tally is the rule by which a shared chain (a tallying copy's drop chain,
// stagedAccept) runs the staged walk of the packet's endpoint, found by
// stagedDispatch; unmarked packets only, as runWalk.
func (c *compiler) tally(d dirInfo, allows bool) *ruleset.Rule {
	r := runWalk(stagedDispatch(d), allows)
	r.SetMark |= StagedDecided
	return r
}

// marked matches packets whose staged-walk bits under mask are value.
func marked(mask, value uint32) []ruleset.Match {
	return []ruleset.Match{ruleset.Mark{Mask: mask, Value: value}}
}

// stagedWalk emits the staged walk of endpoint hep in direction d: its
// entry chain `hep/<endpoint>/<dir>/staged`, which evaluates the staged
// tiers from index at on (one chain each, jumped to in turn while undecided),
// then the staged profile or default deny, counts a disagreement with the
// enforced verdict (EnforcedAllows, set by the caller) and clears the
// marks.
func (c *compiler) stagedWalk(d dirInfo, hep *config.HostEndpoint, tiers []tierPolicies, at int) {
	ch := &ruleset.Chain{Owner: c.owner, Name: stagedEntry(d, hep),
		Comment: fmt.Sprintf("host endpoint %q, %s: the staged view, from its first change; marks and counts, never decides", hep.Name, d.side())}
	ch.Rules = append(ch.Rules, &ruleset.Rule{ClearMark: StagedDecided | StagedAllows})
	for i := at; i < len(tiers); i++ {
		name := kernelName("hep", hep.Name, d.suffix, "staged", "t", tiers[i].tier.Name)
		c.stagedTierChain(d, name, hep, tiers[i])
		r := &ruleset.Rule{Verdict: ruleset.Jump(name)}
		if i > at {
			r.Matches = marked(StagedDecided, 0)
		}
		ch.Rules = append(ch.Rules, r)
	}
	side := d.side()
	if len(hep.Profiles) > 0 && hep.Profiles[0] == config.ProfileDefaultAllow {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: marked(StagedDecided, 0), SetMark: StagedDecided | StagedAllows})
	} else {
		o := &ruleset.Origin{Kind: ruleset.OriginDefaultDeny, Endpoint: hep.Name, Direction: side, Action: string(config.Deny), Staged: true}
		if l := c.dropLog(o); l != nil {
			l.Matches = marked(StagedDecided|EnforcedAllows, EnforcedAllows)
			ch.Rules = append(ch.Rules, l)
		}
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: marked(StagedDecided, 0), SetMark: StagedDecided})
	}
	for _, change := range []struct {
		action config.Action
		value  uint32
	}{{config.Deny, StagedDecided | EnforcedAllows}, {config.Allow, StagedDecided | StagedAllows}} {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: marked(stagedBits, change.value), Counter: true,
			Origin: &ruleset.Origin{Kind: ruleset.OriginStagedChange, Endpoint: hep.Name, Direction: side, Action: string(change.action)}})
	}
	ch.Rules = append(ch.Rules, &ruleset.Rule{ClearMark: stagedBits})
	c.t.Chains = append(c.t.Chains, ch)
}

// stagedTierChain emits one tier of an endpoint's staged walk: the staged
// copy of each policy, returning once one decided;
// after each, the re-check of its pass rules (which return: the entry
// chain goes on to the next tier); then the end of tier, which marks the
// packet denied (unless the tier passes).
func (c *compiler) stagedTierChain(d dirInfo, name string, hep *config.HostEndpoint, tp tierPolicies) {
	ch := &ruleset.Chain{Owner: c.owner, Name: name,
		Comment: fmt.Sprintf("host endpoint %q, %s, tier %q: the staged view", hep.Name, d.side(), tp.tier.Name)}
	for _, p := range tp.policies {
		ch.Rules = append(ch.Rules,
			&ruleset.Rule{Verdict: ruleset.Jump(c.policyChain(d, p, chainCopy{staged: true}))},
			&ruleset.Rule{Matches: marked(StagedDecided, StagedDecided), Verdict: ruleset.Return()})
		ch.Rules = append(ch.Rules, c.rechecks(d, p, ruleset.Return(), false)...)
	}
	if tp.tier.DefaultAction != config.Pass {
		o := &ruleset.Origin{Kind: ruleset.OriginEndOfTier, Endpoint: hep.Name, Direction: d.side(), Tier: tp.tier.Name, Action: string(config.Deny), Staged: true}
		if l := c.dropLog(o); l != nil {
			l.Matches = marked(EnforcedAllows, EnforcedAllows)
			ch.Rules = append(ch.Rules, l)
		}
		ch.Rules = append(ch.Rules, &ruleset.Rule{SetMark: StagedDecided})
	}
	c.t.Chains = append(c.t.Chains, ch)
}

// stagedRule is rule kr of policy p in the staged copy: no counter, and
// for an allow or a deny a jump to the chain that marks the packet
// (stagedVerdict); a pass returns; a log rule has no place.
func (c *compiler) stagedRule(p *config.Policy, d dirInfo, r *config.Rule, kr *ruleset.Rule) *ruleset.Rule {
	o := kr.Origin
	o.Staged = true
	kr.Counter, kr.Origin = false, nil
	switch r.Action {
	case config.Allow, config.Deny:
		kr.Verdict = ruleset.Jump(c.stagedVerdict(o, p, d, kr.Matches))
	case config.Pass:
		kr.Verdict = ruleset.Return()
	default:
		return nil
	}
	return kr
}

// stagedVerdict emits (once) the chain an allow or deny rule of policy p
// matching ms jumps to in the staged walk, and returns its name: unless
// the walk has decided already (a rule looking a sharded set up returns
// to its policy, which goes on), it marks the packet with the verdict. A
// staged policy's rule also counts what it decides and where that
// disagrees with the enforced view; a deny logs, when the drop log is on,
// what the enforced view allows (hostwall drops --staged). An enforced
// policy's allow needs neither: its rules share StagedAllow.
func (c *compiler) stagedVerdict(o *ruleset.Origin, p *config.Policy, d dirInfo, ms []ruleset.Match) string {
	allow := o.Action == string(config.Allow)
	promoted := c.staged.promoted[p]
	name := StagedAllow
	if !allow || promoted {
		name = kernelName("pol", p.Name, d.suffix, "staged-"+o.Action, matchesTag(ms))
	}
	if c.policyChains[name] {
		return name
	}
	c.policyChains[name] = true
	ch := &ruleset.Chain{Name: name, Owner: c.owner,
		Comment: fmt.Sprintf("policy %q, %s: the staged view's %s of rule %d", p.Name, d.side(), o.Action, o.Rule)}
	if name == StagedAllow {
		ch.Owner, ch.Comment = OwnerDispatch, "the staged view: an allow of an enforced policy"
	}
	ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: marked(StagedDecided, StagedDecided), Verdict: ruleset.Return()})
	mark, disagree := uint32(StagedDecided), uint32(EnforcedAllows)
	if allow {
		mark, disagree = StagedDecided|StagedAllows, 0
	}
	if promoted {
		change := *o
		change.Kind = ruleset.OriginStagedChange
		change.Staged = false
		ch.Rules = append(ch.Rules,
			&ruleset.Rule{Counter: true, Origin: o},
			&ruleset.Rule{Matches: marked(EnforcedAllows, disagree), Counter: true, Origin: &change})
	}
	if l := c.dropLog(o); l != nil && !allow {
		l.Matches = marked(EnforcedAllows, EnforcedAllows)
		ch.Rules = append(ch.Rules, l)
	}
	ch.Rules = append(ch.Rules, &ruleset.Rule{SetMark: mark})
	c.t.Chains = append(c.t.Chains, ch)
	return name
}

// stagedDispatch emits, when some endpoint has staged changes in direction
// d, what runs their walks from shared chains: stagedMap; the dispatch
// chain, entered with StagedDecided set (tally) and the walk clearing it,
// so that a packet still marked found no walk in the map and goes to the
// wildcard endpoint's; and stagedAccept (mark the enforced view's allow,
// run the walk, accept).
func (c *compiler) stagedDispatch(d dirInfo) {
	if c.staged == nil || len(c.staged.at[d.suffix]) == 0 {
		return
	}
	m := &ruleset.Set{Name: stagedMap(d), Type: ruleset.TypeIfName, Map: true, Owner: OwnerDispatch,
		Comment: "host endpoints with staged changes, " + string(d.dir)}
	for _, hep := range c.staged.named[d.suffix] {
		v := ruleset.Jump(stagedEntry(d, hep))
		m.Elements = append(m.Elements, ruleset.Element{From: ruleset.IfNameKey(hep.Interface), To: ruleset.IfNameKey(hep.Interface), Verdict: &v})
	}
	m.Normalize()
	c.t.Sets = append(c.t.Sets, m)
	dispatch := &ruleset.Chain{Owner: OwnerDispatch, Name: stagedDispatch(d), Comment: "the staged view of the packet's host endpoint, " + string(d.dir),
		Rules: []*ruleset.Rule{{Verdict: ruleset.VMap(d.ifDir, m.Name)}}}
	if w := c.staged.wildcard[d.suffix]; w != nil {
		dispatch.Rules = append(dispatch.Rules, &ruleset.Rule{Matches: marked(StagedDecided, StagedDecided), Verdict: ruleset.Jump(stagedEntry(d, w))})
	}
	dispatch.Rules = append(dispatch.Rules, &ruleset.Rule{ClearMark: stagedBits})
	c.t.Chains = append(c.t.Chains, dispatch, &ruleset.Chain{Owner: OwnerDispatch, Name: stagedAccept(d),
		Comment: "an allow, after the staged view, " + string(d.dir),
		Rules:   []*ruleset.Rule{c.tally(d, true), {Verdict: ruleset.Accept()}}})
}
