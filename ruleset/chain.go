package ruleset

import (
	"fmt"
)

// ChainType is the type of a base chain.
type ChainType string

// ChainTypeFilter is the only base-chain type hostwall uses.
const ChainTypeFilter ChainType = "filter"

// Hook is a netfilter hook a base chain attaches to.
type Hook string

// Hooks hostwall attaches to.
const (
	HookInput      Hook = "input"
	HookOutput     Hook = "output"
	HookForward    Hook = "forward"
	HookPrerouting Hook = "prerouting"
)

// Standard base-chain priorities.
const (
	PriorityRaw    = -300
	PriorityMangle = -150
	PriorityFilter = 0
)

// Policy is a base chain's default verdict. The zero value is accept, so a
// forgotten field can never drop traffic.
type Policy string

// Base-chain policies.
const (
	PolicyAccept Policy = "accept"
	PolicyDrop   Policy = "drop"
)

// BaseChain holds what makes a chain a base chain: where it hooks in.
type BaseChain struct {
	Type     ChainType
	Hook     Hook
	Priority int
	Policy   Policy
}

func (b BaseChain) String() string {
	p := b.Policy
	if p == "" {
		p = PolicyAccept
	}
	return fmt.Sprintf("type %s hook %s priority %s; policy %s;", b.Type, b.Hook, priorityName(b.Priority), p)
}

func priorityName(p int) string {
	switch {
	case p == PriorityRaw:
		return "raw"
	case p == PriorityMangle:
		return "mangle"
	case p == 0:
		return "filter"
	case p > 0:
		return fmt.Sprintf("filter + %d", p)
	default:
		return fmt.Sprintf("filter - %d", -p)
	}
}

// Chain is a chain and its rules in order. Base is nil for a regular chain.
type Chain struct {
	Name string
	Base *BaseChain
	// Comment says, for people, what produced the chain ("policy web,
	// ingress"). Desired chains only; the kernel does not keep it.
	Comment string
	// Owner names the configuration object that produced the chain
	// (`policy "web"`), so plans can group changes by it. Desired chains only.
	Owner string
	// Endpoint and Interface are the host endpoint whose chain this is
	// and its interface ("*": every other one), for the drop log to name
	// endpoints by interface. Desired chains only.
	Endpoint, Interface string
	Rules               []*Rule
}

// String renders the chain in nft syntax.
func (c *Chain) String() string { return string(c.appendTo(nil, "")) }

// appendTo appends the chain as String renders it, each line after ind
// (rules are one line each).
func (c *Chain) appendTo(b []byte, ind string) []byte {
	b = append(append(append(append(b, ind...), "chain "...), c.Name...), " {\n"...)
	if c.Base != nil {
		b = append(append(append(append(b, ind...), '\t'), c.Base.String()...), '\n')
	}
	for _, r := range c.Rules {
		b = append(append(append(append(b, ind...), '\t'), r.String()...), '\n')
	}
	return append(append(b, ind...), '}')
}

// IDs returns the ID of each rule of the chain in order (see Rule.ID).
func (c *Chain) IDs() []string {
	ids := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		ids[i] = r.ID(c.Name)
	}
	return ids
}

// SameBase reports whether two chains hook in the same way (both regular, or
// both base chains with equal hook, type, priority and policy).
func (c *Chain) SameBase(o *Chain) bool {
	switch {
	case c.Base == nil || o.Base == nil:
		return c.Base == nil && o.Base == nil
	default:
		return c.Base.String() == o.Base.String()
	}
}
