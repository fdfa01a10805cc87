package nft_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/nft/nfttest"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// shape is what must be equal between the fake's and the kernel's plans
// (handles differ and do not count).
func shape(p *planner.Plan) []string {
	out := []string{fmt.Sprint(p.CreateTable)}
	for _, c := range p.Changes {
		s := fmt.Sprintf("%s %s %s", c.Action.Word(), c.Kind, c.Name)
		if c.Chain != nil {
			s += fmt.Sprintf(" rules -%d +%d", len(c.Chain.Deleted), len(c.Chain.Inserts))
		}
		if c.Set != nil {
			s += fmt.Sprintf(" elements -%d +%d", len(c.Set.Removed), len(c.Set.Added))
		}
		out = append(out, s)
	}
	return out
}

// TestFakeFidelity runs one scenario against nfttest.Fake and the kernel: the
// plans, the resulting tables and a refused batch must be the same, so tests
// built on the fake say something about the kernel.
func TestFakeFidelity(t *testing.T) {
	c, _ := kernel(t)
	fake := nfttest.New()
	kernels := map[string]engine.Kernel{"kernel": c, "fake": fake}
	steps := []*ruleset.Table{
		compileDir(t, "../examples/quickstart", "web-1"),
		compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24"`)}),
		compileSrc(t, "h", map[string]string{"a.hcl": fmt.Sprintf(oneSet, `"10.0.0.0/24", "10.0.1.0/24", "fd00::/64"`)}),
		compileDir(t, "../examples/fleet", "db-1"),
		compileDir(t, "../examples/fleet", "web-1"),
		compileSrc(t, "h", map[string]string{"tiers.hcl": tiered}),
		compileSrc(t, "h", map[string]string{}), // tier chains that goto each other all go
		compileSrc(t, "h", map[string]string{"fwd.hcl": forwarded}),
		compileSrc(t, "h", map[string]string{}), // maps that goto chains go with them
	}
	ctx := context.Background()
	for i, desired := range steps {
		shapes, tables := map[string][]string{}, map[string]string{}
		for name, k := range kernels {
			p, err := engine.PlanTable(ctx, k, desired)
			if err != nil {
				t.Fatal(err)
			}
			shapes[name] = shape(p)
			if _, _, err := engine.ApplyTable(ctx, k, desired, p, engine.ByReadBack); err != nil {
				t.Fatalf("step %d on the %s: %v", i, name, err)
			}
			live, _, _ := k.Read(ctx)
			tables[name] = live.String()
		}
		if diff := cmp.Diff(shapes["kernel"], shapes["fake"]); diff != "" {
			t.Errorf("step %d: plans differ (-kernel +fake):\n%s", i, diff)
		}
		if diff := cmp.Diff(tables["kernel"], tables["fake"]); diff != "" {
			t.Errorf("step %d: tables differ (-kernel +fake):\n%s", i, diff)
		}
	}
	// A batch ending in a deletion of what does not exist fails on both,
	// with the same errno, and changes neither.
	for name, k := range kernels {
		before, gen, _ := k.Read(ctx)
		p := planner.Diff(steps[0], before)
		p.Changes = append(p.Changes, planner.Change{Kind: planner.KindChain, Name: "ghost", Action: planner.Delete,
			Chain: &planner.ChainDiff{Before: &ruleset.Chain{Name: "ghost"}}})
		p.Generation = gen
		if _, err := k.Apply(ctx, p); !errors.Is(err, unix.ENOENT) {
			t.Errorf("%s: refused batch returned %v, want ENOENT", name, err)
		}
		if after, _, _ := k.Read(ctx); after.String() != before.String() {
			t.Errorf("%s: a refused batch changed the table", name)
		}
	}
}

const tiered = `
host_endpoint "eth0" { interface = "eth0" }
tier "z" {
  order          = 1
  default_action = "pass"
}
tier "y" { order = 2 }
policy "pa" {
  tier = "z"
  ingress {
    action   = "pass"
    protocol = "tcp"
  }
}
policy "pb" {
  tier = "y"
  ingress { action = "allow" }
}
policy "pd" {
  ingress { action = "deny" }
}
`

const forwarded = `
host_endpoint "eth0" { interface = "eth0" }
host_endpoint "any" { interface = "*" }
policy "f" {
  apply_on_forward = true
  ingress { action = "allow" }
  egress {
    action   = "deny"
    protocol = "udp"
  }
}
`
