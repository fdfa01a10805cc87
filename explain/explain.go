package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/hostwall/hostwall/config"
)

// Direction is the way a packet crosses the interface.
type Direction string

// Directions.
const (
	In      Direction = "in"      // to this host (input)
	Out     Direction = "out"     // from this host (output)
	Forward Direction = "forward" // routed through this host
)

// State is the packet's connection-tracking state.
type State string

// Connection-tracking states.
const (
	New         State = "new"
	Established State = "established"
	Related     State = "related"
	Invalid     State = "invalid"
)

// Packet is what explain evaluates.
type Packet struct {
	Iface string
	// OutIface is the interface a forwarded packet leaves by.
	OutIface  string
	Direction Direction
	Proto     uint8
	Src, Dst  netip.Addr
	// SPort and DPort are used for protocols with ports.
	SPort, DPort uint16
	// ICMPType and ICMPCode are used for ICMP and ICMPv6; -1 when unset.
	ICMPType, ICMPCode int
	State              State
}

// Verdict is the fate of the packet.
type Verdict string

// Verdicts.
const (
	Allow Verdict = "allow"
	Deny  Verdict = "deny"
)

// StepKind names what decided, or what happened on the way.
type StepKind string

// Step kinds.
const (
	Untouched        StepKind = "untouched interface"
	ForwardUnpoliced StepKind = "forwarded, no forward policy"
	ForwardAllowed   StepKind = "forwarded, no policy denied"
	ConnTracked      StepKind = "established or related connection"
	NeighborDisc     StepKind = "IPv6 neighbour discovery"
	InvalidState     StepKind = "invalid connection state"
	FailsafeEntry    StepKind = "failsafe entry"
	PolicyRule       StepKind = "policy rule"
	EndOfTier        StepKind = "end of tier"
	UntrackedRule    StepKind = "untracked policy rule"
	PreDNATRule      StepKind = "pre-DNAT policy rule"
	TierPassed       StepKind = "tier passed"
	Profile          StepKind = "profile"
	DefaultDeny      StepKind = "default deny"
	WorkloadToHost   StepKind = "workload to host"
	HostToWorkload   StepKind = "host to workload"
)

// Step is one thing that happened to the packet.
type Step struct {
	Kind     StepKind
	Endpoint string
	Tier     string
	Policy   string
	Rule     int // 1-based, within the policy's rules of the direction
	Action   config.Action
	Detail   string
}

func (s Step) String() string {
	switch s.Kind {
	case PolicyRule, UntrackedRule, PreDNATRule:
		if s.Policy != "" {
			return fmt.Sprintf("%s: tier %q, policy %q, %s rule %d (%s)", s.Kind, s.Tier, s.Policy, dirWord(s), s.Rule, s.Action)
		}
	case EndOfTier, TierPassed:
		return fmt.Sprintf("%s %q: %s", s.Kind, s.Tier, s.Detail)
	}
	if s.Detail != "" {
		return fmt.Sprintf("%s: %s", s.Kind, s.Detail)
	}
	return string(s.Kind)
}

func dirWord(s Step) string {
	if s.Detail != "" {
		return s.Detail
	}
	return "the"
}

// Result is the verdict, the step that decided it, and every step taken.
// Audit is set when an endpoint in audit mode accepted a packet that
// Decided would have dropped. Staged, when the configuration has staged
// policies and their view decides the packet otherwise (another verdict,
// or another step), is that view's result.
type Result struct {
	Verdict Verdict
	Decided Step
	Trace   []Step
	Audit   bool
	Staged  *Result
}

// Explain evaluates p against the configuration as host hostName enforces
// it.
func Explain(cfg *config.Config, hostName string, p Packet) Result {
	cfg = cfg.ForHost(hostName)
	e := &evaluator{cfg: cfg.Enforced(), host: hostName}
	r := e.result(p)
	if cfg.HasStaged() {
		s := (&evaluator{cfg: cfg.StagedView(), host: hostName}).result(p)
		if s.Verdict != r.Verdict || s.Audit != r.Audit || s.Decided.String() != r.Decided.String() {
			r.Staged = &s
		}
	}
	return r
}

type evaluator struct {
	cfg   *config.Config
	host  string
	trace []Step
	// auditedBy is the first deny an endpoint in audit mode went on past
	// on the forward path or in the untracked or pre-DNAT stage (which
	// then ends the side or the stage undecided).
	auditedBy *Step
}

// result evaluates p: a packet an endpoint in audit mode let on past a
// deny, and nothing dropped after, is allowed, audited, decided by that
// deny (where enforcing would have dropped it).
func (e *evaluator) result(p Packet) Result {
	r := e.run(p)
	if e.auditedBy != nil && r.Verdict == Allow {
		r.Audit, r.Decided = true, *e.auditedBy
	}
	return r
}

// audit notes s, a deny of an endpoint in audit mode that the packet goes
// on past.
func (e *evaluator) audit(s Step) {
	e.trace = append(e.trace, s)
	if e.auditedBy == nil {
		e.auditedBy = &s
	}
}

func (e *evaluator) done(v Verdict, s Step) Result {
	e.trace = append(e.trace, s)
	return Result{Verdict: v, Decided: s, Trace: e.trace}
}

func (e *evaluator) run(p Packet) Result {
	// The untracked stage (raw) and the pre-DNAT stage (mangle prerouting)
	// come first; what they allow skips the normal policies, except the
	// egress side of a forwarded packet.
	if v, s, ok := e.early(p); ok {
		if v == Deny || p.Direction != Forward {
			return e.done(v, s)
		}
		e.trace = append(e.trace, s)
		return e.forward(p, true)
	}
	if p.Direction == Forward {
		return e.forward(p, false)
	}
	if prefix, ok := e.cfg.Workloads.Match(p.Iface); ok {
		if r, decided := e.workload(p, prefix); decided {
			return r
		}
	}
	hep := e.endpoint(p.Iface)
	if hep == nil {
		return e.done(Allow, Step{Kind: Untouched, Detail: fmt.Sprintf("no host endpoint covers %s", p.Iface)})
	}
	at := Step{Endpoint: hep.Name}
	switch p.State {
	case Established, Related:
		at.Kind = ConnTracked
		return e.done(Allow, at)
	}
	if e.cfg.Settings.AllowIPv6ND && p.Proto == config.ProtoICMPv6 && p.ICMPType >= 133 && p.ICMPType <= 136 {
		at.Kind = NeighborDisc
		return e.done(Allow, at)
	}
	if p.State == Invalid {
		at.Kind = InvalidState
		return e.done(Deny, at)
	}
	if entry, ok := e.failsafe(p); ok {
		at.Kind, at.Detail = FailsafeEntry, entry
		return e.done(Allow, at)
	}
	dir := config.Ingress
	if p.Direction == Out {
		dir = config.Egress
	}
	return e.audited(hep, e.policies(hep, dir, p, at))
}

// policies decides p by hep's tiers, then its profiles and the default
// deny.
func (e *evaluator) policies(hep *config.HostEndpoint, dir config.Direction, p Packet, at Step) Result {
	labels := e.labels(hep)
	for _, tier := range e.cfg.SortedTiers() {
		v, decided, ok := e.tier(tier, dir, labels, hep, p, false)
		if ok {
			return e.done(v, decided)
		}
	}
	if len(hep.Profiles) > 0 {
		prof := hep.Profiles[0]
		at.Kind, at.Detail = Profile, prof
		if prof == config.ProfileDefaultAllow {
			return e.done(Allow, at)
		}
		at.Detail = prof + " (unknown profiles deny)"
		return e.done(Deny, at)
	}
	at.Kind = DefaultDeny
	at.Detail = "no policy decided and the endpoint has no profile"
	return e.done(Deny, at)
}

// audited is r for endpoint hep: in audit mode a deny is accepted, and
// marked as audited.
func (e *evaluator) audited(hep *config.HostEndpoint, r Result) Result {
	if hep.Audit && r.Verdict == Deny {
		r.Verdict, r.Audit = Allow, true
	}
	return r
}

// stageKind is what a stage's allow or deny is reported as.
var stageKind = map[string]StepKind{"untracked": UntrackedRule, "pre-DNAT": PreDNATRule}

// workload decides a packet between this host and a workload interface
// (one whose name starts with prefix), as the base chains do before any
// wildcard endpoint: leaving for the workload it passes; arriving, after
// established and related traffic, the ICMPv6 messages IPv6 needs and the
// invalid drop, the workload-to-host action decides — except Return,
// which goes on (decided false) to the wildcard endpoint, if any.
func (e *evaluator) workload(p Packet, prefix string) (Result, bool) {
	w := e.cfg.Workloads
	at := Step{Kind: WorkloadToHost}
	where := fmt.Sprintf("%s is a workload interface (prefix %q)", p.Iface, prefix)
	switch {
	case p.State == Established || p.State == Related:
		return e.done(Allow, Step{Kind: ConnTracked, Detail: where}), true
	case p.Direction == Out:
		return e.done(Allow, Step{Kind: HostToWorkload, Detail: where + "; the host may always reach its workloads"}), true
	case p.Proto == config.ProtoICMPv6 && p.ICMPType >= 0 && slices.Contains(config.WorkloadICMPv6Types, uint8(p.ICMPType)):
		at.Detail = fmt.Sprintf("%s; ICMPv6 type %d from a workload is always accepted (IPv6 needs it), as in Calico", where, p.ICMPType)
		return e.done(Allow, at), true
	case p.State == Invalid:
		return e.done(Deny, Step{Kind: InvalidState, Detail: where}), true
	}
	at.Detail = fmt.Sprintf("%s; %s %s", where, w.ActionField(), w.Action())
	switch w.Action() {
	case config.ToHostAccept:
		return e.done(Allow, at), true
	case config.ToHostReturn:
		at.Detail += ": the wildcard host endpoint, if any, decides"
		e.trace = append(e.trace, at)
		return Result{}, false
	}
	return e.done(Deny, at), true
}

// early runs the untracked and pre-DNAT stages; ok is set when one decided.
// Neither sees what arrives on or leaves by a workload interface: no host
// endpoint names one, and the pre-DNAT stage lets it by before the
// wildcard endpoint.
func (e *evaluator) early(p Packet) (Verdict, Step, bool) {
	if _, ok := e.cfg.Workloads.Match(p.Iface); ok {
		return "", Step{}, false
	}
	arriving := p.Direction == In || p.Direction == Forward
	iface, dir := p.Iface, config.Ingress
	if !arriving {
		iface, dir = p.Iface, config.Egress
	}
	hep := e.endpoint(iface)
	if hep == nil {
		return "", Step{}, false
	}
	// Untracked: named endpoints only; failsafe ports (and their replies)
	// skip it.
	// An endpoint in audit mode goes on past a deny: the stage ends
	// undecided.
	if e.cfg.HasUntrackedPolicies() && hep.Interface != "*" && !e.rawFailsafe(p, arriving) {
		if v, s, ok := e.stage(hep, dir, p, "untracked", func(pol *config.Policy) bool { return pol.DoNotTrack }); ok {
			if v != Deny || !hep.Audit {
				return v, s, true
			}
			e.audit(s)
		}
	}
	// Pre-DNAT: arriving packets only, after established and failsafe.
	if arriving && e.cfg.HasPreDNATPolicies() && p.State != Established && p.State != Related {
		if _, fs := e.failsafeIn(p); !fs {
			if v, s, ok := e.stage(hep, config.Ingress, p, "pre-DNAT", func(pol *config.Policy) bool { return pol.PreDNAT }); ok {
				if v != Deny || !hep.Audit {
					return v, s, true
				}
				e.audit(s)
			}
		}
	}
	return "", Step{}, false
}

// stage evaluates the tiers of an untracked or pre-DNAT stage: allow and
// deny decide, pass and the end of a tier go on, there is no implicit drop.
func (e *evaluator) stage(hep *config.HostEndpoint, dir config.Direction, p Packet, name string, member func(*config.Policy) bool) (Verdict, Step, bool) {
	labels := e.labels(hep)
	for _, t := range e.cfg.SortedTiers() {
		step := Step{Kind: stageKind[name], Endpoint: hep.Name, Tier: t.Name, Detail: name + " " + string(dir)}
		if v, s, _ := e.rules(e.policiesOf(t, dir, labels, member), dir, p, step); v != "" {
			return v, s, true
		}
	}
	return "", Step{}, false
}

// rules walks the rules of pols for dir in order, as one tier of any stage
// does: the first matching allow or deny decides (v), a matching log rule
// is traced and the walk goes on, a matching pass rule is traced and ends
// the walk (passed). step is the stage's step, which each rule's fills in.
func (e *evaluator) rules(pols []*config.Policy, dir config.Direction, p Packet, step Step) (v Verdict, decided Step, passed bool) {
	for _, pol := range pols {
		for i, r := range pol.Rules(dir) {
			if !e.matches(r, p, r.CountsSetDomains(dir)) {
				continue
			}
			s := step
			s.Policy, s.Rule, s.Action = pol.Name, i+1, r.Action
			switch r.Action {
			case config.Allow:
				return Allow, s, false
			case config.Deny:
				return Deny, s, false
			case config.Log:
				e.trace = append(e.trace, s)
			case config.Pass:
				e.trace = append(e.trace, s)
				return "", Step{}, true
			}
		}
	}
	return "", Step{}, false
}

// rawFailsafe reports whether the untracked stage lets a packet by as
// failsafe traffic: a failsafe port of its direction by destination port, or
// of the other direction by source port (a reply), with the entry's network
// on the remote side.
func (e *evaluator) rawFailsafe(p Packet, arriving bool) bool {
	same, other, remote := e.cfg.Failsafe.Inbound, e.cfg.Failsafe.Outbound, p.Src
	if !arriving {
		same, other, remote = other, same, p.Dst
	}
	hit := func(entries []config.ProtoPort, port uint16) bool {
		for _, f := range entries {
			if f.Protocol == p.Proto && hasPorts(p.Proto) && f.Port == port && (!f.Net.IsValid() || f.Net.Contains(remote)) {
				return true
			}
		}
		return false
	}
	return hit(same, p.DPort) || hit(other, p.SPort)
}

func (e *evaluator) failsafeIn(p Packet) (string, bool) {
	q := p
	q.Direction = In
	return e.failsafe(q)
}

// forward evaluates a routed packet: the side it arrives on (ingress
// policies of that endpoint), then the side it leaves by (egress), with only
// apply_on_forward policies, no failsafe and no profiles. A side without an
// endpoint, or where no selecting tier decides, lets it on; so does an
// endpoint in audit mode where it would deny.
func (e *evaluator) forward(p Packet, arrivalAllowed bool) Result {
	if !e.cfg.HasForwardPolicies() {
		if arrivalAllowed {
			return Result{Verdict: Allow, Decided: e.trace[len(e.trace)-1], Trace: e.trace}
		}
		return e.done(Allow, Step{Kind: ForwardUnpoliced, Detail: "hostwall installs no forward hook without an apply_on_forward policy that is neither pre-DNAT nor untracked"})
	}
	var allowedBy *Step
	for _, side := range []struct {
		iface string
		dir   config.Direction
	}{{p.Iface, config.Ingress}, {p.OutIface, config.Egress}} {
		hep := e.endpoint(side.iface)
		if hep == nil || (arrivalAllowed && side.dir == config.Ingress) {
			continue
		}
		switch p.State {
		case Established, Related:
			return e.done(Allow, Step{Kind: ConnTracked, Endpoint: hep.Name})
		case Invalid:
			return e.done(Deny, Step{Kind: InvalidState, Endpoint: hep.Name})
		}
		labels := e.labels(hep)
		for _, tier := range e.cfg.SortedTiers() {
			v, decided, ok := e.tier(tier, side.dir, labels, hep, p, true)
			if !ok {
				continue
			}
			switch {
			case v == Deny && hep.Audit: // on to the other side
				e.audit(decided)
			case v == Deny:
				return e.done(Deny, decided)
			default:
				e.trace = append(e.trace, decided)
				allowedBy = &decided
			}
			break
		}
	}
	if allowedBy != nil {
		return Result{Verdict: Allow, Decided: *allowedBy, Trace: e.trace}
	}
	return e.done(Allow, Step{Kind: ForwardAllowed, Detail: "no apply_on_forward policy denied it"})
}

// tier evaluates one tier; ok is false when the tier did not decide (it
// selects nothing, or passed).
func (e *evaluator) tier(t *config.Tier, dir config.Direction, labels map[string]string, hep *config.HostEndpoint, p Packet, forward bool) (Verdict, Step, bool) {
	selected := e.policiesOf(t, dir, labels, func(pol *config.Policy) bool { return pol.Normal() && (pol.ApplyOnForward || !forward) })
	if len(selected) == 0 {
		return "", Step{}, false
	}
	side := string(dir)
	if forward {
		side = "forwarded " + side // as the drop log says it
	}
	v, s, passed := e.rules(selected, dir, p, Step{Kind: PolicyRule, Endpoint: hep.Name, Tier: t.Name, Detail: side})
	switch {
	case v != "":
		return v, s, true
	case passed:
		e.trace = append(e.trace, Step{Kind: TierPassed, Endpoint: hep.Name, Tier: t.Name, Detail: "a pass rule skips the rest of the tier"})
		return "", Step{}, false
	}
	if t.DefaultAction == config.Pass {
		e.trace = append(e.trace, Step{Kind: TierPassed, Endpoint: hep.Name, Tier: t.Name, Detail: "no policy decided; the tier's default action is pass"})
		return "", Step{}, false
	}
	return Deny, Step{Kind: EndOfTier, Endpoint: hep.Name, Tier: t.Name, Detail: "policies of the tier select the endpoint, none decided"}, true
}

// policiesOf returns, in evaluation order, the policies of tier t that select
// labels for direction dir and belong to the stage (member).
func (e *evaluator) policiesOf(t *config.Tier, dir config.Direction, labels map[string]string, member func(*config.Policy) bool) []*config.Policy {
	var out []*config.Policy
	for _, pol := range e.cfg.Policies {
		if member(pol) && pol.Tier == t.Name && pol.Applies(dir) && pol.Selector.Matches(labels) {
			out = append(out, pol)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return policyLess(out[i], out[j]) })
	return out
}

// policyLess orders policies by order (unset last), then name.
func policyLess(a, b *config.Policy) bool {
	switch {
	case a.Order == nil && b.Order == nil:
	case a.Order == nil:
		return false
	case b.Order == nil:
		return true
	case *a.Order != *b.Order:
		return *a.Order < *b.Order
	}
	return a.Name < b.Name
}

// endpoint finds the endpoint enforced on iface: an exact one (the
// lexically smallest name when several), else the wildcard one.
func (e *evaluator) endpoint(iface string) *config.HostEndpoint {
	var exact, wild *config.HostEndpoint
	for _, h := range e.cfg.Endpoints {
		if h.Node != "" && h.Node != e.host {
			continue
		}
		switch {
		case h.Interface == iface && (exact == nil || h.Name < exact.Name):
			exact = h
		case h.Interface == "*" && (wild == nil || h.Name < wild.Name):
			wild = h
		}
	}
	if exact != nil {
		return exact
	}
	return wild
}

// labels are an endpoint's labels over the host's, for endpoints of this
// host.
func (e *evaluator) labels(h *config.HostEndpoint) map[string]string {
	out := map[string]string{}
	if e.cfg.Host != nil && (h.Node == "" || h.Node == e.host) {
		for k, v := range e.cfg.Host.Labels {
			out[k] = v
		}
	}
	for k, v := range h.Labels {
		out[k] = v
	}
	return out
}

func (e *evaluator) failsafe(p Packet) (string, bool) {
	entries, remote := e.cfg.Failsafe.Inbound, p.Src
	if p.Direction == Out {
		entries, remote = e.cfg.Failsafe.Outbound, p.Dst
	}
	for _, f := range entries {
		if f.Protocol == p.Proto && hasPorts(p.Proto) && f.Port == p.DPort && (!f.Net.IsValid() || f.Net.Contains(remote)) {
			if f.Net.IsValid() {
				return fmt.Sprintf("%s:%s:%d", protoName(f.Protocol), f.Net, f.Port), true
			}
			return fmt.Sprintf("%s:%d", protoName(f.Protocol), f.Port), true
		}
	}
	return "", false
}

func protoName(p uint8) string {
	for n, v := range config.ProtocolNumbers {
		if v == p {
			return n
		}
	}
	return fmt.Sprint(p)
}

func hasPorts(proto uint8) bool {
	return slices.Contains([]uint8{config.ProtoTCP, config.ProtoUDP, config.ProtoSCTP, config.ProtoUDPLite}, proto)
}
