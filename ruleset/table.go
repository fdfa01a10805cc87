package ruleset

import (
	"slices"
	"strings"
	"unsafe"
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
	// Dormant is set on a live table whose dormant flag another program
	// set: its base chains are unregistered, and none of its rules see a
	// packet. Live tables only.
	Dormant bool
	// Owned is set on a live table another program made with the owner
	// flag: only that program's netlink socket can change or delete it,
	// and the kernel deletes it when that socket closes. Live tables only.
	Owned bool
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
	return bytesString(t.appendText(bytesString(t.appendChains(nil))))
}

// ChainsText is the chains' part of String.
func (t *Table) ChainsText() string { return bytesString(t.appendChains(nil)) }

// StringWithChains is String with chains, the ChainsText of a table with
// the same chains, in place of t's own: an incremental apply renders the
// sets it changed around the chains' text it recorded.
func (t *Table) StringWithChains(chains string) string {
	return bytesString(t.appendText(chains))
}

// bytesString is b as a string, without copying: b is never written again
// (a rendering of 100,000 networks is 2.4 MB).
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendChains appends the chains as String renders them.
func (t *Table) appendChains(b []byte) []byte {
	n := 0
	for _, c := range t.Chains {
		n += 64 + 80*len(c.Rules)
	}
	b = slices.Grow(b, n)
	for _, c := range t.Chains {
		b = append(c.appendTo(b, "\t"), '\n')
	}
	return b
}

// appendText renders the table around chains, its chains' text.
func (t *Table) appendText(chains string) []byte {
	n := 64 + len(chains)
	for _, s := range t.Sets {
		n += 64 + 20*len(s.Elements)
	}
	b := make([]byte, 0, n)
	b = append(append(append(append(append(b, "table "...), t.Family...), ' '), t.Name...), " {\n"...)
	for _, s := range t.Sets {
		b = append(s.appendTo(b, "\t"), '\n')
	}
	return append(append(b, chains...), "}\n"...)
}
