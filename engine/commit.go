package engine

// Committing a change, in write-ahead order. Before a single netlink
// message is sent:
//
//  1. the intent is durable (state.Intent: what is being applied, what was
//     current, the kernel generation planned at);
//  2. the generation the change applies is durable — written, synced and
//     renamed into place (state.Pending.Place), though not current;
//  3. for a trial, the trial is durable in the namespace's directory and
//     the state directory, and its guard is running and armed (it holds
//     the previous ruleset, compiled, and the deadline).
//
// Only then is the batch sent. Once the kernel answers, the outcome is
// recorded: the generation made current and the intent removed, or — the
// kernel having refused the batch — the generation removed, the trial
// ended and the intent removed. A failure before the batch leaves the
// kernel untouched; a death after step 1 leaves an intent, which the next
// holder of the namespace's lock settles by what the kernel holds
// (recover.go), and a death after step 3 leaves the trial to its guard
// (and to the agent, which watches the same trial). The front door's
// cancellation (Ctrl-C, SIGHUP, SIGTERM, SIGPIPE) is heeded until step 1
// (step 3, for a trial) and ignored from there until the outcome is
// recorded.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// change is one change to the kernel on its way: what it applies, its
// plan, and its records.
type change struct {
	req ApplyRequest
	// op is the intent's: "apply" (of a new generation), "rollback" or
	// "repair" (of a recorded one, target).
	op string
	// desired is what the kernel holds after the change: a whole table,
	// only sets (incremental: the chains are the kernel's), or nil (no
	// table).
	desired     *ruleset.Table
	incremental bool
	// rules counts the rules of the table in force after the change.
	rules int
	// loaded is the configuration desired was compiled from (nil for an
	// incremental change or a rollback); sources are the files of the
	// change (nil for a rollback).
	loaded   *Loaded
	sources  []loader.Source
	host     string
	warnings hcl.Diagnostics
	notes    []string
	plan     *planner.Plan
	// records are a change of files' new generation and verified record,
	// made while the change is planned and approved; gen is the generation,
	// once written (nil when the change applies an existing generation,
	// target).
	records *records
	gen     *state.Pending
	target  int
	// armed is the trial, once its guard is armed; committed is set once
	// the kernel took the change (its records are then never discarded).
	// wroteAhead: writeAhead wrote the intent and the prepared current
	// record (not for a repair in place).
	armed *state.Trial
	// current is the record of target as current, written ahead.
	current    *state.PreparedCurrent
	committed  bool
	wroteAhead bool
}

// discard drops the records of a change that did not reach the kernel.
func (c *change) discard() {
	if c.records != nil && !c.committed {
		c.records.discard()
	}
}

// verified is the change's staged verified record (nil: none).
func (c *change) verified() *stagedRecord {
	if c.records == nil {
		return nil
	}
	return c.records.verified()
}

// applyChange plans a change (plan), shows it, asks for approval, and
// commits it; the caller holds the namespace's lock.
func (e *Engine) applyChange(ctx context.Context, ns state.Namespace, c *change, plan func() (*planner.Plan, string, error)) (*ApplyResult, error) {
	if res, err := e.duringTrial(ns, c.req); res != nil || err != nil {
		return res, err
	}
	if held := e.heldBack(ns, c); held != "" {
		return &ApplyResult{Held: held}, nil
	}
	p, note, err := plan()
	if err != nil {
		return nil, err
	}
	c.plan = p
	if note != "" {
		c.notes = append(c.notes, note)
	}
	if c.req.Saved != nil {
		if err := e.checkSaved(c.req.Saved, c.loaded, p); err != nil {
			return nil, err
		}
	}
	if p.Empty() && c.req.Trial != 0 {
		// Nothing reaches the kernel, so nothing could lock anyone out:
		// no trial.
		c.notes = append(c.notes, "nothing changes in the kernel, so there is no trial")
	}
	show(c.req, &Preview{Plan: p, Warnings: c.warnings, Notes: c.notes, Rollback: c.req.Rollback})
	if p.Empty() {
		return e.recordUnchanged(ns, c)
	}
	if err := e.approve(ctx, c.req); err != nil {
		return nil, err
	}
	if err := e.trialPossible(ctx, ns, c); err != nil {
		return nil, err
	}
	if c.records != nil {
		if c.gen, err = c.records.generation(); err != nil {
			return nil, err
		}
	}
	return e.commit(ctx, ns, c)
}

// duringTrial refuses a change while a trial runs (an operator's) or holds
// it back (the agent's).
func (e *Engine) duringTrial(ns state.Namespace, req ApplyRequest) (*ApplyResult, error) {
	t, err := e.trials(ns).Read()
	if err != nil || t == nil {
		return nil, err
	}
	switch {
	case req.Explicit && expired(t):
		return nil, fmt.Errorf("the trial of generation %d is due to roll back to generation %d and has not been (see above); hostwall rollback ends it, before the firewall is changed again",
			t.Generation, t.Previous)
	case req.Explicit:
		return nil, fmt.Errorf("generation %d is on trial until %s; hostwall confirm it, or hostwall rollback it, before changing the firewall again",
			t.Generation, t.Deadline.Format(time.TimeOnly))
	}
	return &ApplyResult{Held: fmt.Sprintf("generation %d is on trial; the files are applied once it is confirmed or rolled back", t.Generation)}, nil
}

// heldBack says why an automatic apply of the files does not go in: they
// hold the configuration whose trial was rolled back last, which only an
// operator may apply again.
func (e *Engine) heldBack(ns state.Namespace, c *change) string {
	if c.req.Explicit || c.sources == nil {
		return ""
	}
	if c.req.Names {
		// Resolving names again re-applies the files in force; after a
		// rollback to other files, that would undo it.
		cur, err := e.store.Current()
		if g, gerr := e.store.Meta(cur); err == nil && gerr == nil && cur > 0 && sourcesHash(g) != loader.HashSources(c.sources) {
			return fmt.Sprintf("generation %d in force was not made from the files as they are (a rollback): its domain names are resolved again once the files are applied (an edit, or hostwall reload)", cur)
		}
	}
	o, err := e.trials(ns).LastOutcome()
	if err != nil || o == nil || o.Result != state.RolledBack {
		return ""
	}
	g, err := e.store.Meta(o.Generation)
	if err != nil || sourcesHash(g) != loader.HashSources(c.sources) {
		return ""
	}
	return "the files hold the configuration whose trial was rolled back; edit them, or run hostwall reload (or apply) to apply it again"
}

// approve asks for approval through the request.
func (e *Engine) approve(ctx context.Context, req ApplyRequest) error {
	if err := ctx.Err(); err != nil {
		return ErrCancelled
	}
	if req.Approve == nil {
		return nil
	}
	ok, err := req.Approve(ctx)
	if err != nil || !ok || ctx.Err() != nil {
		return ErrCancelled
	}
	return nil
}

// trialPossible refuses a trial with nothing to return to: no generation
// is recorded while a table exists.
func (e *Engine) trialPossible(ctx context.Context, ns state.Namespace, c *change) error {
	if c.req.Trial == 0 {
		return nil
	}
	if c.req.Arm == nil {
		return errors.New("a trial needs something to hold its timer (a guard)")
	}
	cur, err := e.store.Current()
	if err != nil || cur > 0 {
		return err
	}
	if live, _, err := e.o.Kernel.Read(ctx); err != nil {
		return err
	} else if live != nil {
		return errors.New("no recorded generation to return to, and table inet hostwall exists: apply once without --confirm-timeout (or with --confirm-timeout 0), then use trials")
	}
	return nil
}

// commit commits an approved change in write-ahead order (the top of this
// file); the caller holds the namespace's lock.
func (e *Engine) commit(ctx context.Context, ns state.Namespace, c *change) (*ApplyResult, error) {
	prev, err := e.store.Current()
	if err != nil {
		return nil, err
	}
	if err := e.writeAhead(ctx, ns, c, prev); err != nil {
		e.undo(ns, c)
		return nil, err
	}
	// From here until the outcome is recorded, nothing cancels.
	ctx = context.WithoutCancel(ctx)
	applied, after, verified, err := e.send(ctx, c)
	switch {
	case errors.Is(err, planner.ErrNotCommitted) || errors.Is(err, planner.ErrStale):
		e.undo(ns, c)
		return nil, fmt.Errorf("apply failed; the kernel keeps the ruleset it had: %w", err)
	case err != nil:
		// The batch may have gone in: the records stay as they are, for
		// whoever holds the lock next to settle by what the kernel holds.
		c.committed = true
		return nil, fmt.Errorf("it is not known whether the kernel holds the change (%w); the next hostwall command, or status, settles which generation it holds, and a trial's guard restores the previous one at its deadline in any case", err)
	}
	c.committed = true
	if c.armed != nil {
		c.armed.Committed = after
		if err := e.trials(ns).Update(c.armed); err != nil {
			e.notice("telling the trial's guard that the change is in (it plans the rollback later): %v", err)
		}
	}
	return e.settle(ns, c, prev, applied, after, verified)
}

// writeAhead makes the change's generation, its intent and, for a trial,
// the trial and its guard durable and running; a cancelled request stops
// here with nothing sent.
func (e *Engine) writeAhead(ctx context.Context, ns state.Namespace, c *change, prev int) error {
	if ctx.Err() != nil {
		return ErrCancelled
	}
	if c.gen != nil {
		n, err := c.gen.Number()
		if err != nil {
			return fmt.Errorf("recording generation: %w", err)
		}
		c.target = n
	}
	if c.inPlace(prev) {
		// A repair to the current generation: the records say already
		// what the kernel will hold, and a death at any point leaves the
		// kernel drifted or repaired under them — the next check repairs
		// it again. Nothing to write ahead (two syncs, tens of
		// milliseconds on a busy disk, of a drift repair's budget).
		return nil
	}
	c.wroteAhead = true
	in := &state.Intent{Op: c.op, Generation: c.target, Previous: prev, New: c.gen != nil, Planned: c.plan.Generation}
	if err := e.store.WriteIntent(ns, in); err != nil {
		return fmt.Errorf("recording the change under way: %w", err)
	}
	current, err := e.store.PrepareCurrent(c.target)
	if err != nil {
		return err
	}
	c.current = current
	if c.gen != nil {
		if err := c.gen.Place(); err != nil {
			return fmt.Errorf("recording generation: %w", err)
		}
	}
	if c.req.Trial == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return ErrCancelled
	}
	return e.arm(ctx, ns, c, prev)
}

// send commits the change's plan and verifies that the kernel holds it,
// planning again (and with the whole table, for an incremental change)
// when another writer got in between — except for a saved plan, which is
// applied as saved or not at all.
func (e *Engine) send(ctx context.Context, c *change) (*planner.Plan, uint32, string, error) {
	if e.o.BeforeCommit != nil {
		e.o.BeforeCommit(ctx)
	}
	if c.desired == nil {
		after, err := removeTable(ctx, e.o.Kernel, c.plan.Generation)
		return c.plan, after, "by reading back", err
	}
	p := c.plan
	for attempt := 1; ; attempt++ {
		after, err := e.o.Kernel.Apply(ctx, p)
		if errors.Is(err, planner.ErrStale) && c.req.Saved == nil && attempt < maxApplyAttempts {
			if p, err = e.replan(ctx, c); err != nil {
				return nil, 0, "", err
			}
			continue
		}
		if errors.Is(err, planner.ErrStale) && c.req.Saved != nil {
			return nil, 0, "", &StalePlanError{Reason: "the kernel's ruleset changed while it was being applied; plan again"}
		}
		if err != nil {
			return nil, 0, "", err
		}
		return e.verifyCommit(ctx, c, p, after)
	}
}

// replan plans the change again against the kernel as it is now: with the
// whole configuration, for an incremental change (its sets alone cannot
// be planned against a table that may have changed in any way).
func (e *Engine) replan(ctx context.Context, c *change) (*planner.Plan, error) {
	if c.incremental {
		l, err := e.load()
		if err != nil {
			return nil, err
		}
		c.desired, c.incremental = l.Table, false
	}
	p, err := PlanTable(ctx, e.kernel, c.desired)
	if err == nil {
		c.plan = p
	}
	return p, err
}

// verifyCommit makes sure the kernel, at generation after once p was
// committed, holds the change: by the generation alone when nobody else
// committed in between; by reading back otherwise, and, for an engine
// that keeps its reads (the agent), after every change of rules (the read
// is its next plan's base: a rule's handle is the kernel's to give).
func (e *Engine) verifyCommit(ctx context.Context, c *change, p *planner.Plan, after uint32) (*planner.Plan, uint32, string, error) {
	// Others' transactions after ours that left the table alone (a busy
	// host) do not call for a read either.
	byGen := (after == committed(p) || e.untouched(committed(p), after)) && (e.cache == nil || p.ElementsOnly())
	if byGen {
		if e.cache != nil && !p.Empty() {
			e.cache.keepApplied(p, after)
		}
		return p, after, "by generation", nil
	}
	if c.incremental { // sets only: the kernel's chains are whatever they were; read the whole
		l, err := e.load()
		if err != nil {
			return nil, 0, "", err
		}
		c.desired, c.incremental = l.Table, false
	}
	gen, err := Verify(ctx, e.kernel, c.desired)
	return p, gen, "by reading back", err
}

// inPlace reports whether the change is a repair to the current
// generation, prev: nothing about it need be recorded.
func (c *change) inPlace(prev int) bool {
	return c.op == "repair" && c.gen == nil && c.target == prev && prev > 0 && c.req.Trial == 0
}

// undo takes back what writeAhead did for a change that did not reach the
// kernel.
func (e *Engine) undo(ns state.Namespace, c *change) {
	if !c.wroteAhead {
		return
	}
	c.current.Abort()
	if c.armed != nil {
		if err := e.trials(ns).End(c.armed, state.NotApplied, "the change never reached the kernel"); err != nil {
			e.notice("ending the trial: %v", err)
		}
	}
	if c.records != nil {
		c.records.discard()
	}
	if err := e.store.ClearIntent(ns); err != nil {
		e.notice("clearing the change under way (the next command settles it): %v", err)
	}
}

// settle records the outcome of a committed change: its generation
// current, the intent gone, the verified record written.
func (e *Engine) settle(ns state.Namespace, c *change, prev int, applied *planner.Plan, after uint32, verified string) (*ApplyResult, error) {
	res := &ApplyResult{Plan: applied, Generation: c.target, Recorded: c.gen != nil, Trial: c.armed, Verified: verified,
		Rules: c.rules, Warnings: c.warnings}
	if c.wroteAhead { // a repair in place has nothing to put in force
		keep := []int{prev}
		if c.armed != nil {
			keep = append(keep, c.armed.Previous)
		}
		if err := c.current.Commit(keep...); err != nil {
			c.current.Abort()
			c.verified().discard()
			err = fmt.Errorf("applied: the kernel holds generation %d, but recording it as current failed (the next hostwall command records it): %w", c.target, err)
			if c.armed != nil {
				err = fmt.Errorf("%w; it is on TRIAL until %s, and its guard (pid %d) restores generation %d unless you confirm it",
					err, c.armed.Deadline.Format("15:04:05"), c.armed.GuardPID, c.armed.Previous)
			}
			return res, err
		}
		if err := e.store.ClearIntent(ns); err != nil {
			e.notice("clearing the change under way (the next command clears it): %v", err)
		}
	}
	e.saveRecord(ns, c.verified(), after)
	e.remember(c, prev)
	return res, nil
}

// desiredTable is what a long-running engine (Options.Memo) keeps of the
// generation it made current last: its compiled table, which a drift
// repair would otherwise load and compile again (hundreds of milliseconds
// for a large configuration). A generation's files never change, so its
// number names its table.
type desiredTable struct {
	n     int
	host  string
	table *ruleset.Table
}

// remember keeps the whole desired table of a change that made c.target
// current, for Repair; prev was current before. An incremental change
// holds the sets alone, its chains those of prev's table: when this engine
// kept that, the two make the whole (without it, Repair compiled the
// generation's files again after every change of a nets file: at a
// million networks, a periodic verification took 11 s and 312 MB).
func (e *Engine) remember(c *change, prev int) {
	switch {
	case !e.o.Memo || c.desired == nil || c.target == 0:
		e.desired = nil
	case !c.incremental:
		e.desired = &desiredTable{n: c.target, host: c.host, table: c.desired}
	case e.desired != nil && e.desired.n == prev:
		t := *e.desired.table
		t.Sets = c.desired.Sets
		e.desired = &desiredTable{n: c.target, host: e.desired.host, table: &t}
	default:
		e.desired = nil
	}
}

// recordUnchanged ends a change that needs no kernel change: the record
// says what the kernel holds, and a generation is recorded when the
// current one does not hold these files and this ruleset.
func (e *Engine) recordUnchanged(ns state.Namespace, c *change) (*ApplyResult, error) {
	if c.op != "apply" { // a rollback or repair to what the kernel holds
		if err := e.store.MakeCurrent(c.target); err != nil {
			return nil, err
		}
		e.remember(c, 0)
		return &ApplyResult{Generation: c.target, Rules: c.rules, Warnings: c.warnings}, nil
	}
	gen, err := c.records.generation()
	if err != nil {
		c.records.discard()
		return nil, err
	}
	e.saveRecord(ns, c.verified(), c.plan.Generation)
	cur, err := e.store.CurrentMeta()
	if err != nil && !isDamaged(err) {
		gen.Abort()
		return nil, err
	}
	if cur != nil && cur.RulesetHash == gen.Generation().RulesetHash && sourcesHash(cur) == sourcesHash(gen.Generation()) {
		gen.Abort()
		return &ApplyResult{Generation: cur.Number, Rules: c.rules, Warnings: c.warnings}, nil
	}
	c.gen = gen
	c.gen.Generation().Reason += " (no kernel change)"
	if err := c.gen.Place(); err != nil {
		c.gen.Abort()
		return nil, fmt.Errorf("recording generation: %w", err)
	}
	n := c.gen.Generation().Number
	if err := e.store.MakeCurrent(n); err != nil {
		return nil, fmt.Errorf("recording generation %d as current: %w", n, err)
	}
	return &ApplyResult{Generation: n, Recorded: true, Rules: c.rules, Warnings: c.warnings}, nil
}

func isDamaged(err error) bool {
	var d *state.DamagedError
	return errors.As(err, &d)
}
