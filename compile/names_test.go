package compile

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/ruleset"
)

// adversarial are the pieces of names that, joined with '-', made one
// kernel name of two objects.
var adversarial = []string{"a", "-", "in", "out", "t", "x", "fwd", "pre", "raw", "hep", "pol", "fwd-in", "t-x", "in-t", "default"}

// adversarialName is a name of adversarial pieces, not in used; half of
// the time it extends a name given before (pool, of any kind), as
// endpoint "a-in-t-x" extends endpoint "a".
func adversarialName(r *rand.Rand, used map[string]bool, pool *[]string) string {
	for {
		var b strings.Builder
		if len(*pool) > 0 && r.IntN(2) == 0 {
			b.WriteString((*pool)[r.IntN(len(*pool))])
		}
		for range 1 + r.IntN(4) {
			if b.Len() > 0 && r.IntN(3) > 0 {
				b.WriteByte('-')
			}
			b.WriteString(adversarial[r.IntN(len(adversarial))])
		}
		if name := b.String(); !used[name] {
			used[name] = true
			*pool = append(*pool, name)
			return name
		}
	}
}

// adversarialConfig is a configuration whose endpoint, tier, policy and
// network set names are adversarial, with policies of every stage.
func adversarialConfig(r *rand.Rand) string {
	var b strings.Builder
	heps, tiers, policies, sets := map[string]bool{}, map[string]bool{"default": true}, map[string]bool{}, map[string]bool{}
	var pool []string
	for i := range 1 + r.IntN(4) {
		fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"eth%d\"\n  labels = { n = \"%d\" }\n}\n", adversarialName(r, heps, &pool), i, r.IntN(2))
	}
	tierNames := []string{"default"}
	for i := range r.IntN(3) {
		name := adversarialName(r, tiers, &pool)
		tierNames = append(tierNames, name)
		fmt.Fprintf(&b, "tier %q {\n  order = %d\n}\n", name, 10*(i+1))
	}
	for range r.IntN(3) {
		fmt.Fprintf(&b, "network_set %q {\n  labels = { kind = \"k%d\" }\n  nets = [\"10.%d.0.0/16\"]\n}\n", adversarialName(r, sets, &pool), r.IntN(2), r.IntN(256))
	}
	for range 1 + r.IntN(5) {
		fmt.Fprintf(&b, "policy %q {\n  tier = %q\n", adversarialName(r, policies, &pool), tierNames[r.IntN(len(tierNames))])
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, "  selector = \"n == '%d'\"\n", r.IntN(2))
		}
		egress := true
		switch r.IntN(5) {
		case 0:
			b.WriteString("  apply_on_forward = true\n")
		case 1:
			b.WriteString("  apply_on_forward = true\n  do_not_track = true\n")
		case 2:
			b.WriteString("  apply_on_forward = true\n  pre_dnat = true\n")
			egress = false
		}
		fmt.Fprintf(&b, "  ingress {\n    action = \"allow\"\n    source { selector = \"kind == 'k%d'\" }\n  }\n", r.IntN(2))
		if egress {
			fmt.Fprintf(&b, "  egress {\n    action = \"deny\"\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n", 1+r.IntN(1000))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// TestKernelNamesInjective: random configurations of adversarial names
// (fixed seeds) compile without a collision, every chain made for a
// configuration object names that object — its parts read back from the
// name are the ones its comment gives — and every jump and goto finds its
// chain. Two objects sharing a name would fail the first or the second.
func TestKernelNamesInjective(t *testing.T) {
	for seed := range uint64(1000) {
		r := rand.New(rand.NewPCG(seed, 18))
		src := adversarialConfig(r)
		tbl, diags := compileHCL(t, "h", src)
		if diags.HasErrors() {
			t.Fatalf("seed %d: %v\n%s", seed, diags, src)
		}
		seen := map[string]bool{}
		for _, ch := range tbl.Chains {
			if seen[ch.Name] {
				t.Errorf("seed %d: two chains named %q\n%s", seed, ch.Name, src)
			}
			seen[ch.Name] = true
			if !strings.Contains(ch.Name, "/") {
				continue // a fixed chain
			}
			if want := describedName(ch.Comment); ch.Name != want {
				t.Errorf("seed %d: chain %q is described as %q, which names %q\n%s", seed, ch.Name, ch.Comment, want, src)
			}
			for _, rule := range ch.Rules {
				if v := rule.Verdict; (v.Kind == ruleset.VerdictJump || v.Kind == ruleset.VerdictGoto) && tbl.Chain(v.Chain) == nil {
					t.Errorf("seed %d: %s in chain %q: no such chain", seed, v, ch.Name)
				}
			}
		}
	}
}

// describedName is the name of the chain a comment describes, worked out
// from the comment alone: `host endpoint "a" (interface eth0), ingress`,
// `host endpoint "a", ingress, tier "x"`, `policy "p", egress`,
// `policy "p", egress, drop abc: logs the drops of rule 2`.
func describedName(comment string) string {
	var name, side, tier string
	side = map[string]string{"ingress": "in", "egress": "out", "forwarded ingress": "fwd-in", "forwarded egress": "fwd-out",
		"untracked ingress": "raw-in", "untracked egress": "raw-out", "pre-DNAT ingress": "pre-in"}[sideOf(comment)]
	switch {
	case strings.HasPrefix(comment, "policy ") && strings.Contains(comment, ", drop "):
		fmt.Sscanf(comment, "policy %q", &name)
		tag := strings.TrimSuffix(strings.Fields(comment[strings.LastIndex(comment, ", drop ")+2:])[1], ":")
		return fmt.Sprintf("pol/%s/%s/drop/%s", name, side, tag)
	case strings.HasPrefix(comment, "policy "):
		fmt.Sscanf(comment, "policy %q", &name)
		return "pol/" + name + "/" + side
	case strings.Contains(comment, ", tier "):
		fmt.Sscanf(comment, "host endpoint %q", &name)
		fmt.Sscanf(comment[strings.LastIndex(comment, ", tier ")+2:], "tier %q", &tier)
		return "hep/" + name + "/" + side + "/t/" + tier
	default:
		fmt.Sscanf(comment, "host endpoint %q", &name)
		return "hep/" + name + "/" + side
	}
}

// sideOf is the side a chain's comment gives.
func sideOf(comment string) string {
	for _, part := range strings.Split(comment, ", ") {
		switch part {
		case "ingress", "egress", "forwarded ingress", "forwarded egress", "untracked ingress", "untracked egress", "pre-DNAT ingress":
			return part
		}
	}
	return ""
}

// TestKernelNamesOfTheIssue: the two collisions found — endpoint "a" with
// a tier "x-in" next to endpoint "a-in-t-x", and policy "web" on forward
// next to policy "web-fwd" — make distinct chains.
func TestKernelNamesOfTheIssue(t *testing.T) {
	tbl, diags := compileHCL(t, "h", `
host_endpoint "a" { interface = "eth0" }
host_endpoint "a-in-t-x" { interface = "eth1" }
tier "x-in" { order = 1 }
policy "p" {
  tier = "x-in"
  ingress { action = "allow" }
}
policy "web" {
  apply_on_forward = true
  ingress { action = "allow" }
}
policy "web-fwd" {
  ingress { action = "deny" }
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, name := range []string{"hep/a/in/t/x-in", "hep/a-in-t-x/in", "pol/web/fwd-in", "pol/web-fwd/in", "pol/web/in"} {
		if tbl.Chain(name) == nil {
			t.Errorf("no chain %q", name)
		}
	}
}

// TestLongKernelNames: names too long for the kernel once joined are cut
// to a readable head and a hash of the whole, and stay distinct.
func TestLongKernelNames(t *testing.T) {
	long := strings.Repeat("a", 200)
	one, two := kernelName("hep", long, "in", "t", long+"x"), kernelName("hep", long, "in", "t", long+"y")
	if one == two || len(one) > maxKernelName || !strings.Contains(one, "//") || !strings.HasPrefix(one, "hep/"+long[:100]) {
		t.Errorf("long names %q and %q", one, two)
	}
	if short := kernelName("hep", "a", "in"); short != "hep/a/in" {
		t.Errorf("short name %q", short)
	}
	tbl, diags := compileHCL(t, "h", fmt.Sprintf(`
host_endpoint %q { interface = "eth0" }
tier %q { order = 1 }
tier %q { order = 2 }
policy %q {
  tier = %q
  ingress { action = "pass" }
}
policy %q {
  tier = %q
  ingress { action = "allow" }
}
`, long, long[:199]+"x", long[:199]+"y", long[:150]+"p", long[:199]+"x", long[:150]+"q", long[:199]+"y"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tiers := 0
	for _, ch := range tbl.Chains {
		if strings.Contains(ch.Name, "//") {
			tiers++
		}
	}
	if tiers != 2 {
		t.Errorf("%d tier chains with cut names; want 2", tiers)
	}
}

// TestSetNamesDoNotShare: a set made from other parts than the one whose
// short name it would take gets a name of its own.
func TestSetNamesDoNotShare(t *testing.T) {
	c := &compiler{setKeys: map[string]string{}}
	first := c.setName("sel", "4", "role == 'a'")
	if again := c.setName("sel", "4", "role == 'a'"); again != first {
		t.Errorf("equal parts named %q and %q", first, again)
	}
	c.setKeys[c.setName("sel", "4", "role == 'b'")] = "something else, hashing alike"
	if other := c.setName("sel", "4", "role == 'b'"); other == first || len(other) < len(first)+40 {
		t.Errorf("a set whose short name is taken is named %q", other)
	}
}

// TestLogPrefix: a log prefix fits nft's 127 bytes, keeps the direction
// and rule, and tells two long policy names that start alike apart.
func TestLogPrefix(t *testing.T) {
	long := strings.Repeat("p", 200)
	a, b := logPrefix(long+"a", "ingress", 11), logPrefix(long+"b", "ingress", 11)
	if a == b || len(a) > 127 || !strings.HasSuffix(a, " ingress/12: ") || !strings.HasPrefix(a, "hostwall ppp") {
		t.Errorf("prefixes %q and %q", a, b)
	}
	if s := logPrefix("web", "egress", 0); s != "hostwall web egress/1: " {
		t.Errorf("short prefix %q", s)
	}
}
