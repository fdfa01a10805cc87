package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// Kernel reads and changes table inet hostwall of one network namespace.
// nft.Conn implements it, and nfttest.Fake with the same semantics.
type Kernel interface {
	// Read returns the live table (nil when missing) and the ruleset
	// generation it was read at. The table may be one an earlier Read
	// returned: callers read it and do not change it (planner.Diff does
	// not).
	Read(ctx context.Context) (*ruleset.Table, uint32, error)
	// Generation returns the kernel's ruleset generation, which every
	// committed transaction in the namespace, by anyone, moves.
	Generation() (uint32, error)
	// Apply commits a plan atomically, provided the table is still what it
	// was at p.Generation; otherwise nothing changes and the error wraps
	// planner.ErrStale. It returns the ruleset generation right after the
	// commit. A kernel that can tell that only other tables changed since
	// (nft.Conn following its events) sends the plan at a later
	// generation and sets p.Generation to it.
	Apply(ctx context.Context, p *planner.Plan) (uint32, error)
	// DeleteTable removes the table in one transaction, provided the
	// generation is still gen (planner.ErrStale otherwise); a missing
	// table is no error.
	DeleteTable(ctx context.Context, gen uint32) error
}

// likeReader is a Kernel that reads a table sharing the elements of the
// sets it holds alike with another table's (nft.Conn.ReadLike).
type likeReader interface {
	ReadLike(ctx context.Context, like *ruleset.Table) (*ruleset.Table, uint32, error)
}

// readLike reads k, sharing the elements of the sets it holds alike with
// like (nil: none) when k can.
func readLike(ctx context.Context, k Kernel, like *ruleset.Table) (*ruleset.Table, uint32, error) {
	if lr, ok := k.(likeReader); ok && like != nil {
		return lr.ReadLike(ctx, like)
	}
	return k.Read(ctx)
}

// PlanTable reads the kernel and returns the plan that makes it hold
// desired (nil: no table).
func PlanTable(ctx context.Context, k Kernel, desired *ruleset.Table) (*planner.Plan, error) {
	live, gen, err := readLike(ctx, k, desired)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel ruleset: %w", err)
	}
	if live != nil && live.Owned {
		return nil, ErrOwned
	}
	var p *planner.Plan
	if desired == nil {
		p = planner.Remove(live)
	} else {
		p = planner.Diff(desired, live)
	}
	p.Generation = gen
	return p, nil
}

// ErrOwned means that another program made table inet hostwall with the
// owner flag: no plan can be carried out (the kernel refuses every change
// from any other socket), and the table vanishes when that program closes
// its socket. hostwall never sets the flag, so the table was deleted and
// made again by someone else.
var ErrOwned = errors.New("table inet hostwall is owned by another program (nft shows `flags owner`): the kernel lets only that program's netlink socket change or delete it, and deletes it when that socket closes, so hostwall cannot enforce the configuration; find that program (`ss -f netlink -p` lists the programs with a netfilter socket), stop it, and apply again")

// ErrNotConverged means the kernel accepted a batch but does not hold what
// was sent: hostwall refuses to call such an apply a success.
var ErrNotConverged = errors.New("the kernel does not hold what was applied")

// maxApplyAttempts bounds planning again when another writer races us.
// On a busy host a large batch races other programs' transactions in the
// moment between its vouching and the kernel's check (nft.Conn.commit),
// about one time in ten with another table changed 50 times a second.
const maxApplyAttempts = 6

// Verification is how ApplyTable makes sure the kernel holds desired.
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
	ByReadBack
)

// ApplyTable commits p, then verifies that the kernel holds desired
// exactly. If another process changed the ruleset since p was made, it
// plans again from the new state (at most maxApplyAttempts times). It
// returns the plan actually applied and the kernel generation at which
// desired was verified.
func ApplyTable(ctx context.Context, k Kernel, desired *ruleset.Table, p *planner.Plan, v Verification) (*planner.Plan, uint32, error) {
	for attempt := 1; ; attempt++ {
		after, err := k.Apply(ctx, p)
		if errors.Is(err, planner.ErrStale) && attempt < maxApplyAttempts {
			if p, err = PlanTable(ctx, k, desired); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		gen, err := verify(ctx, k, desired, p, after, v)
		return p, gen, err
	}
}

// verify makes sure the kernel, at generation after once p was committed,
// holds desired: by the generation alone when v allows, else by reading.
func verify(ctx context.Context, k Kernel, desired *ruleset.Table, p *planner.Plan, after uint32, v Verification) (uint32, error) {
	if v == ByGeneration && after == committed(p) {
		return after, nil
	}
	return Verify(ctx, k, desired)
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

// Verify reads the kernel and fails unless it holds desired exactly (nil:
// no table); it returns the generation it read at.
func Verify(ctx context.Context, k Kernel, desired *ruleset.Table) (uint32, error) {
	if desired == nil {
		live, gen, err := k.Read(ctx)
		if err == nil && live != nil {
			err = fmt.Errorf("%w: table inet hostwall is still there", ErrNotConverged)
		}
		return gen, err
	}
	rest, err := PlanTable(ctx, k, desired)
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

// removeTable deletes the table, planning again while another writer races
// us (at most maxApplyAttempts times); it returns the generation after.
func removeTable(ctx context.Context, k Kernel, gen uint32) (uint32, error) {
	for attempt := 1; ; attempt++ {
		err := k.DeleteTable(ctx, gen)
		if errors.Is(err, planner.ErrStale) && attempt < maxApplyAttempts {
			if gen, err = k.Generation(); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		return Verify(ctx, k, nil)
	}
}
