package planner

// JSONPlan is the machine-readable plan (`hostwall plan --json`). Fields are
// only ever added, never renamed: Ansible, Puppet and scripts read it.
type JSONPlan struct {
	FormatVersion string       `json:"format_version"`
	Generation    uint32       `json:"generation"`
	CreateTable   bool         `json:"create_table"`
	DeleteTable   bool         `json:"delete_table,omitempty"`
	WakeTable     bool         `json:"wake_table,omitempty"`
	Drift         []JSONDrift  `json:"drift"`
	Changes       []JSONChange `json:"changes"`
	Summary       JSONSummary  `json:"summary"`
	Empty         bool         `json:"empty"`
}

// JSONDrift is a live rule hostwall did not make, or that was altered.
type JSONDrift struct {
	Chain  string `json:"chain"`
	Handle uint64 `json:"handle"`
	Rule   string `json:"rule"`
}

// JSONChange is one change.
type JSONChange struct {
	Kind     string        `json:"kind"`
	Name     string        `json:"name"`
	Action   string        `json:"action"`
	Reason   string        `json:"reason"`
	Comment  string        `json:"comment,omitempty"`
	Owner    string        `json:"owner"`
	Rules    *JSONRules    `json:"rules,omitempty"`
	Elements *JSONElements `json:"elements,omitempty"`
}

// JSONRules lists rule-level changes of a chain. Create holds every rule of a
// chain created or recreated.
type JSONRules struct {
	Create []string     `json:"create,omitempty"`
	Insert []JSONInsert `json:"insert,omitempty"`
	Delete []JSONDelete `json:"delete,omitempty"`
}

// JSONInsert is a rule added to an existing chain at Index.
type JSONInsert struct {
	Index       int    `json:"index"`
	AfterHandle uint64 `json:"after_handle"`
	Rule        string `json:"rule"`
}

// JSONDelete is a rule removed by handle.
type JSONDelete struct {
	Handle uint64 `json:"handle"`
	Rule   string `json:"rule"`
	Drift  bool   `json:"drift"`
}

// JSONElements lists element changes of a set or map, in nft syntax.
type JSONElements struct {
	Add    []string `json:"add"`
	Delete []string `json:"delete"`
}

// JSONSummary counts objects as the human plan's last line does.
type JSONSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

// JSON returns the machine-readable form of the plan.
func (p *Plan) JSON() JSONPlan {
	out := JSONPlan{FormatVersion: FormatVersion, Generation: p.Generation, CreateTable: p.CreateTable, DeleteTable: p.DeleteTable, WakeTable: p.WakeTable,
		Drift: []JSONDrift{}, Changes: []JSONChange{}, Empty: p.Empty()}
	for _, d := range p.Drift() {
		out.Drift = append(out.Drift, JSONDrift{Chain: d.Chain, Handle: d.Rule.Handle, Rule: d.Rule.String()})
	}
	for _, c := range p.Changes {
		jc := JSONChange{Kind: string(c.Kind), Name: c.Name, Action: c.Action.Word(), Reason: string(c.Reason), Comment: c.Comment, Owner: c.Owner}
		switch {
		case c.Chain != nil:
			jc.Rules = chainJSON(c)
		case c.Set != nil:
			s := c.Set.After
			if s == nil {
				s = c.Set.Before
			}
			jc.Elements = &JSONElements{Add: []string{}, Delete: []string{}}
			for _, e := range c.Set.Added {
				jc.Elements.Add = append(jc.Elements.Add, s.FormatElement(e))
			}
			for _, e := range c.Set.Removed {
				jc.Elements.Delete = append(jc.Elements.Delete, s.FormatElement(e))
			}
		}
		out.Changes = append(out.Changes, jc)
	}
	out.Summary.Add, out.Summary.Change, out.Summary.Destroy = p.Summary()
	return out
}

func chainJSON(c Change) *JSONRules {
	r := &JSONRules{}
	if c.Action == Delete || c.Action == Recreate {
		for _, d := range c.Chain.Before.Rules {
			r.Delete = append(r.Delete, JSONDelete{Handle: d.Handle, Rule: d.String(), Drift: !d.Intact(c.Name)})
		}
	}
	switch c.Action {
	case Create, Recreate:
		for _, rule := range c.Chain.After.Rules {
			r.Create = append(r.Create, rule.String())
		}
	case Update:
		for _, in := range c.Chain.Inserts {
			r.Insert = append(r.Insert, JSONInsert{Index: in.Index, AfterHandle: in.After, Rule: in.Rule.String()})
		}
		for _, d := range c.Chain.Deleted {
			r.Delete = append(r.Delete, JSONDelete{Handle: d.Handle, Rule: d.String(), Drift: !d.Intact(c.Name)})
		}
	}
	return r
}
