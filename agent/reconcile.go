package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// Kernel reads and changes table inet hostwall.
type Kernel interface {
	// Read returns the live table (nil when missing) and the ruleset
	// generation it was read at. The table may be the one an earlier Read
	// returned: callers read it and do not change it (planner.Diff does
	// not).
	Read(ctx context.Context) (*ruleset.Table, uint32, error)
	// Apply commits a plan atomically, provided the generation is still gen;
	// otherwise it returns an error for which IsGenerationChanged holds. It
	// returns the ruleset generation right after the commit.
	Apply(ctx context.Context, p *planner.Plan, gen uint32) (uint32, error)
}

// Plan reads the kernel and returns the plan that makes it hold desired.
func Plan(ctx context.Context, k Kernel, desired *ruleset.Table) (*planner.Plan, error) {
	live, gen, err := k.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel ruleset: %w", err)
	}
	p := planner.Diff(desired, live)
	p.Generation = gen
	return p, nil
}

// ErrNotConverged means the kernel accepted a batch but does not hold what
// was sent: hostwall refuses to call such an apply a success.
var ErrNotConverged = errors.New("the kernel does not hold what was applied")

// maxApplyAttempts bounds re-planning when another writer races us.
const maxApplyAttempts = 3

// Verification is how Apply makes sure the kernel holds desired.
type Verification int

const (
	// ByGeneration trusts a commit that moved the kernel's ruleset
	// generation by exactly one from the generation of the plan's read:
	// then nobody else committed in between, the kernel held what the plan
	// was diffed against (a whole-table read), and the batch went in whole
	// (all or nothing, no message refused, checked by the kernel against
	// the plan's generation), so the kernel holds desired. Any other
	// generation falls back to ByReadBack.
	ByGeneration Verification = iota
	// ByReadBack reads the whole table back and diffs it against desired.
	// The agent uses it because the read is also its next plan's base;
	// the kernel tests use it to prove what the batch encodes.
	ByReadBack
)

// Apply commits p, then verifies that the kernel holds desired exactly. If
// another process changed the ruleset since p was made, it plans again from
// the new state (at most maxApplyAttempts times). It returns the plan
// actually applied and the kernel generation at which desired was verified.
func Apply(ctx context.Context, k Kernel, desired *ruleset.Table, p *planner.Plan, isGenChanged func(error) bool, v Verification) (*planner.Plan, uint32, error) {
	for attempt := 1; ; attempt++ {
		after, err := k.Apply(ctx, p, p.Generation)
		if err != nil && isGenChanged(err) && attempt < maxApplyAttempts {
			if p, err = Plan(ctx, k, desired); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if v == ByGeneration && after == committed(p) {
			return p, after, nil
		}
		gen, err := Verify(ctx, k, desired)
		return p, gen, err
	}
}

// committed is the generation the kernel is at when p, and nothing else,
// was committed on top of the generation p was planned at. An empty plan
// commits nothing. The kernel skips 0 when the counter wraps.
func committed(p *planner.Plan) uint32 {
	if p.Empty() {
		return p.Generation
	}
	if p.Generation == ^uint32(0) {
		return 1
	}
	return p.Generation + 1
}

// Verify reads the kernel and fails unless it holds desired exactly; it
// returns the generation it read at.
func Verify(ctx context.Context, k Kernel, desired *ruleset.Table) (uint32, error) {
	rest, err := Plan(ctx, k, desired)
	if err != nil {
		return 0, fmt.Errorf("verifying the apply: %w", err)
	}
	if !rest.Empty() {
		add, change, destroy := rest.Summary()
		first := "table inet hostwall is missing"
		if len(rest.Changes) > 0 {
			c := rest.Changes[0]
			first = fmt.Sprintf("%s %s %s", c.Action.Word(), c.Kind, c.Name)
		}
		return 0, fmt.Errorf("%w: %d to add, %d to change, %d to destroy remain (first: %s)",
			ErrNotConverged, add, change, destroy, first)
	}
	return rest.Generation, nil
}
