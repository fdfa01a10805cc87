package planner

import (
	"github.com/hostwall/hostwall/ruleset"
)

// FormatVersion is the version of the JSON plan format.
const FormatVersion = "1.0"

// Action is what Apply will do to one object. Its value is the glyph the
// human plan prints; the zero value does nothing.
type Action rune

// Actions.
const (
	NoOp     Action = 0
	Create   Action = '+'
	Update   Action = '~' // change rules or elements in place
	Recreate Action = '±' // delete and add again in the same batch
	Delete   Action = '-'
)

// Word is the action's name in JSON and prose.
func (a Action) Word() string {
	switch a {
	case Create:
		return "create"
	case Update:
		return "update"
	case Recreate:
		return "recreate"
	case Delete:
		return "delete"
	}
	return "no-op"
}

// Kind is the kind of object a change is about.
type Kind string

// Object kinds, in the order changes are listed.
const (
	KindTable Kind = "table"
	KindSet   Kind = "set"
	KindMap   Kind = "map"
	KindChain Kind = "chain"
)

// Reason explains a change to people. Apply must never branch on it.
type Reason string

// Reasons.
const (
	ReasonConfig    Reason = "configuration"
	ReasonMissing   Reason = "missing from the kernel"
	ReasonUnwanted  Reason = "not in the configuration"
	ReasonDrift     Reason = "changed outside hostwall"
	ReasonHookShape Reason = "hook, type or policy changed"
)

// OwnerRemoved groups objects that no configuration object produces.
const OwnerRemoved = "no longer in the configuration"

// Change is one planned operation on one object.
type Change struct {
	Kind   Kind
	Name   string
	Action Action
	Reason Reason
	// Comment says what the object is for ("policy \"web\", ingress").
	Comment string
	// Owner names the configuration object that produced it (`policy
	// "web"`); plans group changes by it. OwnerRemoved for objects the
	// configuration no longer has.
	Owner string
	Chain *ChainDiff // chains only
	Set   *SetDiff   // sets and maps only
}

// ChainDiff is what happens to a chain's rules.
type ChainDiff struct {
	Before *ruleset.Chain // live; nil for Create
	After  *ruleset.Chain // desired; nil for Delete
	// Deleted are live rules to remove (by handle). For Delete and Recreate
	// the whole chain goes and Deleted is empty.
	Deleted []*ruleset.Rule
	// Inserts are desired rules to add to a chain that exists. For Create and
	// Recreate, After.Rules are all added and Inserts is empty.
	Inserts []Insert
}

// Insert adds one rule to an existing chain.
type Insert struct {
	Rule *ruleset.Rule
	// Index is the rule's position in the desired chain.
	Index int
	// After is the handle of the kept live rule the new rule follows; 0
	// means at the start of the chain. Rules sharing an anchor are in
	// desired order.
	After uint64
}

// SetDiff is what happens to a set's elements.
type SetDiff struct {
	Before  *ruleset.Set // live; nil for Create
	After   *ruleset.Set // desired; nil for Delete
	Added   []ruleset.Element
	Removed []ruleset.Element
	// Reset declares the set again, for an Update: another program gave it
	// a default timeout, which declaring it as hostwall does takes away.
	Reset bool
}

// Plan is the ordered list of changes that makes the live table the desired
// one.
type Plan struct {
	// CreateTable is set when the table does not exist yet; DeleteTable
	// when the whole table goes (Remove): Changes then list what goes with
	// it, for people, and the kernel is asked to delete the table itself.
	CreateTable bool
	DeleteTable bool
	// WakeTable is set when the live table is dormant (another program set
	// its flag: none of its rules see a packet); every batch clears the
	// flag.
	WakeTable bool
	Changes   []Change
	// Generation is the kernel ruleset generation the live table was read at;
	// filled by the caller that read it.
	Generation uint32
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return !p.CreateTable && !p.DeleteTable && !p.WakeTable && len(p.Changes) == 0
}

// ElementsOnly reports whether the plan changes the elements of existing
// sets and nothing else (true of an empty plan).
func (p *Plan) ElementsOnly() bool {
	if p.CreateTable || p.DeleteTable || p.WakeTable {
		return false
	}
	for _, c := range p.Changes {
		if c.Set == nil || c.Action != Update || c.Set.After == nil || c.Set.Reset {
			return false
		}
	}
	return true
}

// Summary counts objects to add, change and destroy, as Terraform does: a
// recreate counts as one add and one destroy.
func (p *Plan) Summary() (add, change, destroy int) {
	if p.CreateTable {
		add++
	}
	if p.DeleteTable {
		destroy++
	}
	if p.WakeTable {
		change++
	}
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			add++
		case Update:
			change++
		case Recreate:
			add++
			destroy++
		case Delete:
			destroy++
		}
	}
	return add, change, destroy
}

// Drift lists the live rules the plan removes because they were changed or
// added outside hostwall, with the chain each is in.
func (p *Plan) Drift() []DriftRule {
	var out []DriftRule
	for _, c := range p.Changes {
		if c.Chain == nil {
			continue
		}
		for _, r := range c.Chain.Deleted {
			if c.Chain.Before != nil && !r.Intact(c.Name) {
				out = append(out, DriftRule{Chain: c.Name, Rule: r})
			}
		}
	}
	return out
}

// DriftRule is a live rule hostwall did not make, or that was altered.
type DriftRule struct {
	Chain string
	Rule  *ruleset.Rule
}
