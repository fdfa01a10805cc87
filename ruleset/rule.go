package ruleset

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// IDPrefix starts the comment hostwall stores in every rule's user data.
const IDPrefix = "hostwall:"

// Rule is one nftables rule: matches, then optional counter, limit and
// log statements, then a verdict.
type Rule struct {
	Matches []Match
	Counter bool
	// Limit, when set, stops the rule (on to the next) for packets over
	// its rate; it goes before Log, which then logs at most that rate.
	Limit *Limit
	Log   *Log
	// ClearMark clears these bits of the packet mark, then SetMark sets
	// these (meta mark set meta mark & ^ClearMark | SetMark).
	ClearMark, SetMark uint32
	// Notrack exempts the packet from connection tracking.
	Notrack bool
	Verdict Verdict

	// Handle is the kernel's handle. Live rules only; zero in desired rules.
	Handle uint64
	// StoredID is the ID found in a live rule's user data; empty when the rule
	// carries none (it was not made by hostwall). Live rules only.
	StoredID string
	// Packets and Bytes are the rule's counter values. Live rules only;
	// never compared.
	Packets, Bytes uint64
	// Undecoded is set on a live rule whose expressions hostwall cannot
	// express (made by someone else); it holds a description for people.
	Undecoded string

	// Origin says which part of the configuration the rule enforces, for
	// the counters and the drop log; nil for plumbing. Desired rules only;
	// never compared.
	Origin *Origin
}

// String renders the rule in nft syntax.
func (r *Rule) String() string {
	if r.Undecoded != "" {
		return r.Undecoded
	}
	var b strings.Builder
	b.Grow(16 * (len(r.Matches) + 2))
	n := 0
	part := func(p string) { // strings.Join's spacing, without the slice
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
		n++
	}
	for _, m := range r.Matches {
		part(m.String())
	}
	if r.Counter {
		part("counter")
	}
	if r.Limit != nil {
		part(r.Limit.String())
	}
	if r.Log != nil {
		part(r.Log.String())
	}
	if r.ClearMark|r.SetMark != 0 { // as nft prints it
		switch keep := ^(r.ClearMark | r.SetMark) | r.SetMark; {
		case keep == ^uint32(0):
			part(fmt.Sprintf("meta mark set meta mark | 0x%08x", r.SetMark))
		case r.SetMark == 0:
			part(fmt.Sprintf("meta mark set meta mark & 0x%08x", keep))
		default:
			part(fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", keep, r.SetMark))
		}
	}
	if r.Notrack {
		part("notrack")
	}
	if v := r.Verdict.String(); v != "" {
		part(v)
	}
	return b.String()
}

// ID is the rule's stable identity inside the chain called chain: a hash of
// the chain name and the rule's canonical text. It does not depend on the
// rule's position, so inserting a rule leaves the IDs of the others alone and
// the planner can diff a chain rule by rule.
func (r *Rule) ID(chain string) string {
	h := sha256.Sum256([]byte(chain + "\x00" + r.String()))
	return strings.ToLower(base32.StdEncoding.EncodeToString(h[:10]))
}

// Comment is the user-data comment stored with the rule in the kernel.
func (r *Rule) Comment(chain string) string {
	return IDPrefix + r.ID(chain)
}

// Intact reports whether a live rule is what hostwall made: it decoded, and
// the ID in its user data is the hash of what it does.
func (r *Rule) Intact(chain string) bool {
	return r.Undecoded == "" && r.StoredID == r.ID(chain)
}

// Log is the log statement: to the kernel log, or with Group to that
// NFLOG group (which userspace reads: hostwall drops).
type Log struct {
	Prefix string
	Group  *uint16
}

func (l *Log) String() string {
	if l.Group != nil {
		return fmt.Sprintf("log prefix %q group %d", l.Prefix, *l.Group)
	}
	return fmt.Sprintf("log prefix %q", l.Prefix)
}

// Limit is the limit statement: at most Rate packets a second, with
// bursts of Burst packets beyond it.
type Limit struct {
	Rate  uint64
	Burst uint32
}

// String is the statement as nft lists it, which leaves out a burst of
// 5 packets, the default.
func (l *Limit) String() string {
	if l.Burst == 5 {
		return fmt.Sprintf("limit rate %d/second", l.Rate)
	}
	return fmt.Sprintf("limit rate %d/second burst %d packets", l.Rate, l.Burst)
}

// OriginKind names what a rule enforces; the words are explain's
// (explain.StepKind), so a drop and an explanation read alike.
type OriginKind string

// Origin kinds.
const (
	OriginPolicyRule  OriginKind = "policy rule"
	OriginEndOfTier   OriginKind = "end of tier"
	OriginDefaultDeny OriginKind = "default deny"
	OriginProfile     OriginKind = "profile"
	OriginFailsafe    OriginKind = "failsafe entry"
	OriginWorkload    OriginKind = "workload to host"
	OriginInvalid     OriginKind = "invalid connection state"
	// OriginStagedChange counts the packets on which the staged view
	// disagrees with the enforced one: for an endpoint (Endpoint set) or a
	// staged policy's rule (Policy set); Action is what the staged view
	// would do ("deny": would newly drop; "allow": would newly allow).
	OriginStagedChange OriginKind = "staged change"
)

// Origin is the part of the configuration a rule enforces.
type Origin struct {
	Kind OriginKind `json:"kind"`
	// Endpoint is the host endpoint, for the rules of an endpoint's own
	// chains; a policy's rules are shared by every endpoint it selects.
	Endpoint string `json:"endpoint,omitempty"`
	// Direction is "ingress", "egress", "forwarded ingress", "untracked
	// egress", "pre-DNAT ingress".
	Direction string `json:"direction"`
	Tier      string `json:"tier,omitempty"`
	Policy    string `json:"policy,omitempty"`
	// Rule is the policy rule's position among the policy's rules of the
	// direction, from 1.
	Rule   int    `json:"rule,omitempty"`
	Action string `json:"action,omitempty"`
	// Audit marks a decision of an endpoint in audit mode: a drop it
	// would make is logged and the packet accepted.
	Audit bool `json:"audit,omitempty"`
	// Staged marks a decision of the staged view (a staged policy's rule,
	// or the staged view's end of tier or default deny): counted and
	// logged, never enforced.
	Staged bool `json:"staged,omitempty"`
}

// CompareOrigins orders origins by their fields, for stable listings.
func CompareOrigins(a, b *Origin) int {
	key := func(o *Origin) string {
		return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%06d\x00%s\x00%v\x00%v", o.Kind, o.Endpoint, o.Direction, o.Tier, o.Policy, o.Rule, o.Action, o.Audit, o.Staged)
	}
	return strings.Compare(key(a), key(b))
}

func (o *Origin) String() string {
	var b strings.Builder
	switch {
	case o.Audit:
		b.WriteString("audit, would drop: ")
	case o.Staged:
		b.WriteString("staged: ")
	}
	b.WriteString(string(o.Kind))
	switch o.Kind {
	case OriginStagedChange:
		change := "would newly drop"
		if o.Action == "allow" {
			change = "would newly allow"
		}
		if o.Policy != "" {
			fmt.Fprintf(&b, " (%s): tier %q, policy %q, %s rule %d", change, o.Tier, o.Policy, o.Direction, o.Rule)
		} else {
			fmt.Fprintf(&b, " (%s): host endpoint %q, %s", change, o.Endpoint, o.Direction)
		}
	case OriginPolicyRule:
		fmt.Fprintf(&b, ": tier %q, policy %q, %s rule %d (%s)", o.Tier, o.Policy, o.Direction, o.Rule, o.Action)
	case OriginEndOfTier:
		fmt.Fprintf(&b, " %q: host endpoint %q, %s", o.Tier, o.Endpoint, o.Direction)
	default:
		if o.Endpoint != "" {
			fmt.Fprintf(&b, ": host endpoint %q, %s", o.Endpoint, o.Direction)
		} else {
			fmt.Fprintf(&b, ": %s", o.Direction)
		}
	}
	return b.String()
}

// VerdictKind says what a rule does when all its matches hold.
type VerdictKind string

// Verdict kinds. The zero value is VerdictNone: the rule only counts or logs
// and evaluation continues.
const (
	VerdictNone   VerdictKind = ""
	VerdictAccept VerdictKind = "accept"
	VerdictDrop   VerdictKind = "drop"
	VerdictReturn VerdictKind = "return"
	VerdictJump   VerdictKind = "jump"
	VerdictGoto   VerdictKind = "goto"
	// VerdictVMap looks the packet's interface name, or with Family its
	// address, up in a verdict map.
	VerdictVMap VerdictKind = "vmap"
)

// Verdict ends a rule.
type Verdict struct {
	Kind VerdictKind
	// Chain is the target of VerdictJump and VerdictGoto.
	Chain string
	// Map and Key are the verdict map and the interface the key is taken from,
	// for VerdictVMap; or, when Family is set, Family and Dir say which
	// address is the key (a sharded set's dispatch map).
	Map    string
	Key    IfDir
	Family IPFamily
	Dir    Dir
}

func (v Verdict) String() string {
	switch v.Kind {
	case VerdictJump, VerdictGoto:
		return string(v.Kind) + " " + v.Chain
	case VerdictVMap:
		if v.Family != "" {
			return v.Family.Prefix() + " " + string(v.Dir) + "addr vmap @" + v.Map
		}
		return string(v.Key) + " vmap @" + v.Map
	default:
		return string(v.Kind)
	}
}

// Accept, Drop, Return, Jump and Goto build verdicts.
func Accept() Verdict                  { return Verdict{Kind: VerdictAccept} }
func Return() Verdict                  { return Verdict{Kind: VerdictReturn} }
func Drop() Verdict                    { return Verdict{Kind: VerdictDrop} }
func Jump(chain string) Verdict        { return Verdict{Kind: VerdictJump, Chain: chain} }
func Goto(chain string) Verdict        { return Verdict{Kind: VerdictGoto, Chain: chain} }
func VMap(key IfDir, m string) Verdict { return Verdict{Kind: VerdictVMap, Map: m, Key: key} }

// Dispatches reports whether v looks the packet's address up in a verdict
// map (AddrVMap): a sharded set's dispatch.
func (v Verdict) Dispatches() bool { return v.Kind == VerdictVMap && v.Family != "" }

// AddrVMap looks the packet's address of family f on side d up in the
// verdict map m.
func AddrVMap(f IPFamily, d Dir, m string) Verdict {
	return Verdict{Kind: VerdictVMap, Map: m, Family: f, Dir: d}
}
