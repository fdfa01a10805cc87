package engine

import (
	"context"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// Repair makes the kernel hold the current generation again: after a
// change to the table by another program (drift), or at an agent's start
// on files that do not load (the last good generation). force takes a
// generation that compiles differently with this hostwall as it compiles
// now (the agent's start: better than no firewall); otherwise such a
// generation is an error. It returns the plan applied, nil when the kernel
// held it, or when a trial runs (its generation is current and in force;
// its guard ends it).
func (e *Engine) Repair(ctx context.Context, force bool) (*planner.Plan, error) {
	var applied *planner.Plan
	err := e.locked(func(ns state.Namespace) error {
		if t, err := e.readTrial(ns); err != nil || t != nil {
			return err
		}
		cur, err := e.store.Current()
		if err != nil || cur == 0 {
			return err
		}
		var tbl *ruleset.Table
		var host string
		if d := e.desired; d != nil && d.n == cur {
			tbl, host = d.table, d.host // this engine made it current
		} else {
			g, t, err := e.generationTable(e.store, cur, force)
			if err != nil {
				return err
			}
			tbl, host = t, g.HostName
		}
		p, err := PlanTable(ctx, e.kernel, tbl)
		if err != nil || p.Empty() {
			return err
		}
		c := &change{req: ApplyRequest{Explicit: true, Force: true}, op: "repair", desired: tbl, rules: tbl.RuleCount(), target: cur, host: host,
			plan: p}
		res, err := e.commit(ctx, ns, c)
		if err == nil {
			applied = res.Plan
		}
		return err
	})
	return applied, err
}

// Forget makes the next plan of a long-running engine read the kernel
// instead of its kept read: the agent's periodic verification is a full
// comparison, whatever its commits and the kernel's events were taken to
// show since the last read.
func (e *Engine) Forget() {
	if e.cache != nil {
		e.cache.forget()
	}
}
