package ruleset

import "slices"

// Clone returns a deep copy of the table.
func (t *Table) Clone() *Table {
	if t == nil {
		return nil
	}
	out := &Table{Family: t.Family, Name: t.Name}
	for _, c := range t.Chains {
		out.Chains = append(out.Chains, c.Clone())
	}
	for _, s := range t.Sets {
		out.Sets = append(out.Sets, s.Clone())
	}
	return out
}

// Clone returns a deep copy of the chain.
func (c *Chain) Clone() *Chain {
	out := *c
	if c.Base != nil {
		b := *c.Base
		out.Base = &b
	}
	out.Rules = make([]*Rule, len(c.Rules))
	for i, r := range c.Rules {
		out.Rules[i] = r.Clone()
	}
	return &out
}

// Clone returns a deep copy of the rule.
func (r *Rule) Clone() *Rule {
	out := *r
	out.Matches = slices.Clone(r.Matches) // Match kinds are values
	if r.Log != nil {
		l := *r.Log
		out.Log = &l
	}
	if r.Limit != nil {
		l := *r.Limit
		out.Limit = &l
	}
	return &out
}

// Clone returns a deep copy of the set.
func (s *Set) Clone() *Set {
	out := *s
	out.Elements = make([]Element, len(s.Elements))
	for i, e := range s.Elements {
		if e.Verdict != nil {
			v := *e.Verdict
			e.Verdict = &v
		}
		out.Elements[i] = e
	}
	return &out
}
