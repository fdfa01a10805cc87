package compile

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/lastuse"
	"github.com/hostwall/hostwall/ruleset"
)

// Options says which host the configuration is compiled for.
type Options struct {
	// HostName is this host's name: it decides which endpoints with a
	// `node` are enforced here. Required.
	HostName string
	// Limits bound the configuration; zero fields take DefaultLimits.
	Limits Limits
	// Memo, when set, keeps the large sets of one compile for the next.
	Memo *Memo
	// Recipes, when set, receives the recipe of every set drawn from nets
	// files (see Recipe).
	Recipes *[]Recipe

	// uncounted compiles without the staged view's chains (Compile's
	// second try when they would be too deep for the kernel).
	uncounted bool
}

// Memo keeps the large sets a compile made from network sets (a
// blocklist), for the next compile of a long-running process (the agent):
// a set whose name and inputs are the same is taken as it was made, not
// built, sorted and merged again (~10 ms for 100,000 networks). Tables
// compiled with one Memo share those sets' elements, so their users only
// read them (the planner and nft.Apply do).
type Memo struct {
	sets lastuse.Map[string, *memoSet] // by name and a hash of the inputs
}

// memoSet is a memoized set. Once sharded, the memo keeps its split alone
// (the elements in slot order, which the slot sets of every table share)
// and set holds no elements: a million networks are kept once, not twice.
type memoSet struct {
	set      *ruleset.Set
	merged   ruleset.Merged // what making it merged (Recipe.Merged)
	split    *ruleset.Split
	sharding ruleset.Sharding // the split's
	size     int              // the set's elements
}

// memoMin is the size of the inputs from which a set is memoized: a
// smaller one is made faster than its inputs are hashed.
const memoMin = 1000

// Names of the fixed objects of the table.
const (
	ChainInput  = "input"
	ChainOutput = "output"
	MapIn       = "hep-in"
	MapOut      = "hep-out"
	FailsafeIn  = "failsafe-in"
	FailsafeOut = "failsafe-out"
)

// dirInfo describes one direction of traffic through a host endpoint.
type dirInfo struct {
	dir     config.Direction
	suffix  string // chain name suffix
	ifDir   ruleset.IfDir
	hook    ruleset.Hook
	base    string
	vmap    string
	fsChain string
	// remote is the side of the packet that is not this host.
	remote ruleset.Dir
	// forward is set for the sides of routed traffic: only
	// apply_on_forward policies, no failsafe, no profiles, and an allow
	// lets the packet on to the other side instead of accepting it.
	forward bool
	// stage is the evaluation a chain belongs to (normal, untracked or
	// pre-DNAT).
	stage stage
}

// side says which traffic d is, for chain comments: "ingress",
// "forwarded egress", "untracked ingress", "pre-DNAT ingress".
func (d dirInfo) side() string {
	switch {
	case d.stage == stageUntracked:
		return "untracked " + string(d.dir)
	case d.stage == stagePreDNAT:
		return "pre-DNAT " + string(d.dir)
	case d.forward:
		return "forwarded " + string(d.dir)
	}
	return string(d.dir)
}

// stage is one of Calico's policy evaluations: untracked (raw, before
// connection tracking), pre-DNAT (mangle prerouting) and normal (filter).
type stage int

const (
	stageNormal stage = iota
	stageUntracked
	stagePreDNAT
)

// AcceptMark is the packet-mark bit by which the untracked and pre-DNAT
// stages tell the filter chains that they allowed a packet, which then skips
// the normal policies. It is set only when such policies exist.
const AcceptMark = 0x10000000

// takesPart reports whether policy p is evaluated in direction d's stage.
func (d dirInfo) takesPart(p *config.Policy) bool {
	switch d.stage {
	case stageUntracked:
		return p.DoNotTrack
	case stagePreDNAT:
		return p.PreDNAT
	}
	return p.Normal() && (p.ApplyOnForward || !d.forward)
}

var directions = []dirInfo{
	{dir: config.Ingress, suffix: "in", ifDir: ruleset.IIF, hook: ruleset.HookInput, base: ChainInput, vmap: MapIn, fsChain: FailsafeIn, remote: ruleset.Src},
	{dir: config.Egress, suffix: "out", ifDir: ruleset.OIF, hook: ruleset.HookOutput, base: ChainOutput, vmap: MapOut, fsChain: FailsafeOut, remote: ruleset.Dst},
}

type compiler struct {
	cfg   *config.Config
	opts  Options
	t     *ruleset.Table
	diags hcl.Diagnostics
	// policyChains records which policy chains were emitted.
	policyChains map[string]bool
	// setKeys records what each set name was made from (setName).
	setKeys map[string]string
	// owner is the configuration object being compiled, recorded on every
	// chain and set it produces.
	owner string
	// copy is the copy of a policy's chain being emitted (policyChain):
	// an audit copy's denies log and accept; a tallying one's verdicts
	// run the staged view first; a staged one only marks the packet.
	copy chainCopy
	// staged is the staged view of the configuration, nil without staged
	// policies.
	staged *stagedView
	// warned records warnings already given, so each is given once.
	warned map[string]bool
	// memoKeys are the memo keys of the memoized sets, by name; memoSplits
	// the splits of those the memo keeps split (shard).
	memoKeys   map[string]string
	memoSplits map[string]*memoSet
	memoMerged map[string]ruleset.Merged
}

// Owners of objects that no single configuration block produces.
const (
	OwnerDispatch = "interface dispatch"
	OwnerFailsafe = "failsafe"
)

// Compile builds the desired table for the host named in opts.
func Compile(cfg *config.Config, opts Options) (*ruleset.Table, hcl.Diagnostics) {
	orig, recipes := cfg, 0
	if opts.Recipes != nil {
		recipes = len(*opts.Recipes)
	}
	opts.Limits = opts.Limits.WithDefaults()
	if diags := checkSize(cfg, opts.Limits); diags.HasErrors() {
		return nil, diags
	}
	// Staged policies change no packet's fate: the staged view only counts
	// (staged.go).
	full := cfg.ForHost(opts.HostName)
	cfg = full.Enforced()
	c := &compiler{cfg: cfg, opts: opts, t: ruleset.NewTable(), policyChains: map[string]bool{}, setKeys: map[string]string{}, warned: map[string]bool{},
		memoKeys: map[string]string{}, memoSplits: map[string]*memoSet{}, memoMerged: map[string]ruleset.Merged{}}
	if !opts.uncounted {
		c.staged = c.newStagedView(full)
	}
	heps, wildcard := c.endpoints()
	c.checkWorkloads(heps, wildcard)
	c.warnNoEndpoints(len(heps) + len(wildcard))
	policies := append([]*config.Policy(nil), cfg.Policies...)
	config.SortPolicies(policies)
	c.checkProfiles(append(heps, wildcard...))
	for _, d := range directions {
		c.owner = OwnerDispatch
		base := c.baseChain(d)
		c.workloadRules(base, d)
		fs := c.failsafeChain(d)
		c.stagedEndpoints(d, heps, wildcard, policies)
		c.dispatch(base, d.vmap, "host endpoints, "+string(d.dir), heps, wildcard, ruleset.Jump,
			func(hep *config.HostEndpoint) string { return c.hepChain(d, hep, fs, policies) })
		c.stagedDispatch(d)
	}
	if cfg.HasForwardPolicies() {
		c.forward(heps, wildcard, policies)
	}
	if cfg.HasUntrackedPolicies() {
		c.untracked(heps, wildcard, policies)
	}
	if cfg.HasPreDNATPolicies() {
		c.preDNAT(heps, wildcard, policies)
	}
	c.warnShadowedDenies(append(heps, wildcard...), policies)
	if c.diags.HasErrors() {
		return nil, c.diags
	}
	c.shard()
	if n, path := chainDepth(c.t); n >= MaxChainDepth {
		if c.staged != nil {
			// Counting the staged view is what a staged policy is for, but
			// it never decides a packet: enforce without it.
			opts.uncounted = true
			if opts.Recipes != nil {
				*opts.Recipes = (*opts.Recipes)[:recipes]
			}
			t, diags := Compile(orig, opts)
			return t, append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: StagedUncounted,
				Detail: fmt.Sprintf("With the staged view's chains, a path of jumps (%s) would be %d deep, and the kernel allows %d: the staged policies are compiled without them. explain still shows what they would do; the counters and hostwall drops --staged do not. Fewer tiers, or fewer rules looking more than one large set up (--shard-min), make room.",
					strings.Join(path, " → "), n, MaxChainDepth-1)})
		}
		c.diags = append(c.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Chains too deep for the kernel",
			Detail: fmt.Sprintf("A path of jumps (%s) would be %d deep, and the kernel allows %d. Fewer tiers, or fewer rules looking more than one large set up (--shard-min), make room.",
				strings.Join(path, " → "), n, MaxChainDepth-1)})
		return nil, c.diags
	}
	if opts.Memo != nil {
		opts.Memo.sets.Done()
	}
	c.t.Sort()
	if diags := checkNames(c.t); diags.HasErrors() {
		return nil, append(c.diags, diags...)
	}
	if diags := checkElements(c.t, opts.Limits); diags.HasErrors() {
		return nil, append(c.diags, diags...)
	}
	return c.t, c.diags
}

// warnNoEndpoints warns when this host enforces no host endpoint (n):
// hostwall then filters nothing here, whatever the policies say — an
// empty configuration, files for other nodes, or endpoints whose node is
// misspelt.
func (c *compiler) warnNoEndpoints(n int) {
	if n > 0 {
		return
	}
	d := &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Nothing is filtered on this host"}
	switch len(c.cfg.Endpoints) {
	case 0:
		d.Detail = fmt.Sprintf("The configuration has no host endpoint, so hostwall filters no traffic on host %q. Declare a host endpoint for each interface to protect (interface = \"*\" for all).", c.opts.HostName)
	default:
		var nodes []string
		for _, hep := range c.cfg.Endpoints {
			if !slices.Contains(nodes, hep.Node) {
				nodes = append(nodes, hep.Node)
			}
		}
		d.Detail = fmt.Sprintf("None of the %d host endpoints is for host %q (their nodes: %s), so hostwall filters no traffic here. Check the node names, or the host name (--host-name, the host block).",
			len(c.cfg.Endpoints), c.opts.HostName, strings.Join(quoted(nodes), ", "))
		d.Subject = c.cfg.Endpoints[0].DeclRange.Ptr()
	}
	c.diags = append(c.diags, d)
}

// quoted is each of xs in double quotes.
func quoted(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.Quote(x)
	}
	return out
}

// endpoints returns the host endpoints this host enforces, one per
// interface (the lexically smallest name wins), sorted by name, and the
// wildcard endpoint (at most one) apart.
func (c *compiler) endpoints() (named, wildcard []*config.HostEndpoint) {
	byIface := map[string]*config.HostEndpoint{}
	for _, hep := range c.cfg.Endpoints {
		if !c.local(hep) {
			continue
		}
		if hep.Interface == "" {
			c.diags = append(c.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Not supported yet: host endpoint without interfaceName",
				Detail:  fmt.Sprintf("Calico finds host endpoint %q's interface by its expectedIPs; hostwall does not yet. Give spec.interfaceName.", hep.Name),
				Subject: hep.DeclRange.Ptr()})
			continue
		}
		prev := byIface[hep.Interface]
		switch {
		case prev == nil:
			byIface[hep.Interface] = hep
		default:
			win, lose := prev, hep
			if hep.Name < prev.Name {
				win, lose = hep, prev
			}
			byIface[hep.Interface] = win
			c.diags = append(c.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Several host endpoints on one interface",
				Detail: fmt.Sprintf("Host endpoints %q and %q both cover interface %q; %q applies (the lexically smallest name), %q is ignored.",
					win.Name, lose.Name, hep.Interface, win.Name, lose.Name),
				Subject: lose.DeclRange.Ptr(),
			})
		}
	}
	for iface, h := range byIface {
		if iface == "*" {
			wildcard = append(wildcard, h)
			c.diags = append(c.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Wildcard host endpoint covers every interface, lo included",
				Detail: fmt.Sprintf("Host endpoint %q (interface \"*\") applies to every interface without an endpoint of its own, loopback too, as in Calico. "+
					"Allow traffic on lo in a policy (or give lo its own endpoint) unless you mean to filter local connections.", h.Name),
				Subject: h.DeclRange.Ptr(),
			})
			continue
		}
		named = append(named, h)
	}
	sort.Slice(named, func(i, j int) bool { return named[i].Name < named[j].Name })
	return named, wildcard
}

// local reports whether the endpoint is enforced on this host.
func (c *compiler) local(hep *config.HostEndpoint) bool {
	return hep.Node == "" || hep.Node == c.opts.HostName
}

// labels returns the labels policies and rule selectors see for an endpoint:
// its own, merged over the host's when it is enforced here.
func (c *compiler) labels(hep *config.HostEndpoint) map[string]string {
	l := map[string]string{}
	if c.cfg.Host != nil && c.local(hep) {
		for k, v := range c.cfg.Host.Labels {
			l[k] = v
		}
	}
	for k, v := range hep.Labels {
		l[k] = v
	}
	return l
}

// baseChain is the hook's chain: established and related traffic is
// accepted first, whatever the interface, and the rest dispatched to the
// endpoint chains by interface. Every endpoint chain would accept it too,
// and an interface with no endpoint passes anyway, so the verdicts are
// those of checking it per endpoint; but the packets of an open connection,
// nearly all of them, are then decided by one conntrack lookup rather than
// a map lookup and a jump as well (docs/performance.md, W5).
func (c *compiler) baseChain(d dirInfo) *ruleset.Chain {
	ch := &ruleset.Chain{
		Owner:   OwnerDispatch,
		Name:    d.base,
		Base:    &ruleset.BaseChain{Type: ruleset.ChainTypeFilter, Hook: d.hook, Priority: 0, Policy: ruleset.PolicyAccept},
		Comment: fmt.Sprintf("%s hook: established traffic passes; the rest is dispatched by interface; interfaces without a host endpoint pass untouched", d.hook),
		Rules:   []*ruleset.Rule{acceptEstablished(), {Verdict: ruleset.VMap(d.ifDir, d.vmap)}},
	}
	c.t.Chains = append(c.t.Chains, ch)
	return ch
}

// dispatch adds the verdict map named vmap, which sends each endpoint's
// interface to the endpoint's chain (made by chain) with to (Jump or Goto),
// and to base, after its lookup in the map, a rule per wildcard endpoint:
// the interfaces not in the map fall through to it.
func (c *compiler) dispatch(base *ruleset.Chain, vmap, comment string, heps, wildcard []*config.HostEndpoint,
	to func(string) ruleset.Verdict, chain func(*config.HostEndpoint) string) {
	m := &ruleset.Set{Name: vmap, Type: ruleset.TypeIfName, Map: true, Comment: comment, Owner: OwnerDispatch}
	c.t.Sets = append(c.t.Sets, m)
	for _, hep := range heps {
		v := to(chain(hep))
		m.Elements = append(m.Elements, ruleset.Element{From: ruleset.IfNameKey(hep.Interface), To: ruleset.IfNameKey(hep.Interface), Verdict: &v})
	}
	m.Normalize()
	for _, hep := range wildcard {
		base.Rules = append(base.Rules, &ruleset.Rule{Verdict: to(chain(hep))})
	}
}

// endpointChain starts the chain of an endpoint for d (owned by the
// endpoint from here on), its comment saying which traffic it sees.
func (c *compiler) endpointChain(d dirInfo, hep *config.HostEndpoint) *ruleset.Chain {
	c.owner = fmt.Sprintf("host endpoint %q", hep.Name)
	comment := fmt.Sprintf("host endpoint %q (interface %s), %s", hep.Name, hep.Interface, d.side())
	switch {
	case hep.Audit && c.auditReturns(d):
		comment += ", audit mode: drops are logged and the packets go on"
	case hep.Audit:
		comment += ", audit mode: drops are logged and the packets accepted"
	}
	return &ruleset.Chain{Owner: c.owner, Name: kernelName("hep", hep.Name, d.suffix), Endpoint: hep.Name, Interface: hep.Interface, Comment: comment}
}

// acceptEstablished starts the base chains and the untracked and pre-DNAT
// endpoint chains; dropInvalid starts the endpoint chains of the filter
// hooks.
func acceptEstablished() *ruleset.Rule {
	return &ruleset.Rule{Matches: []ruleset.Match{ruleset.CTState{States: []string{"established", "related"}}}, Verdict: ruleset.Accept()}
}

func dropInvalid() *ruleset.Rule {
	return &ruleset.Rule{Matches: []ruleset.Match{ruleset.CTState{States: []string{"invalid"}}}, Verdict: ruleset.Drop()}
}

// countedDropInvalid is dropInvalid counted for endpoint hep in d
// (never logged: late segments of closed connections would drown the
// drop log).
func countedDropInvalid(d dirInfo, hep *config.HostEndpoint) *ruleset.Rule {
	r := dropInvalid()
	r.Counter = true
	r.Origin = &ruleset.Origin{Kind: ruleset.OriginInvalid, Endpoint: hep.Name, Direction: d.side(), Action: string(config.Deny)}
	return r
}

// tierPolicies is a tier and the policies of it that select an endpoint.
type tierPolicies struct {
	tier     *config.Tier
	policies []*config.Policy
}

// selectingTiers returns, in order, the tiers with at least one policy that
// selects labels for direction d.
func (c *compiler) selectingTiers(d dirInfo, labels map[string]string, policies []*config.Policy) []tierPolicies {
	var out []tierPolicies
	for _, t := range c.cfg.SortedTiers() {
		tp := tierPolicies{tier: t}
		for _, p := range policies {
			if p.Tier == t.Name && p.Applies(d.dir) && p.Selector.Matches(labels) && d.takesPart(p) {
				tp.policies = append(tp.policies, p)
			}
		}
		if len(tp.policies) > 0 {
			out = append(out, tp)
		}
	}
	return out
}

// hepChain emits the chains of one endpoint and direction and returns the
// name of its entry chain:
//
//	IPv6 ND accept → invalid drop → failsafe → jump to the first selecting
//	tier → profiles → drop
//
// Established and related traffic never gets here: the base chain accepts
// it before it dispatches (baseChain).
//
// Each tier chain jumps to its policies in order and ends in the tier's
// default action; a pass goes on to the next tier chain (goto), and after the
// last one returns here, to the profiles.
func (c *compiler) hepChain(d dirInfo, hep *config.HostEndpoint, failsafe bool, policies []*config.Policy) string {
	ch := c.endpointChain(d, hep)
	if c.markUsed(d) {
		// Allowed by the untracked or pre-DNAT stage: skip the policies.
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: []ruleset.Match{ruleset.Mark{Mask: AcceptMark, Value: AcceptMark}}, Verdict: ruleset.Accept()})
	}
	// IPv6 neighbour discovery keeps IPv6 working on a covered interface
	// (Calico silently breaks it). It goes before the invalid drop, as
	// conntrack does not track these messages as connections.
	if c.cfg.Settings.AllowIPv6ND {
		for _, typ := range ruleset.NeighborDiscoveryTypes {
			ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: []ruleset.Match{ruleset.ICMPType{Family: ruleset.IPv6, Type: typ}}, Verdict: ruleset.Accept()})
		}
	}
	ch.Rules = append(ch.Rules, countedDropInvalid(d, hep))
	if failsafe {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Verdict: ruleset.Jump(d.fsChain)})
	}
	// From the first tier where the staged view differs, the enforced
	// verdicts run the staged view before they take effect (staged.go).
	at, entry := c.stagedFrom(d, hep)
	ch.Rules = append(ch.Rules, c.tiers(d, hep, c.selectingTiers(d, c.labels(hep), policies), at)...)
	// Profiles: the first one decides, as each is final — the built-in
	// allow allows, an unknown one denies.
	if len(hep.Profiles) > 0 && hep.Profiles[0] == config.ProfileDefaultAllow {
		if entry != "" {
			ch.Rules = append(ch.Rules, runWalk(entry, true))
		}
		ch.Rules = append(ch.Rules, &ruleset.Rule{Counter: true, Verdict: ruleset.Accept(),
			Origin: &ruleset.Origin{Kind: ruleset.OriginProfile, Endpoint: hep.Name, Direction: d.side(), Action: string(config.Allow)}})
	}
	// Default deny: no tier decided and no profile allowed.
	if entry != "" {
		ch.Rules = append(ch.Rules, runWalk(entry, false))
	}
	c.withDropLog(ch, c.audited(d, hep, &ruleset.Rule{Counter: true, Verdict: ruleset.Drop(),
		Origin: &ruleset.Origin{Kind: ruleset.OriginDefaultDeny, Endpoint: hep.Name, Direction: d.side(), Action: string(config.Deny)}}))
	c.t.Chains = append(c.t.Chains, ch)
	return ch.Name
}

// tiers emits an endpoint's tier chains for direction d, named after its
// chain and the tier, and returns the rules by which the endpoint's chain
// enters them (none when no tier selects the endpoint): a jump to each in
// turn, each tier chain returning when the packet passes it — or on the
// forward path, and in the untracked and pre-DNAT stages of an endpoint in
// audit mode, a goto to the first, each going on to the next (goto) and
// the last returning, since there a return ends the side or the stage
// past the tiers after it (a forward allow; an audited deny). From the tier of index tally on (noTally:
// none), the policies are the tallying copies and an end of tier that
// drops runs the staged view first.
//
// Until the staged view every path went through the tiers by goto; a
// jump to each keeps the chains' depth, which the kernel bounds (16), the
// same whatever the number of tiers.
func (c *compiler) tiers(d dirInfo, hep *config.HostEndpoint, tiers []tierPolicies, tally int) []*ruleset.Rule {
	name := func(i int) string { return kernelName("hep", hep.Name, d.suffix, "t", tiers[i].tier.Name) }
	// Chained: the forward path, where a return ends the side (an allow,
	// an audited deny), and the untracked and pre-DNAT stages of an
	// endpoint in audit mode, where a return ends the stage (an audited
	// deny). Each goto is a level of the kernel's depth bound.
	chained := d.forward || (d.stage != stageNormal && hep.Audit)
	var enter []*ruleset.Rule
	for i, tp := range tiers {
		next := ruleset.Return()
		if i+1 < len(tiers) && chained {
			next = ruleset.Goto(name(i + 1))
		}
		c.tierChain(d, name(i), hep, tp, next, i >= tally)
		if !chained {
			enter = append(enter, &ruleset.Rule{Verdict: ruleset.Jump(name(i))})
		}
	}
	if chained && len(tiers) > 0 {
		enter = append(enter, &ruleset.Rule{Verdict: ruleset.Goto(name(0))})
	}
	return enter
}

// tierChain emits one endpoint's chain for one tier: a jump to each selecting
// policy, after each the re-check of that policy's pass rules (a pass rule
// returns from the shared policy chain; the same matches here send the
// packet on to the next tier), then the end-of-tier action. With tally,
// the policies are their tallying copies, and the end of tier runs the
// staged view before it drops.
func (c *compiler) tierChain(d dirInfo, name string, hep *config.HostEndpoint, tp tierPolicies, next ruleset.Verdict, tally bool) {
	ch := &ruleset.Chain{Owner: c.owner, Name: name,
		Comment: fmt.Sprintf("host endpoint %q, %s, tier %q", hep.Name, d.side(), tp.tier.Name)}
	for _, p := range tp.policies {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Verdict: ruleset.Jump(c.policyChain(d, p, chainCopy{audit: hep.Audit, tally: tally}))})
		ch.Rules = append(ch.Rules, c.rechecks(d, p, next, hep.Audit)...)
	}
	end := &ruleset.Rule{Counter: true, Verdict: ruleset.Drop(), // end of tier
		Origin: &ruleset.Origin{Kind: ruleset.OriginEndOfTier, Endpoint: hep.Name, Direction: d.side(), Tier: tp.tier.Name, Action: string(config.Deny)}}
	if tp.tier.DefaultAction == config.Pass || d.stage != stageNormal {
		end.Verdict = next // untracked and pre-DNAT stages have no implicit drop
		end.Origin.Action = string(config.Pass)
	} else if tally {
		ch.Rules = append(ch.Rules, runWalk(stagedEntry(d, hep), false))
	}
	c.withDropLog(ch, c.audited(d, hep, end))
	c.t.Chains = append(c.t.Chains, ch)
}

// rechecks are the re-checks, in order, of the rules of policy p that
// return from its chain — pass; on the forward path allow, which lets the
// packet on to the other side; and for an endpoint in audit mode (audit),
// on the forward path and in the untracked and pre-DNAT stages, deny —
// sending the packet to next (a forward allow and an audited deny return,
// ending the side or the stage; an audited deny is logged first).
func (c *compiler) rechecks(d dirInfo, p *config.Policy, next ruleset.Verdict, audit bool) []*ruleset.Rule {
	var out []*ruleset.Rule
	for i, r := range p.Rules(d.dir) {
		v, o := next, (*ruleset.Origin)(nil)
		switch {
		case r.Action == config.Pass:
		case r.Action == config.Allow && d.forward:
			v = ruleset.Return()
		case r.Action == config.Deny && audit && c.auditReturns(d):
			v = ruleset.Return()
			o = &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: d.side(), Tier: p.Tier, Policy: p.Name, Rule: i + 1, Action: string(r.Action), Audit: true}
		default:
			continue
		}
		for _, ms := range c.matchLists(p, d, i, r) {
			if o != nil {
				if l := c.dropLog(o); l != nil {
					l.Matches = ms
					out = append(out, l)
				}
			}
			out = append(out, &ruleset.Rule{Matches: ms, Verdict: v})
		}
	}
	return out
}

// auditReturns reports whether in d an endpoint in audit mode goes on
// past a deny by returning, which ends the side (the forward path) or
// the stage (untracked, pre-DNAT) undecided; elsewhere it accepts.
func (c *compiler) auditReturns(d dirInfo) bool { return d.forward || d.stage != stageNormal }

// policyChain emits (once) the chain holding a policy's rules for one
// direction, or one of its copies (cp), and returns its name.
//
// The audit copy is the one endpoints in audit mode jump to, whose denies
// log and accept (dropChain): shared by every audit endpoint the policy
// selects; a policy selecting none has no copy, one selecting only audit
// endpoints no enforcing chain. The tallying and staged copies serve the
// staged view (staged.go).
func (c *compiler) policyChain(d dirInfo, p *config.Policy, cp chainCopy) string {
	name, comment := kernelName("pol", p.Name, d.suffix), fmt.Sprintf("policy %q, %s", p.Name, d.side())
	if cp != (chainCopy{}) {
		name, comment = kernelName("pol", p.Name, d.suffix, cp.String()), comment+", "+cp.does()
	}
	if c.policyChains[name] {
		return name
	}
	c.policyChains[name] = true
	outer, outerCopy := c.owner, c.copy
	defer func() { c.owner, c.copy = outer, outerCopy }()
	c.owner, c.copy = fmt.Sprintf("policy %q", p.Name), cp
	ch := &ruleset.Chain{Name: name, Owner: c.owner, Comment: comment}
	for i, r := range p.Rules(d.dir) {
		ch.Rules = append(ch.Rules, c.rule(p, d, i, r)...)
	}
	c.t.Chains = append(c.t.Chains, ch)
	return name
}

// audited turns r, a drop of endpoint hep in d, into an accept when hep
// is in audit mode — on the forward path a return, on to the other side
// (withDropLog then logs it as audited).
func (c *compiler) audited(d dirInfo, hep *config.HostEndpoint, r *ruleset.Rule) *ruleset.Rule {
	if hep.Audit && r.Verdict.Kind == ruleset.VerdictDrop {
		r.Verdict, r.Origin.Audit = ruleset.Accept(), true
		if c.auditReturns(d) {
			r.Verdict = ruleset.Return()
		}
	}
	return r
}

// checkProfiles warns about profiles hostwall cannot honour.
func (c *compiler) checkProfiles(heps []*config.HostEndpoint) {
	for _, hep := range heps {
		for _, prof := range hep.Profiles {
			if prof != config.ProfileDefaultAllow {
				c.diags = append(c.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Unknown profile denies",
					Detail: fmt.Sprintf("Host endpoint %q names profile %q; the only profile hostwall knows is %q, so, as in Calico, traffic no policy decided is dropped.",
						hep.Name, prof, config.ProfileDefaultAllow),
					Subject: hep.DeclRange.Ptr(),
				})
			}
		}
	}
}

// addSet adds a set to the table unless one of that name exists already
// (content-addressed names make equal sets share one kernel set).
func (c *compiler) addSet(s *ruleset.Set) string {
	if c.t.Set(s.Name) == nil {
		s.Owner = c.owner
		s.Normalize()
		c.t.Sets = append(c.t.Sets, s)
	}
	return s.Name
}

// netsSet returns the name of a set holding the prefixes of family f.
// domainSet adds the set of family f of the addresses (nets) of domain
// names: named by the names, not by the addresses, so that when a name
// resolves otherwise only the set's elements change (no rule).
func (c *compiler) domainSet(f ruleset.IPFamily, names []string, nets []netip.Prefix) string {
	var elems []ruleset.Element
	for _, n := range nets {
		if familyOf(n) == f {
			elems = append(elems, ruleset.PrefixElement(n))
		}
	}
	return c.addSet(&ruleset.Set{
		Name:     c.setName("dom", familySuffix(f), names...),
		Type:     f.AddrType(),
		Interval: true,
		Comment:  "domains " + strings.Join(names, ", "), // (not the addresses: they change, the comment would not)
		Elements: elems,
	})
}

func (c *compiler) netsSet(f ruleset.IPFamily, nets []netip.Prefix) string {
	var elems []ruleset.Element
	var text []string
	for _, n := range nets {
		if familyOf(n) == f {
			elems = append(elems, ruleset.PrefixElement(n))
			text = append(text, n.String())
		}
	}
	sort.Strings(text)
	return c.addSet(&ruleset.Set{
		Name:     c.setName("nets", familySuffix(f), text...),
		Type:     f.AddrType(),
		Interval: true,
		Comment:  "networks " + strings.Join(text, ", "),
		Elements: elems,
	})
}

// selectorSet returns the name of the set holding the addresses of family f
// that sel selects: the nets of every matching network set and the expected
// IPs of every matching host endpoint, of any node (how one set of files
// describes a fleet).
func (c *compiler) selectorSet(f ruleset.IPFamily, sel *config.Selector, rng hcl.Range, domains bool) string {
	text := sel.String()
	// With the matched sets' domain names (domains: the destination of an
	// egress allow rule, and some matched set has names), another set,
	// named for it.
	kind := "sel"
	if domains {
		domains = false
		for _, ns := range c.cfg.NetworkSets {
			if len(ns.Domains) > 0 && sel.Matches(ns.Labels) {
				domains, kind = true, "seld"
				break
			}
		}
	}
	name := c.setName(kind, familySuffix(f), text)
	if c.t.Set(name) != nil {
		// Made for an earlier rule; a large one costs to make again.
		return name
	}
	var matched []*config.NetworkSet
	size := 0
	for _, ns := range c.cfg.NetworkSets {
		if sel.Matches(ns.Labels) {
			matched = append(matched, ns)
			size += len(ns.Nets)
		}
	}
	var heps []*config.HostEndpoint
	for _, hep := range c.cfg.Endpoints {
		if sel.Matches(c.labels(hep)) {
			heps = append(heps, hep)
		}
	}
	r := Recipe{Set: name, Family: f}
	fileNets := map[string][]netip.Prefix{}
	for _, ns := range matched {
		inline := ns.Nets
		if ns.NetsFile != "" {
			// A copy: the agent keeps recipes (its record), and a slice of
			// ns.Nets would keep all of the nets file's networks behind it.
			inline = append([]netip.Prefix(nil), ns.Nets[:ns.InlineNets]...)
			r.Files = append(r.Files, ns.NetsFile)
			fileNets[ns.NetsFile] = ns.Nets[ns.InlineNets:]
		}
		r.Fixed = append(r.Fixed, inline)
		if domains {
			r.Fixed = append(r.Fixed, ns.DomainNets)
		}
	}
	for _, hep := range heps {
		ips := make([]netip.Prefix, len(hep.ExpectedIPs))
		for i, a := range hep.ExpectedIPs {
			ips[i] = netip.PrefixFrom(a, a.BitLen())
		}
		r.Fixed = append(r.Fixed, ips)
	}
	recipe := -1 // r's place in opts.Recipes
	if c.opts.Recipes != nil && len(r.Files) > 0 {
		recipe = len(*c.opts.Recipes)
		*c.opts.Recipes = append(*c.opts.Recipes, r)
	}
	var key string
	if c.opts.Memo != nil && size >= memoMin && !domains { // (a names' set is small, and changes)
		key = memoKey(name, matched, heps)
		c.memoKeys[name] = key
		if m, ok := c.opts.Memo.sets.Get(key); ok {
			c.warnNoIPs(text, heps, rng)
			made := *m.set // the elements are shared, the owner is this compile's
			made.Owner = c.owner
			if m.split != nil {
				c.memoSplits[name] = m // shard deals it
			}
			if recipe >= 0 {
				(*c.opts.Recipes)[recipe].Merged = m.merged
			}
			c.memoMerged[name] = m.merged
			c.t.Sets = append(c.t.Sets, &made)
			return name
		}
	}
	elems := r.Elements(func(file string) []netip.Prefix { return fileNets[file] })
	c.warnNoIPs(text, heps, rng)
	s := &ruleset.Set{
		Name:     name,
		Type:     f.AddrType(),
		Interval: true,
		Comment:  "selector " + strings.ReplaceAll(text, `"`, "'"),
		Owner:    c.owner,
		Elements: elems,
	}
	merged := s.NormalizeCounting() // addSet's Normalize, counting
	c.t.Sets = append(c.t.Sets, s)
	if recipe >= 0 {
		(*c.opts.Recipes)[recipe].Merged = merged
	}
	if key != "" {
		c.opts.Memo.sets.Keep(key, &memoSet{set: s, merged: merged})
		c.memoMerged[name] = merged
	}
	return name
}

// warnNoIPs warns of the host endpoints a selector matches that list no
// addresses.
func (c *compiler) warnNoIPs(text string, heps []*config.HostEndpoint, rng hcl.Range) {
	for _, hep := range heps {
		if len(hep.ExpectedIPs) == 0 {
			field := "expected_ips"
			if hep.Calico {
				field = "spec.expectedIPs"
			}
			c.warnOnce("noips "+text+" "+hep.Name, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Selector matches a host endpoint without expected IPs",
				Detail: fmt.Sprintf("Selector %q matches host endpoint %q, which lists no %s, so the rule cannot match its traffic; add %s to it.",
					text, hep.Name, field, field),
				Subject: rng.Ptr(),
			})
		}
	}
}

// memoKey names a selector's set by its name and everything it is made of.
func memoKey(name string, sets []*config.NetworkSet, heps []*config.HostEndpoint) string {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	buf = append(buf, name...)
	for _, ns := range sets {
		buf = append(buf, 0xff)
		nets := ns.Nets
		if ns.NetsKey != "" { // the file's networks, by its content's hash
			nets = nets[:ns.InlineNets]
			buf = append(append(append(buf, 0xfd), ns.NetsKey...), 0xfd)
		}
		for _, n := range nets {
			a := n.Addr().As16()
			buf = append(append(buf, a[:]...), byte(n.Bits()), byte(n.Addr().BitLen()))
			if len(buf) > 60<<10 {
				flush()
			}
		}
	}
	for _, hep := range heps {
		buf = append(buf, 0xfe)
		for _, a := range hep.ExpectedIPs {
			b := a.As16()
			buf = append(append(buf, b[:]...), byte(a.BitLen()))
		}
	}
	flush()
	return string(h.Sum(nil))
}

func (c *compiler) warnOnce(key string, d *hcl.Diagnostic) {
	if !c.warned[key] {
		c.warned[key] = true
		c.diags = append(c.diags, d)
	}
}

// portMatch matches one side's ports: inline for one range, a set otherwise.
func (c *compiler) portMatch(proto uint8, side ruleset.Dir, ports []config.PortRange, negate bool) ruleset.Match {
	if len(ports) == 1 {
		return ruleset.Port{Proto: proto, Dir: side, Range: ruleset.PortRange{Lo: ports[0].Lo, Hi: ports[0].Hi}, Negate: negate}
	}
	ports = slices.Clone(ports)
	slices.SortFunc(ports, func(a, b config.PortRange) int { return cmp.Compare(a.Lo, b.Lo)*2 + cmp.Compare(a.Hi, b.Hi) })
	elems := make([]ruleset.Element, len(ports))
	text := make([]string, len(ports))
	for i, p := range ports {
		r := ruleset.PortRange{Lo: p.Lo, Hi: p.Hi}
		elems[i] = ruleset.PortElement(r)
		text[i] = r.String()
	}
	name := c.addSet(&ruleset.Set{
		Name: c.setName("ports", "", text...), Type: ruleset.TypeInetService, Interval: true,
		Comment: "ports " + strings.Join(text, ", "), Elements: elems,
	})
	return ruleset.Port{Proto: proto, Dir: side, Set: name, Negate: negate}
}

func familyOf(p netip.Prefix) ruleset.IPFamily {
	if p.Addr().Is4() {
		return ruleset.IPv4
	}
	return ruleset.IPv6
}

func familySuffix(f ruleset.IPFamily) string {
	if f == ruleset.IPv6 {
		return "6"
	}
	return "4"
}
