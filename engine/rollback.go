package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/state"
)

// rollback applies generation *req.Rollback again (0: no table), as an
// apply does: planned and shown, approved, checked against the lockout
// (unless Force), on trial when asked, in write-ahead order. A damaged
// generation is never applied; one that compiles differently with this
// hostwall needs Force.
func (e *Engine) rollback(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	n := *req.Rollback
	c := &change{req: req, op: "rollback", target: n}
	if n > 0 {
		g, err := e.store.Load(n)
		if err != nil {
			return nil, err
		}
		cfg, tbl, err := e.compileRecorded(g)
		if err != nil {
			return nil, err
		}
		if !req.Force && state.HashRuleset(tbl.String()) != g.RulesetHash {
			return nil, fmt.Errorf("generation %d %w; --force rolls back to what it compiles to now", n, ErrCompilesDifferently)
		}
		c.desired, c.rules, c.host = tbl, tbl.RuleCount(), g.HostName
		if !req.Force {
			if c.notes, err = e.lockoutCheck(cfg, g.HostName, req.SSHConnection); err != nil {
				return nil, err
			}
		}
	}
	var res *ApplyResult
	var t *state.Trial
	var p *planner.Plan
	err := e.locked(func(ns state.Namespace) (err error) {
		if t, err = e.readTrial(ns); err != nil || t != nil {
			if t != nil {
				p, err = e.planTrialRollback(ctx, t, c)
			}
			return err
		}
		res, err = e.applyChange(ctx, ns, c, func() (*planner.Plan, string, error) {
			p, err := PlanTable(ctx, e.kernel, c.desired)
			return p, "", err
		})
		return err
	})
	if err != nil || t == nil {
		return res, err
	}
	// A trial is pending: it is asked about without the lock, which the
	// trial's guard needs at the deadline (an open prompt must not hold a
	// change in force past it), and ended under the lock again — unless
	// it ended meanwhile.
	note := fmt.Sprintf("This ends the trial of generation %d now, as its deadline would; it is not itself on trial.", t.Generation)
	show(c.req, &Preview{Plan: p, Notes: append(c.notes, note), Rollback: c.req.Rollback})
	if err := e.approve(ctx, c.req); err != nil {
		return nil, err
	}
	// The guard may be rolling the trial back at this moment: its outcome
	// is waited for, whatever the lock timeout (as confirm does).
	err = e.lockedWaiting(time.Minute, func(ns state.Namespace) error {
		now, err := e.readTrial(ns)
		if err != nil {
			return err
		}
		if now == nil || now.Generation != t.Generation || !now.Deadline.Equal(t.Deadline) {
			o, err := e.trials(ns).LastOutcome()
			if err != nil || o == nil || o.Generation != t.Generation {
				return fmt.Errorf("the trial of generation %d ended while you were asked, and how is not recorded; nothing was changed: run hostwall status", t.Generation)
			}
			res = &ApplyResult{Generation: o.Previous, EndedTrial: o}
			e.notice("the trial of generation %d ended while you were asked; nothing more was done", t.Generation)
			return nil
		}
		res, err = e.rollbackTrial(ctx, ns, now, c, p)
		return err
	})
	return res, err
}

// planTrialRollback plans the rollback c while trial t is pending, refusing
// one of a trial applied with another state directory.
func (e *Engine) planTrialRollback(ctx context.Context, t *state.Trial, c *change) (*planner.Plan, error) {
	if e.storeFor(t) != e.store {
		return nil, fmt.Errorf("the trial of generation %d was applied with the state directory %s; roll it back with --state-dir %s", t.Generation, t.StateDir, t.StateDir)
	}
	return PlanTable(ctx, e.kernel, c.desired)
}

// rollbackTrial is a rollback while trial t is pending: it ends the trial
// at once, as its guard does at the deadline, restoring the generation of
// the rollback c (planned as p, shown and approved before; the caller
// holds the lock again); the rollback is not itself on trial. A
// generation other than the one the trial returns to is made the trial's
// end first, durably: whoever finishes the rollback after a crash (the
// trial's guard, the agent, the next command) restores the same.
func (e *Engine) rollbackTrial(ctx context.Context, ns state.Namespace, t *state.Trial, c *change, p *planner.Plan) (*ApplyResult, error) {
	if t.Previous != c.target {
		t.Previous = c.target
		if err := e.trials(ns).Update(t); err != nil {
			return nil, fmt.Errorf("recording where the trial now ends (nothing was changed): %w", err)
		}
	}
	o, acted, err := e.expireLocked(ctx, ns, t, rollbackPoint{gen: c.target, table: c.desired}, p, "hostwall rollback")
	if err != nil {
		return nil, err
	}
	if !acted {
		return nil, fmt.Errorf("the trial of generation %d ended (%s) before it could be rolled back; nothing was changed", t.Generation, o.Result)
	}
	res := &ApplyResult{Generation: o.Previous, Rules: c.rules, EndedTrial: o}
	if !p.Empty() {
		res.Plan = p
	}
	return res, nil
}

// RollbackTarget is the generation a rollback goes to by default: while a
// trial is pending, the one it returns to; otherwise Previous. What a
// hostwall that died left behind is settled first, so that the current
// generation is the kernel's.
func (e *Engine) RollbackTarget() (int, error) {
	before, _ := e.Trial()
	if err := e.Settle(); err != nil {
		return 0, err
	}
	if t, err := e.Trial(); err != nil || t != nil {
		if t == nil {
			return 0, err
		}
		return t.Previous, nil
	}
	if before != nil {
		// The trial pending when the rollback was asked for ended since
		// (its guard rolled it back at the deadline, say): going where it
		// went is what was asked, not one generation further.
		return before.Previous, nil
	}
	n, err := e.Previous()
	if err != nil {
		return 0, err
	}
	if ns, nerr := e.namespace(); nerr == nil {
		if o, _ := e.trials(ns).LastOutcome(); o != nil && o.Result == state.RolledBack && time.Since(o.Time) < time.Minute {
			e.notice("the trial of generation %d was rolled back to generation %d %s ago; this rollback goes one further, to generation %d",
				o.Generation, o.Previous, time.Since(o.Time).Round(time.Second), n)
		}
	}
	return n, nil
}

// Previous is the generation a rollback goes to by default when no trial
// is pending: the newest one older than the current one that is intact
// (with none current, the newest intact one).
func (e *Engine) Previous() (int, error) {
	cur, err := e.store.Current()
	if err != nil {
		return 0, err
	}
	return e.previousOf(e.store, cur)
}

// previousOf is the newest generation of store older than cur (any, when
// cur is 0) that is intact.
func (e *Engine) previousOf(store *state.Store, cur int) (int, error) {
	nums, err := store.Numbers()
	if err != nil {
		return 0, err
	}
	for i := len(nums) - 1; i >= 0; i-- {
		if n := nums[i]; n < cur || cur == 0 {
			if _, err := store.Load(n); err == nil { // every file hashed: damage of the same size too
				return n, nil
			}
		}
	}
	if cur == 0 {
		return 0, errors.New("there is no intact generation (hostwall generations lists them)")
	}
	return 0, errors.New("there is no intact generation before the current one (hostwall generations lists them)")
}

// Generations lists the recorded generations, oldest first (a damaged one
// with only its number and why), and the current one's number.
func (e *Engine) Generations() ([]*state.Generation, int, error) {
	gens, err := e.store.List()
	if err != nil {
		return nil, 0, err
	}
	cur, err := e.store.Current()
	return gens, cur, err
}

// Current is the current generation's number (0: none).
func (e *Engine) Current() (int, error) { return e.store.Current() }
