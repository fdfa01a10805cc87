package ruleset

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// patchCase makes Patch's inputs from bytes: the sources a set is made of,
// which of them are removed and the elements added, all ranges of keys
// 10.0.x.y with x.y below 1024 (small, so that they overlap and touch, and
// across the carry from y=255 to x+1). Each range is three bytes: where it
// starts, its length less one (0-7, so mostly short), and for a source
// whether it is removed.
func patchCase(data []byte) (sources, removed, added []Element) {
	key := func(n int) string { return string([]byte{10, 0, byte(n >> 8), byte(n)}) }
	for i := 0; i+3 <= len(data) && i < 3*40; i += 3 {
		lo := (int(data[i])<<2 | int(data[i+2])>>6) % 1024
		hi := min(lo+int(data[i+1]%8), 1023)
		e := Element{From: key(lo), To: key(hi)}
		switch data[i+2] % 4 {
		case 0:
			sources = append(sources, e)
			removed = append(removed, e)
		case 1:
			added = append(added, e)
		default:
			sources = append(sources, e)
		}
	}
	return
}

// checkPatch holds Patch to Normalize: when Patch can tell, the set it
// describes is what Normalize makes of the changed sources, its gone and
// come are the difference between the two, and its Merged is what
// NormalizeCounting counts; when it cannot, a network removed was indeed
// not an element by itself.
func checkPatch(t *testing.T, sources, removed, added []Element) {
	t.Helper()
	before := &Set{Name: "s", Type: TypeIPv4Addr, Interval: true, Elements: slices.Clone(sources)}
	merged := before.NormalizeCounting()
	rest := slices.Clone(sources)
	for _, r := range removed {
		i := slices.Index(rest, r)
		rest = slices.Delete(rest, i, i+1)
	}
	after := &Set{Name: "s", Type: TypeIPv4Addr, Interval: true, Elements: append(rest, added...)}
	wantMerged := after.NormalizeCounting()

	gone, come, next, ok := before.Patch(merged, removed, added)
	if !ok {
		for i, r := range removed {
			alone := slices.Contains(before.Elements, r) && merged.count(r.From) == 1
			if !alone || slices.Contains(removed[:i], r) {
				return // rightly refused
			}
		}
		t.Fatalf("Patch refused removing %v (each an element alone) from %v", removed, before.Elements)
	}
	if got := ApplyPatch(before.Elements, gone, come); !slices.Equal(got, after.Elements) {
		t.Fatalf("sources %v, removed %v, added %v:\npatched %v\nwant    %v (gone %v, come %v)", sources, removed, added, got, after.Elements, gone, come)
	}
	var wantGone, wantCome []Element
	for _, e := range before.Elements {
		if !slices.Contains(after.Elements, e) {
			wantGone = append(wantGone, e)
		}
	}
	for _, e := range after.Elements {
		if !slices.Contains(before.Elements, e) {
			wantCome = append(wantCome, e)
		}
	}
	if !slices.Equal(gone, wantGone) || !slices.Equal(come, wantCome) {
		t.Fatalf("gone %v, come %v; want %v, %v", gone, come, wantGone, wantCome)
	}
	if !maps.Equal(next, wantMerged) {
		t.Fatalf("merged %v, want %v", next, wantMerged)
	}
}

// TestPatch: the cases by name, each held to Normalize by checkPatch.
func TestPatch(t *testing.T) {
	e := func(from, to string) Element {
		return Element{From: string(netip.MustParseAddr(from).AsSlice()), To: string(netip.MustParseAddr(to).AsSlice())}
	}
	a := e("10.0.0.0", "10.0.0.3")
	b := e("10.0.0.8", "10.0.0.11")
	c := e("10.0.0.16", "10.0.0.19")
	for _, tc := range []struct {
		name                    string
		sources, removed, added []Element
		refused                 bool
		wantGone, wantCome      string
	}{
		{name: "one network for another", sources: []Element{a, b}, removed: []Element{a}, added: []Element{c},
			wantGone: "10.0.0.0-10.0.0.3", wantCome: "10.0.0.16-10.0.0.19"},
		{name: "added inside an element: no change", sources: []Element{e("10.0.0.0", "10.0.0.255")}, added: []Element{b}},
		{name: "a network moved to another line", sources: []Element{a, b}, removed: []Element{a}, added: []Element{a}},
		{name: "bridging two into one", sources: []Element{a, b}, added: []Element{e("10.0.0.4", "10.0.0.7")},
			wantGone: "10.0.0.0-10.0.0.3 10.0.0.8-10.0.0.11", wantCome: "10.0.0.0-10.0.0.11"},
		{name: "touching across a carry", sources: []Element{e("10.0.0.252", "10.0.0.255")}, added: []Element{e("10.0.1.0", "10.0.1.3")},
			wantGone: "10.0.0.252-10.0.0.255", wantCome: "10.0.0.252-10.0.1.3"},
		{name: "a chain of additions", sources: []Element{a, c}, added: []Element{e("10.0.0.12", "10.0.0.15"), e("10.0.0.4", "10.0.0.11")},
			wantGone: "10.0.0.0-10.0.0.3 10.0.0.16-10.0.0.19", wantCome: "10.0.0.0-10.0.0.19"},
		{name: "removing one of two merged", sources: []Element{a, e("10.0.0.4", "10.0.0.7")}, removed: []Element{a}, refused: true},
		{name: "removing one of two the same", sources: []Element{a, a}, removed: []Element{a}, refused: true},
		{name: "removing what is not there", sources: []Element{a}, removed: []Element{b}, refused: true},
		{name: "removing the networks merged before, after they were", sources: []Element{a, e("10.0.0.4", "10.0.0.7")},
			removed: []Element{a, e("10.0.0.4", "10.0.0.7")}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Set{Name: "s", Type: TypeIPv4Addr, Interval: true, Elements: slices.Clone(tc.sources)}
			merged := s.NormalizeCounting()
			gone, come, _, ok := s.Patch(merged, tc.removed, tc.added)
			if ok == tc.refused {
				t.Fatalf("ok %v", ok)
			}
			if ok && (ranges(gone) != tc.wantGone || ranges(come) != tc.wantCome) {
				t.Errorf("gone %q, come %q; want %q, %q", ranges(gone), ranges(come), tc.wantGone, tc.wantCome)
			}
			if tc.removed == nil || !tc.refused {
				checkPatch(t, tc.sources, tc.removed, tc.added)
			}
		})
	}
	// Not a plain interval set, or elements of another length.
	for _, s := range []*Set{
		{Name: "ports", Type: TypeInetService, Elements: []Element{PortElement(PortRange{Lo: 22, Hi: 22})}},
		{Name: "map", Type: TypeIPv4Addr, Interval: true, Map: true},
	} {
		if _, _, _, ok := s.Patch(nil, nil, []Element{a}); ok {
			t.Errorf("Patch of set %s", s.Name)
		}
	}
	v4 := &Set{Name: "s", Type: TypeIPv4Addr, Interval: true, Elements: []Element{a}}
	if _, _, _, ok := v4.Patch(Merged{}, nil, []Element{PrefixElement(netip.MustParsePrefix("2001:db8::/32"))}); ok {
		t.Error("Patch of an IPv4 set with an IPv6 element")
	}
}

func ranges(elems []Element) string {
	var out []string
	for _, e := range elems {
		a, _ := netip.AddrFromSlice([]byte(e.From))
		z, _ := netip.AddrFromSlice([]byte(e.To))
		out = append(out, fmt.Sprintf("%v-%v", a, z))
	}
	return strings.Join(out, " ")
}

// FuzzSetPatch: Patch against Normalize (checkPatch) for any sources,
// removals and additions patchCase makes.
func FuzzSetPatch(f *testing.F) {
	f.Add([]byte{0, 3, 0, 2, 3, 2, 1, 3, 1})
	f.Add([]byte{63, 7, 192, 64, 0, 1, 63, 7, 2, 64, 3, 192})
	f.Add([]byte("a few networks, some removed, some added, some touching"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sources, removed, added := patchCase(data)
		checkPatch(t, sources, removed, added)
	})
}
