package ruleset

import (
	"fmt"
	"slices"
	"strings"
)

// Family is an nftables address family; hostwall uses only FamilyINet.
type Family string

// FamilyINet is the dual-stack family of hostwall's table.
const FamilyINet Family = "inet"

// TableName is the one table hostwall owns.
const TableName = "hostwall"

// Table is one nftables table. Chains and Sets are kept sorted by name
// (Sort), so two tables with the same content print the same.
type Table struct {
	Family Family
	Name   string
	Chains []*Chain
	Sets   []*Set
}

// NewTable returns an empty table inet hostwall.
func NewTable() *Table {
	return &Table{Family: FamilyINet, Name: TableName}
}

// Chain returns the chain called name, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Set returns the set or map called name, or nil.
func (t *Table) Set(name string) *Set {
	for _, s := range t.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Sort orders chains and sets by name: base chains first, then regular
// chains, each alphabetically.
func (t *Table) Sort() {
	slices.SortFunc(t.Chains, func(a, b *Chain) int {
		if (a.Base != nil) != (b.Base != nil) {
			if a.Base != nil {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	slices.SortFunc(t.Sets, func(a, b *Set) int { return strings.Compare(a.Name, b.Name) })
}

// RuleCount is the number of rules in all chains.
func (t *Table) RuleCount() int {
	n := 0
	for _, c := range t.Chains {
		n += len(c.Rules)
	}
	return n
}

// String renders the table in nft syntax, as `nft list table` would, sets
// first, then chains.
func (t *Table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.Family, t.Name)
	for _, s := range t.Sets {
		b.WriteString(indent(s.String(), "\t"))
		b.WriteString("\n")
	}
	for _, c := range t.Chains {
		b.WriteString(indent(c.String(), "\t"))
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}
