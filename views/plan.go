package views

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// MaxElementsShown caps the elements a human plan lists per set; the JSON
// plan always lists all.
const MaxElementsShown = 100

// Style turns colour on or off.
type Style struct{ Color bool }

func (s Style) paint(code, text string) string {
	if !s.Color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s Style) glyph(a planner.Action) string {
	switch a {
	case planner.Create:
		return s.paint("32", "+")
	case planner.Delete:
		return s.paint("31", "-")
	case planner.Update:
		return s.paint("33", "~")
	case planner.Recreate:
		return s.paint("35", "±")
	}
	return " "
}

// PlanJSON writes the plan as JSON.
func PlanJSON(w io.Writer, p *planner.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p.JSON())
}

// PlanHuman writes the plan in Terraform's conventions: drift first, then
// each change with its rules and elements, then the summary line.
func PlanHuman(out io.Writer, p *planner.Plan, st Style) {
	// A plan of a large table is tens of thousands of lines: one write.
	w := bufio.NewWriterSize(out, 64<<10)
	defer w.Flush()
	if drift := p.Drift(); len(drift) > 0 {
		fmt.Fprintf(w, "%s\n\n", st.paint("1", "Note: table inet hostwall was changed outside hostwall"))
		for _, d := range drift {
			fmt.Fprintf(w, "  # chain %s holds a rule hostwall did not make (handle %d):\n      %s\n\n", d.Chain, d.Rule.Handle, d.Rule)
		}
		fmt.Fprintf(w, "Applying this plan undoes those changes.\n\n")
	}
	if p.Empty() {
		fmt.Fprintln(w, "No changes. The kernel matches the configuration.")
		return
	}
	fmt.Fprintf(w, "hostwall will perform the following actions:\n\n")
	if p.CreateTable {
		fmt.Fprintf(w, "  # table inet hostwall will be created\n  %s table inet hostwall\n\n", st.glyph(planner.Create))
	}
	if p.DeleteTable {
		fmt.Fprintf(w, "  # table inet hostwall will be destroyed, with everything in it: no firewall\n  %s table inet hostwall\n\n", st.glyph(planner.Delete))
	}
	if p.WakeTable {
		fmt.Fprintf(w, "  # table inet hostwall is dormant (changed outside hostwall): none of its rules see a packet; it will be woken\n  %s table inet hostwall\n\n", st.glyph(planner.Update))
	}
	owner := ""
	for _, c := range p.Changes {
		if c.Owner != owner {
			owner = c.Owner
			fmt.Fprintf(w, "%s\n\n", st.paint("1", "── "+owner+" ──"))
		}
		writeChange(w, c, st)
	}
	add, change, destroy := p.Summary()
	fmt.Fprintf(w, "%s %d to add, %d to change, %d to destroy.\n", st.paint("1", "Plan:"), add, change, destroy)
}

var actionPhrase = map[planner.Action]string{
	planner.Create:   "will be created",
	planner.Update:   "will be updated in place",
	planner.Recreate: "must be replaced",
	planner.Delete:   "will be destroyed",
}

func writeChange(w io.Writer, c planner.Change, st Style) {
	head := fmt.Sprintf("  # %s %s %s", c.Kind, c.Name, actionPhrase[c.Action])
	if c.Reason != planner.ReasonConfig {
		head += " (" + string(c.Reason) + ")"
	}
	fmt.Fprintln(w, head)
	if c.Comment != "" {
		fmt.Fprintf(w, "  #   %s\n", c.Comment)
	}
	fmt.Fprintf(w, "  %s %s %s {\n", st.glyph(c.Action), c.Kind, c.Name)
	switch {
	case c.Chain != nil:
		writeChainBody(w, c, st)
	case c.Set != nil:
		writeSetBody(w, c, st)
	}
	fmt.Fprintf(w, "    }\n\n")
}

func writeChainBody(w io.Writer, c planner.Change, st Style) {
	d := c.Chain
	line := func(a planner.Action, text string) { fmt.Fprintf(w, "      %s %s\n", st.glyph(a), text) }
	switch c.Action {
	case planner.Create, planner.Recreate:
		if c.Action == planner.Recreate {
			for _, r := range d.Before.Rules {
				line(planner.Delete, r.String())
			}
		}
		if d.After.Base != nil {
			fmt.Fprintf(w, "        %s\n", d.After.Base)
		}
		for _, r := range d.After.Rules {
			line(planner.Create, r.String())
		}
	case planner.Delete:
		for _, r := range d.Before.Rules {
			line(planner.Delete, r.String())
		}
	case planner.Update:
		writeRuleUpdate(w, d, st, line)
	}
}

// writeRuleUpdate shows the live chain with deletions and insertions in
// place, runs of unchanged rules folded into a count.
func writeRuleUpdate(w io.Writer, d *planner.ChainDiff, st Style, line func(planner.Action, string)) {
	deleted := map[uint64]bool{}
	for _, r := range d.Deleted {
		deleted[r.Handle] = true
	}
	after := map[uint64][]*ruleset.Rule{}
	for _, in := range d.Inserts {
		after[in.After] = append(after[in.After], in.Rule)
	}
	hidden := 0
	flush := func() {
		if hidden > 0 {
			fmt.Fprintf(w, "        %s\n", st.paint("2", fmt.Sprintf("# (%d unchanged %s hidden)", hidden, plural(hidden, "rule", "rules"))))
			hidden = 0
		}
	}
	inserts := func(h uint64) {
		if rs := after[h]; len(rs) > 0 {
			flush()
			for _, r := range rs {
				line(planner.Create, r.String())
			}
		}
	}
	inserts(0)
	for _, r := range d.Before.Rules {
		if deleted[r.Handle] {
			flush()
			text := r.String()
			if !r.Intact(d.Before.Name) {
				text += st.paint("2", "   # changed outside hostwall")
			}
			line(planner.Delete, text)
			continue
		}
		hidden++
		inserts(r.Handle)
	}
	flush()
}

func writeSetBody(w io.Writer, c planner.Change, st Style) {
	d := c.Set
	s := d.After
	if s == nil {
		s = d.Before
	}
	if c.Action == planner.Create || c.Action == planner.Recreate {
		typ := string(s.Type)
		if s.Map {
			typ += " : verdict"
		}
		fmt.Fprintf(w, "        type %s\n", typ)
		if s.Interval {
			fmt.Fprintf(w, "        flags interval\n")
		}
	}
	shown := 0
	for _, group := range []struct {
		a     planner.Action
		elems []ruleset.Element
	}{{planner.Delete, d.Removed}, {planner.Create, d.Added}} {
		for _, e := range group.elems {
			if shown == MaxElementsShown {
				break
			}
			fmt.Fprintf(w, "      %s %s\n", st.glyph(group.a), s.FormatElement(e))
			shown++
		}
	}
	if total := len(d.Added) + len(d.Removed); total > shown {
		fmt.Fprintf(w, "        %s\n", st.paint("2", fmt.Sprintf("# (%d more element changes; plan --json lists all)", total-shown)))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ApplySummary is the line printed after a successful apply.
func ApplySummary(p *planner.Plan) string {
	add, change, destroy := p.Summary()
	return fmt.Sprintf("Apply complete! Objects: %d added, %d changed, %d destroyed.", add, change, destroy)
}

// Table writes a table in nft syntax, or a note that it does not exist.
func Table(w io.Writer, t *ruleset.Table) {
	if t == nil {
		fmt.Fprintln(w, "# table inet hostwall does not exist: nothing has been applied in this network namespace.")
		return
	}
	if t.Dormant {
		fmt.Fprintln(w, "# table inet hostwall is DORMANT (its flag set outside hostwall): none of its rules see a packet. hostwall apply wakes it.")
	}
	fmt.Fprint(w, strings.TrimLeft(t.String(), "\n"))
}

// TableJSON writes a table as JSON: chains with their rules and sets with
// their elements, all in nft syntax.
func TableJSON(w io.Writer, t *ruleset.Table) error {
	type jchain struct {
		Name  string   `json:"name"`
		Base  string   `json:"base,omitempty"`
		Rules []string `json:"rules"`
	}
	type jset struct {
		Name     string   `json:"name"`
		Type     string   `json:"type"`
		Map      bool     `json:"map"`
		Interval bool     `json:"interval"`
		Elements []string `json:"elements"`
	}
	out := struct {
		Exists bool     `json:"exists"`
		Family string   `json:"family"`
		Name   string   `json:"name"`
		Chains []jchain `json:"chains"`
		Sets   []jset   `json:"sets"`
	}{Family: string(ruleset.FamilyINet), Name: ruleset.TableName, Chains: []jchain{}, Sets: []jset{}}
	if t != nil {
		out.Exists = true
		for _, c := range t.Chains {
			jc := jchain{Name: c.Name, Rules: []string{}}
			if c.Base != nil {
				jc.Base = c.Base.String()
			}
			for _, r := range c.Rules {
				jc.Rules = append(jc.Rules, r.String())
			}
			out.Chains = append(out.Chains, jc)
		}
		for _, s := range t.Sets {
			js := jset{Name: s.Name, Type: string(s.Type), Map: s.Map, Interval: s.Interval, Elements: []string{}}
			for _, e := range s.Elements {
				js.Elements = append(js.Elements, s.FormatElement(e))
			}
			out.Sets = append(out.Sets, js)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
