package engine

import (
	"context"
	"errors"
	"fmt"

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
	err := e.locked(func(ns state.Namespace) (err error) {
		res, err = e.applyChange(ctx, ns, c, func() (*planner.Plan, string, error) {
			p, err := PlanTable(ctx, e.kernel, c.desired)
			return p, "", err
		})
		return err
	})
	return res, err
}

// Previous is the generation a rollback goes to by default: the newest one
// older than the current one that is not damaged.
func (e *Engine) Previous() (int, error) {
	gens, cur, err := e.Generations()
	if err != nil {
		return 0, err
	}
	for i := len(gens) - 1; i >= 0; i-- {
		if n := gens[i].Number; n < cur && gens[i].Damaged == "" {
			if _, err := e.store.Load(n); err == nil { // every file hashed: damage of the same size too
				return n, nil
			}
		}
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
