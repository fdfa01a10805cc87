package engine

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/ruleset"
)

// TestRecordBaseRoundTrip: the verified base reads back as it was
// written — an interval set of 200,000 networks, a verdict map and an
// empty set; recipes with networks of both families, more in one list
// than CBOR's default limit of 131,072; the files (a path that is not
// UTF-8), warnings and merged counts (keyed by an element's key in bytes:
// 192.0.2.0 is c0 00 02 00, not UTF-8 either); nil and empty kept apart —
// and each set and each network is written in its own binary form
// (MarshalBinary) as a CBOR byte string.
func TestRecordBaseRoundTrip(t *testing.T) {
	big := &ruleset.Set{Name: "big", Type: ruleset.TypeIPv4Addr, Interval: true, Comment: "selector bad == 'yes'", Owner: "network_set.bl"}
	var fixed []netip.Prefix
	for i := range 200_000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 14), byte(i >> 6), byte(i << 2)}), 30)
		big.Elements = append(big.Elements, ruleset.PrefixElement(p))
		fixed = append(fixed, p)
	}
	eth0 := "eth0" + strings.Repeat("\x00", 12)
	vmap := &ruleset.Set{Name: "dispatch", Type: ruleset.TypeIfName, Map: true,
		Elements: []ruleset.Element{{From: eth0, To: eth0, Verdict: &ruleset.Verdict{Kind: ruleset.VerdictJump, Chain: "hep/eth0/in"}}}}
	base := recordBase{
		Sets: []*ruleset.Set{big, vmap, {Name: "empty", Type: ruleset.TypeIPv6Addr, Interval: true}},
		Inc: &incremental{
			Files: map[string]string{"/etc/hostwall/a.hcl": "ab12", "/etc/hostwall/bl.txt": "cd34", "/etc/hostwall/caf\xe9.txt": "ef56"},
			Recipes: []compile.Recipe{
				{Set: "big", Family: ruleset.IPv4, Files: []string{"/etc/hostwall/bl.txt"},
					Fixed: [][]netip.Prefix{fixed, {netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.0.2.1/32")}, {}}},
				{Set: "v6", Family: ruleset.IPv6},
			},
			Chains:      "chain input {\n\tiifname vmap @dispatch\n}\n",
			Warnings:    []savedDiag{{Severity: hcl.DiagWarning, Summary: "Something", Detail: "in file caf\xe9", Subject: &hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 2, Column: 3, Byte: 9}}}},
			SSHFailsafe: true,
			Merged: map[string]ruleset.Merged{"big": {big.Elements[7].From: 3, ruleset.PrefixElement(netip.MustParsePrefix("192.0.2.0/23")).From: 2},
				"none": {}, "nil": nil},
		},
	}
	data, err := baseEncoding.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	// stageRecord encodes into a buffer of base.size(): one that falls
	// short is grown by doubling, the garbage it is there to spare.
	if len(data) > base.size() {
		t.Errorf("the base's encoding takes %d bytes, more than its size estimate, %d", len(data), base.size())
	}
	var got recordBase
	if err := baseDecoding.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	// Whole sets and lists of networks compared at once: element by
	// element, cmp takes seconds.
	sameSet := cmp.Comparer(func(a, b *ruleset.Set) bool { return reflect.DeepEqual(a, b) })
	samePrefixes := cmp.Comparer(func(a, b []netip.Prefix) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) })
	if d := cmp.Diff(base, got, cmp.AllowUnexported(recordBase{}), sameSet, samePrefixes); d != "" {
		t.Errorf("read back differently (-written +read):\n%s", d)
	}

	var raw struct {
		Sets [][]byte
		Inc  struct{ Recipes []struct{ Fixed [][][]byte } }
	}
	if err := baseDecoding.Unmarshal(data, &raw); err != nil {
		t.Fatalf("the sets or networks are not byte strings: %v", err)
	}
	for i, s := range base.Sets {
		want, _ := s.MarshalBinary()
		if string(raw.Sets[i]) != string(want) {
			t.Errorf("set %q is not written in its binary form", s.Name)
		}
	}
	if want, _ := fixed[5].MarshalBinary(); string(raw.Inc.Recipes[0].Fixed[0][5]) != string(want) {
		t.Errorf("a network is written as %x, want its binary form %x", raw.Inc.Recipes[0].Fixed[0][5], want)
	}

	for _, n := range []int{len(data) / 2, len(data) - 1, 10} {
		if err := baseDecoding.Unmarshal(data[:n], &recordBase{}); err == nil {
			t.Errorf("the first %d of %d bytes read as a base", n, len(data))
		}
	}
}
