package compile

import (
	"net/netip"

	"github.com/hostwall/hostwall/ruleset"
)

// A Recipe says how the elements of a selector's set of one IP family are
// made, for sets that draw on nets files: a change to nets files alone
// can then be applied without loading the policy files and compiling them
// again (cmd/hostwall's incremental apply). Chains never depend on a set's
// elements, only on its name, which depends on the selector and the family
// alone; so such a change moves elements and nothing else.
//
// Compile makes every selector's set through its recipe, and hands out
// those that name nets files when Options.Recipes is set.
type Recipe struct {
	// Set is the set's name.
	Set    string
	Family ruleset.IPFamily
	// Fixed are the networks that are not from nets files: the inline
	// networks of the matched network sets and the matched endpoints'
	// expected IPs (all families: Elements picks).
	Fixed [][]netip.Prefix
	// Files are the nets files of the matched network sets.
	Files []string
	// Merged is what Normalize merged of the elements when compile made
	// the set (ruleset.Set.NormalizeCounting), which an incremental change
	// needs: handed out with the recipe so that nobody makes a large set
	// twice to count it. Not recorded: the record keeps it by set.
	Merged ruleset.Merged `cbor:"-"`
}

// Elements returns the set's elements, in no particular order (Normalize
// the set), with nets giving the networks of a nets file.
func (r *Recipe) Elements(nets func(file string) []netip.Prefix) []ruleset.Element {
	n := 0 // of the family: a blocklist of IPv4 networks leaves the IPv6 set empty
	count := func(ps []netip.Prefix) {
		for _, p := range ps {
			if familyOf(p) == r.Family {
				n++
			}
		}
	}
	for _, ps := range r.Fixed {
		count(ps)
	}
	for _, f := range r.Files {
		count(nets(f))
	}
	elems := make([]ruleset.Element, 0, n)
	add := func(ps []netip.Prefix) {
		for _, p := range ps {
			if familyOf(p) == r.Family {
				elems = append(elems, ruleset.PrefixElement(p))
			}
		}
	}
	for _, ps := range r.Fixed {
		add(ps)
	}
	for _, f := range r.Files {
		add(nets(f))
	}
	return elems
}
