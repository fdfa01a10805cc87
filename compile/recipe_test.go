package compile

import (
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

// recipeConfig draws a configuration whose selectors match network sets
// with and without nets files (some sharing one), inline networks beside a
// file's, and endpoints with expected IPs; files are the nets files' names.
func recipeConfig(rng *rand.Rand) (policy string, files []string) {
	var b strings.Builder
	b.WriteString("host {\n  name = \"h\"\n  labels = { role = \"web\" }\n}\n")
	b.WriteString("host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  node = \"h\"\n}\n")
	files = []string{"a.txt", "b.txt", "c.txt"}
	labels := []string{"bad", "good", "partner"}
	for i := range 2 + rng.Intn(5) {
		fmt.Fprintf(&b, "network_set \"ns%d\" {\n  labels = { kind = %q }\n", i, labels[rng.Intn(len(labels))])
		if rng.Intn(2) == 0 {
			fmt.Fprintf(&b, "  nets = [\"192.0.%d.0/24\", \"2001:db8:%x::/48\"]\n", i, i)
		}
		if rng.Intn(3) > 0 {
			fmt.Fprintf(&b, "  nets_file = %q\n", files[rng.Intn(len(files))])
		}
		b.WriteString("}\n")
	}
	for i := range rng.Intn(3) {
		fmt.Fprintf(&b, "host_endpoint \"peer%d\" {\n  interface = \"eth9\"\n  node = \"other\"\n  labels = { kind = %q }\n  expected_ips = [\"198.51.100.%d\", \"2001:db8:ffff::%x\"]\n}\n",
			i, labels[rng.Intn(len(labels))], i+1, i+1)
	}
	b.WriteString("policy \"p\" {\n  selector = \"role == 'web'\"\n")
	for _, sel := range []string{"kind == 'bad'", "kind in {'good', 'partner'}", "has(kind)"} {
		if rng.Intn(3) > 0 {
			side := []string{"source", "destination"}[rng.Intn(2)]
			fmt.Fprintf(&b, "  ingress {\n    action = \"deny\"\n    %s { selector = %q }\n  }\n", side, sel)
		}
	}
	b.WriteString("  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [443] }\n  }\n}\n")
	return b.String(), files
}

// randomNets is a nets file of random networks of both families, some
// overlapping or adjacent (the set merges them).
func randomNets(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.Intn(60) {
		if rng.Intn(4) == 0 {
			fmt.Fprintf(&b, "2001:db8:%x:%x::/64\n", rng.Intn(4), rng.Intn(8))
		} else {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.Intn(3)), byte(rng.Intn(8)), byte(rng.Intn(4) * 64)}), 24+rng.Intn(9)).Masked()
			fmt.Fprintf(&b, "%s\n", p)
		}
		if rng.Intn(10) == 0 {
			b.WriteString("# a comment\n")
		}
	}
	return b.String()
}

func compileWith(t *testing.T, policy string, nets map[string]string) (*ruleset.Table, []Recipe) {
	t.Helper()
	srcs := []loader.Source{{Path: "/c/p.hcl", Data: []byte(policy)}}
	for name, data := range nets {
		srcs = append(srcs, loader.Source{Path: "/c/" + name, Data: []byte(data)})
	}
	res, diags := loader.Load(srcs)
	if diags.HasErrors() {
		t.Fatalf("loading: %v\n%s", diags, policy)
	}
	var recipes []Recipe
	tbl, diags := Compile(res.Config, Options{HostName: "h", Recipes: &recipes})
	if diags.HasErrors() {
		t.Fatalf("compiling: %v", diags)
	}
	return tbl, recipes
}

// TestRecipesRemake: for random configurations and random new contents of
// their nets files, the recipes of the first compile, given the new files'
// networks, make exactly the sets a full compile of the new files makes;
// every other set and every chain stays as it was; and the recipes name
// exactly the sets drawn from nets files.
func TestRecipesRemake(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	remade := 0
	for round := range 300 {
		policy, files := recipeConfig(rng)
		before, after := map[string]string{}, map[string]string{}
		for _, f := range files {
			before[f], after[f] = randomNets(rng), randomNets(rng)
		}
		oldTable, recipes := compileWith(t, policy, before)
		newTable, _ := compileWith(t, policy, after)
		if diff := cmp.Diff(chainTexts(oldTable), chainTexts(newTable)); diff != "" {
			t.Fatalf("round %d: changing nets files changed chains (-before +after):\n%s", round, diff)
		}
		byRecipe := map[string]bool{}
		for _, r := range recipes {
			byRecipe[r.Set] = true
			// The agent keeps recipes: one holds its inline networks alone,
			// not a slice of the network set's, which holds the nets
			// file's networks behind it.
			for _, ps := range r.Fixed {
				if cap(ps) > len(ps) {
					t.Fatalf("round %d: recipe for %s holds %d networks for its %d", round, r.Set, cap(ps), len(ps))
				}
			}
			want := newTable.Set(r.Set)
			if want == nil {
				t.Fatalf("round %d: recipe for %s, which the new table lacks", round, r.Set)
			}
			got := *oldTable.Set(r.Set)
			got.Elements = r.Elements(func(file string) []netip.Prefix {
				nets, diags := loader.ParseNetsFile(file, []byte(after[strings.TrimPrefix(file, "/c/")]))
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				return nets
			})
			got.Normalize()
			if diff := cmp.Diff(want.Elements, got.Elements); diff != "" {
				t.Fatalf("round %d: set %s from its recipe differs from compiling (-compile +recipe):\n%s", round, r.Set, diff)
			}
			remade++
		}
		for _, s := range newTable.Sets {
			if byRecipe[s.Name] {
				continue
			}
			if old := oldTable.Set(s.Name); old == nil || !cmp.Equal(old.Elements, s.Elements) {
				t.Fatalf("round %d: set %s changed with the nets files but has no recipe", round, s.Name)
			}
		}
	}
	if remade < 300 {
		t.Errorf("only %d sets were remade from recipes", remade)
	}
}

func chainTexts(t *ruleset.Table) []string {
	var out []string
	for _, c := range t.Chains {
		out = append(out, c.String())
	}
	return out
}
