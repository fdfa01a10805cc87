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
	// generation it was read at.
	Read(ctx context.Context) (*ruleset.Table, uint32, error)
	// Apply commits a plan atomically, provided the generation is still gen;
	// otherwise it returns an error for which IsGenerationChanged holds.
	Apply(ctx context.Context, p *planner.Plan, gen uint32) error
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

// Apply commits p, then reads the kernel back and checks it now holds
// desired exactly. If another process changed the ruleset since p was made,
// it plans again from the new state (at most maxApplyAttempts times). It
// returns the plan actually applied and the kernel generation at which the
// read-back found desired.
func Apply(ctx context.Context, k Kernel, desired *ruleset.Table, p *planner.Plan, isGenChanged func(error) bool) (*planner.Plan, uint32, error) {
	for attempt := 1; ; attempt++ {
		err := k.Apply(ctx, p, p.Generation)
		if err != nil && isGenChanged(err) && attempt < maxApplyAttempts {
			if p, err = Plan(ctx, k, desired); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		gen, err := Verify(ctx, k, desired)
		return p, gen, err
	}
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
