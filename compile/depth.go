package compile

import (
	"github.com/hostwall/hostwall/ruleset"
)

// MaxChainDepth is how deep the kernel lets chains jump (NFT_JUMP_STACK_SIZE):
// a base chain is at depth 0, and a table holding a path of jumps, gotos or
// verdict-map lookups to a chain at depth 16 or more is refused whole
// ("too many links").
const MaxChainDepth = 16

// chainDepth returns the length of the longest path of jumps in t — every
// jump, goto and verdict-map element counts one, as the kernel counts
// them — and that path's chains, base chain first.
func chainDepth(t *ruleset.Table) (int, []string) {
	maps := map[string]*ruleset.Set{}
	for _, s := range t.Sets {
		if s.Map {
			maps[s.Name] = s
		}
	}
	memo := map[string][]string{} // a chain's longest path down
	var down func(name string) []string
	down = func(name string) []string {
		if p, ok := memo[name]; ok {
			return p
		}
		memo[name] = []string{name} // the table has no loops; this only guards
		var longest []string
		ch := t.Chain(name)
		if ch == nil {
			return memo[name]
		}
		next := func(v *ruleset.Verdict) {
			if v == nil || (v.Kind != ruleset.VerdictJump && v.Kind != ruleset.VerdictGoto) {
				return
			}
			if p := down(v.Chain); len(p) > len(longest) {
				longest = p
			}
		}
		for _, r := range ch.Rules {
			switch v := r.Verdict; v.Kind {
			case ruleset.VerdictVMap:
				if m := maps[v.Map]; m != nil {
					for _, e := range m.Elements {
						next(e.Verdict)
					}
				}
			default:
				next(&v)
			}
		}
		memo[name] = append([]string{name}, longest...)
		return memo[name]
	}
	var deepest []string
	for _, ch := range t.Chains {
		if ch.Base != nil {
			if p := down(ch.Name); len(p) > len(deepest) {
				deepest = p
			}
		}
	}
	return len(deepest) - 1, deepest
}
