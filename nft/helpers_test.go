package nft_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// kernel opens a connection to a fresh network namespace.
func kernel(t testing.TB) (*nft.Conn, string) {
	t.Helper()
	ns := testns.New(t)
	c, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		t.Fatalf("opening nft in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ns
}

func compileSrc(t *testing.T, host string, files map[string]string) *ruleset.Table {
	t.Helper()
	var srcs []loader.Source
	for name, data := range files {
		srcs = append(srcs, loader.Source{Path: name, Data: []byte(data)})
	}
	res, diags := loader.Load(srcs)
	if diags.HasErrors() {
		t.Fatalf("loading: %v", diags)
	}
	tbl, diags := compile.Compile(res.Config, compile.Options{HostName: host})
	if diags.HasErrors() {
		t.Fatalf("compiling: %v", diags)
	}
	return tbl
}

func compileDir(t *testing.T, dir, host string) *ruleset.Table {
	t.Helper()
	files := map[string]string{}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(data)
	}
	return compileSrc(t, host, files)
}

func plan(t testing.TB, c *nft.Conn, desired *ruleset.Table) *planner.Plan {
	t.Helper()
	p, err := engine.PlanTable(context.Background(), c, desired)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// apply plans and applies desired, failing the test unless the kernel then
// holds it exactly.
func apply(t testing.TB, c *nft.Conn, desired *ruleset.Table) *planner.Plan {
	t.Helper()
	p := plan(t, c, desired)
	applied, _, err := engine.ApplyTable(context.Background(), c, desired, p, engine.ByReadBack)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if rest := plan(t, c, desired); !rest.Empty() {
		t.Fatalf("plan after apply is not empty: %+v", rest.Changes)
	}
	return applied
}

func generation(t *testing.T, c *nft.Conn) uint32 {
	t.Helper()
	g, err := c.Generation()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var (
	counterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	commentRE = regexp.MustCompile(` comment "[^"]*"`)
)

// nftChains parses `nft list table inet hostwall` into chain → rule lines,
// normalised (counter values and comments dropped), using nft's own decoder
// as an oracle independent of ours.
func nftChains(t *testing.T, ns string) map[string][]string {
	t.Helper()
	out := testns.NFT(t, ns, "list", "table", "inet", "hostwall")
	chains := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "chain "):
			cur = strings.TrimSuffix(strings.TrimPrefix(line, "chain "), " {")
			chains[cur] = []string{}
		case line == "}":
			cur = ""
		case cur != "" && line != "" && !strings.HasPrefix(line, "type "):
			line = counterRE.ReplaceAllString(line, "counter")
			chains[cur] = append(chains[cur], commentRE.ReplaceAllString(line, ""))
		}
	}
	return chains
}

// nftElements returns the elements of a set or map as nft lists them.
func nftElements(t *testing.T, ns, kind, name string) []string {
	t.Helper()
	out := testns.NFT(t, ns, "list", kind, "inet", "hostwall", name)
	i := strings.Index(out, "elements = {")
	if i < 0 {
		return nil
	}
	body := out[i+len("elements = {"):]
	body = body[:strings.Index(body, "}")]
	var elems []string
	for _, e := range strings.Split(body, ",") {
		if e = strings.TrimSpace(e); e != "" {
			elems = append(elems, e)
		}
	}
	return elems
}

func elementTexts(s *ruleset.Set) []string {
	var out []string
	for _, e := range s.Elements {
		out = append(out, s.FormatElement(e))
	}
	return out
}

func ruleTexts(c *ruleset.Chain) []string {
	out := []string{}
	for _, r := range c.Rules {
		out = append(out, r.String())
	}
	return out
}

func prefixes(n int, base netip.Addr, bits int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	a := base
	step := 1 << (a.BitLen() - bits) // addresses per prefix, for bits ≥ BitLen-30
	for i := 0; i < n; i++ {
		out = append(out, netip.PrefixFrom(a, bits))
		for j := 0; j < 2*step; j++ { // leave a gap so prefixes never merge
			a = a.Next()
		}
	}
	return out
}
