// Package observe turns what the kernel reports about the ruleset — rule
// counters and the packets the drop log sends — into the configuration's
// terms: which policy, tier, host endpoint and direction. It reads
// nothing itself; the agent and the CLI hand it the table of the
// generation in force and what they read.
package observe

import (
	"github.com/hostwall/hostwall/ruleset"
)

// Index maps the kernel objects of one generation's table back to the
// configuration: counting rules to what they enforce, drop-log prefixes
// to what decided, interfaces to host endpoints.
type Index struct {
	// Generation is the generation the index was made from.
	Generation int
	// Group is the drop log's NFLOG group; DropLog whether the table
	// logs any drop.
	Group   uint16
	DropLog bool
	rules   map[ruleKey]*ruleset.Origin
	origins map[ruleset.Origin]bool // the rules' origins
	prefix  map[string]*ruleset.Origin
	// endpoints maps an interface to its host endpoint; wildcard is the
	// endpoint of every other interface ("" for none).
	endpoints map[string]string
	wildcard  string
	sets      []SetSize
}

// ruleKey is a rule by its chain and ID (ruleset.Rule.ID), as a live rule
// carries it.
type ruleKey struct{ chain, id string }

// SetSize is the number of elements of one set of the table; a sharded
// set's slots are counted as the set they were dealt from.
type SetSize struct {
	Name     string
	Elements int
}

// NewIndex indexes tbl, the table of generation gen (nil: none).
func NewIndex(gen int, tbl *ruleset.Table) *Index {
	x := &Index{Generation: gen, rules: map[ruleKey]*ruleset.Origin{}, origins: map[ruleset.Origin]bool{},
		prefix: map[string]*ruleset.Origin{}, endpoints: map[string]string{}}
	if tbl == nil {
		return x
	}
	for _, ch := range tbl.Chains {
		switch prev, ok := x.endpoints[ch.Interface]; {
		case ch.Endpoint == "":
		case ch.Interface == "*":
			if x.wildcard == "" || ch.Endpoint < x.wildcard {
				x.wildcard = ch.Endpoint
			}
		case !ok || ch.Endpoint < prev:
			x.endpoints[ch.Interface] = ch.Endpoint
		}
		for _, r := range ch.Rules {
			if r.Origin == nil {
				continue
			}
			if r.Counter {
				x.rules[ruleKey{ch.Name, r.ID(ch.Name)}] = r.Origin
				x.origins[*r.Origin] = true
			}
			if r.Log != nil && r.Log.Group != nil {
				x.prefix[r.Log.Prefix] = r.Origin
				x.Group, x.DropLog = *r.Log.Group, true
			}
		}
	}
	sizes := map[string]int{}
	var order []string
	for _, s := range tbl.Sets {
		if s.Map {
			continue
		}
		name := ruleset.ShardedSetName(s.Name)
		if _, ok := sizes[name]; !ok {
			order = append(order, name)
		}
		sizes[name] += len(s.Elements)
	}
	for _, n := range order {
		x.sets = append(x.sets, SetSize{Name: n, Elements: sizes[n]})
	}
	return x
}

// Endpoint is the host endpoint of interface iface ("" for none).
func (x *Index) Endpoint(iface string) string {
	if e, ok := x.endpoints[iface]; ok {
		return e
	}
	if iface == "" {
		return ""
	}
	return x.wildcard
}

// Decider is what decided the drop logged with prefix ("" when the
// prefix is not one of the table's: another generation's, or not
// hostwall's).
func (x *Index) Decider(prefix string) *ruleset.Origin { return x.prefix[prefix] }

// HasStaged reports whether the table counts a staged view (some endpoint
// has staged changes, and the view was not left out: compile's warning
// "The staged view is not counted").
func (x *Index) HasStaged() bool {
	for o := range x.origins {
		if o.Kind == ruleset.OriginStagedChange {
			return true
		}
	}
	return false
}

// Sets are the sizes of the table's sets, in the table's order.
func (x *Index) Sets() []SetSize { return x.sets }
