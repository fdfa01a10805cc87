package engine

// Trials. A change applied on trial is rolled back at its deadline unless
// confirmed. The trial is written, and its guard armed, before the change
// reaches the kernel (commit.go); the guard — a process of its own that
// outlives the operator's session, started by the front door through
// ApplyRequest.Arm — compiles the previous generation when it starts and
// says it is armed only then, so the rollback needs nothing that could
// fail later. The agent watches the same trial and rolls it back too if
// the guard is gone; both take the namespace's lock and read the trial
// again under it, so exactly one acts.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// arm records the change's trial and has the front door start its guard;
// the caller holds the namespace's lock.
func (e *Engine) arm(ctx context.Context, ns state.Namespace, c *change, prev int) error {
	t := &state.Trial{Generation: c.target, Previous: prev, Deadline: time.Now().Add(c.req.Trial),
		NetNS: e.o.NetNS, StateDir: e.o.StateDir, RunDir: e.o.RunDir, HostName: c.host}
	trials := e.trials(ns)
	if err := trials.Write(t); err != nil {
		return err
	}
	pid, err := c.req.Arm(ctx, t)
	if err == nil && pid <= 0 {
		err = fmt.Errorf("it reported pid %d", pid)
	}
	if err != nil {
		if err := trials.End(t, state.NotApplied, "its guard did not start"); err != nil {
			e.notice("ending the trial: %v", err)
		}
		return fmt.Errorf("starting the trial's guard (nothing was changed): %w", err)
	}
	c.armed = t
	t.GuardPID = pid
	if err := trials.Update(t); err != nil {
		e.notice("recording the guard's pid %d (the trial stands): %v", pid, err)
	}
	return nil
}

// Guard holds the timer of the namespace's pending trial: it compiles the
// generation the trial would return to, calls armed, and waits for the
// deadline; unless the trial was confirmed (or ended otherwise) by then,
// it restores that generation. As soon as the change is in the kernel (or
// a little before the deadline) it reads the kernel and plans the
// rollback, so that at the deadline only the commit is left. A trial interrupted by a reboot (or whose namespace was made
// again) is rolled back at once, and so is the trial when ctx ends (the
// guard told to stop: a trial must not be left unguarded). It returns how
// the trial ended; nil when none was pending.
func (e *Engine) Guard(ctx context.Context, armed func(*state.Trial)) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	t, err := e.trials(ns).Read()
	if err != nil || t == nil {
		return nil, err
	}
	restore, err := e.restoreTable(t)
	if err != nil {
		return nil, fmt.Errorf("the trial of generation %d cannot be guarded: %w", t.Generation, err)
	}
	if t.Rebooted {
		armed(t)
		return e.expire(context.WithoutCancel(ctx), t, restore, nil, "")
	}
	updates, stop, err := e.watchTrial(ns, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	armed(t)
	lead, deadline := time.NewTimer(time.Until(t.Deadline.Add(-rollbackLead(t)))), time.NewTimer(time.Until(t.Deadline))
	defer lead.Stop()
	defer deadline.Stop()
	var planned *planner.Plan
	plan := func() { // reading a large table back takes long: done ahead of the deadline
		if planned == nil {
			planned, _ = PlanTable(ctx, e.kernel, restore)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return e.expire(context.WithoutCancel(ctx), t, restore, planned, "the guard, told to stop")
		case now, pending := <-updates:
			if !pending {
				return e.lastOutcome(ns)
			}
			if now.Committed != 0 { // the change is in: its rollback can be planned now
				plan()
			}
		case <-lead.C:
			plan()
		case <-deadline.C:
			return e.expire(context.WithoutCancel(ctx), t, restore, planned, "")
		}
	}
}

// rollbackLead is how long before a trial's deadline its guard plans the
// rollback: reading a large table back takes about a second.
func rollbackLead(t *state.Trial) time.Duration {
	return min(3*time.Second, time.Until(t.Deadline)/2)
}

// SettleTrial rolls back the namespace's pending trial when its deadline
// has passed or a reboot interrupted it (the agent's part in guarding it,
// by names who does); nil when there was nothing to do.
func (e *Engine) SettleTrial(ctx context.Context, by string) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	t, err := e.trials(ns).Read()
	if err != nil || t == nil || !expired(t) {
		return nil, err
	}
	restore, err := e.restoreTable(t)
	if err != nil {
		return nil, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	return e.expire(ctx, t, restore, nil, by)
}

// expired reports whether trial t is to be rolled back now.
func expired(t *state.Trial) bool { return t.Rebooted || !time.Now().Before(t.Deadline) }

// Trial returns the namespace's pending trial, nil when none.
func (e *Engine) Trial() (*state.Trial, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	return e.trials(ns).Read()
}

// restoreTable compiles the generation trial t returns to (nil for none:
// the table is removed). A damaged generation is an error; one that
// compiles differently with this hostwall is taken as it compiles now:
// ending on the previous configuration beats staying locked out.
func (e *Engine) restoreTable(t *state.Trial) (*ruleset.Table, error) {
	if t.Previous == 0 {
		return nil, nil
	}
	_, tbl, err := e.generationTable(t.Previous, true)
	return tbl, err
}

// expire rolls trial t back to restore (planned, when not nil, is its plan
// made ahead; by says who, for the record) under the lock, unless the trial
// ended meanwhile; it returns how the trial ended. A change a dead writer
// left is settled first, but a failure to settle it does not stop the
// rollback.
func (e *Engine) expire(ctx context.Context, t *state.Trial, restore *ruleset.Table, planned *planner.Plan, by string) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	lock, err := ns.Lock(e.o.LockTimeout, state.NewHolder(e.o.RunDir))
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := e.settleIntent(ns); err != nil {
		e.notice("%v; rolling the trial of generation %d back all the same", err, t.Generation)
	}
	return e.expireLocked(ctx, ns, t, restore, planned, by)
}

// expireLocked is expire, the lock held. A trial record that does not
// read is no confirmation: t, as its guard read it, is rolled back.
func (e *Engine) expireLocked(ctx context.Context, ns state.Namespace, t *state.Trial, restore *ruleset.Table, planned *planner.Plan, by string) (*state.Outcome, error) {
	trials := e.trials(ns)
	now, err := trials.Read()
	switch {
	case err != nil:
		e.notice("the trial's record does not read (%v); rolling back generation %d's trial as its guard knew it", err, t.Generation)
	case now == nil || now.Generation != t.Generation || !now.Deadline.Equal(t.Deadline):
		return trials.LastOutcome()
	default:
		t = now
	}
	if err := e.restore(ctx, restore, planned); err != nil {
		return nil, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	o := &state.Outcome{Generation: t.Generation, Result: state.RolledBack, Previous: t.Previous, Time: time.Now(), Deadline: t.Deadline,
		Detail: expiredDetail(t, by)}
	// The kernel holds the previous generation again. The trial's record
	// is the intent of its rollback: it ends only once that generation is
	// current, and a later holder of the lock finishes what cannot be
	// recorded now (a full or read-only state directory).
	if err := e.store.MakeCurrent(t.Previous, t.Previous); err != nil {
		return o, fmt.Errorf("the kernel holds generation %d again, but recording it as current failed (the trial stays pending until that can be recorded): %w", t.Previous, err)
	}
	if err := trials.End(t, state.RolledBack, o.Detail); err != nil {
		return o, fmt.Errorf("the kernel holds generation %d again, but ending the trial's record failed: %w", t.Previous, err)
	}
	return o, nil
}

func expiredDetail(t *state.Trial, by string) string {
	restored := fmt.Sprintf("generation %d restored", t.Previous)
	if t.Previous == 0 {
		restored = "table inet hostwall removed (there was none before)"
	}
	if by != "" {
		restored += " by " + by
	}
	if t.Rebooted {
		return "the machine rebooted during the trial (or its namespace was made again); " + restored
	}
	return fmt.Sprintf("not confirmed by %s; %s", t.Deadline.Format(time.TimeOnly), restored)
}

// restore makes the kernel hold restore (nil: no table) again, with the
// plan made ahead when the kernel has not moved since, else planning now.
// It writes nothing to the state directory: a trial's rollback must not
// depend on a disk that may be full or read-only (its trial record is its
// intent).
func (e *Engine) restore(ctx context.Context, restore *ruleset.Table, planned *planner.Plan) error {
	p := planned
	if p == nil || !e.atGeneration(p.Generation) {
		var err error
		if p, err = PlanTable(ctx, e.kernel, restore); err != nil {
			return err
		}
	}
	if p.Empty() {
		return nil
	}
	if restore == nil {
		_, err := removeTable(ctx, e.o.Kernel, p.Generation)
		return err
	}
	_, _, err := ApplyTable(ctx, e.kernel, restore, p, ByGeneration)
	return err
}

// Confirm ends the namespace's pending trial, keeping its generation;
// detail says by whom. Its error is a *state.RolledBackError when the
// trial was rolled back, state.ErrNoTrial when none is pending. It waits
// for a guard or agent rolling back at that moment, whatever the lock
// timeout, so that the answer is the outcome.
func (e *Engine) Confirm(detail string) (*state.Trial, error) {
	var t *state.Trial
	err := e.lockedWaiting(time.Minute, func(ns state.Namespace) (err error) {
		t, err = e.trials(ns).Confirm(detail)
		var rb *state.RolledBackError
		if errors.As(err, &rb) {
			if cur, cerr := e.store.Current(); cerr == nil && cur != rb.Outcome.Previous {
				return state.ErrNoTrial // changed since the rollback: that trial is history
			}
		}
		return err
	})
	return t, err
}

// WaitTrial waits until the trial t is confirmed or ended and returns how
// it ended.
func (e *Engine) WaitTrial(ctx context.Context, t *state.Trial) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	updates, stop, err := e.watchTrial(ns, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case _, pending := <-updates:
			if !pending {
				return e.lastOutcome(ns)
			}
		}
	}
}

func (e *Engine) lastOutcome(ns state.Namespace) (*state.Outcome, error) {
	o, err := e.trials(ns).LastOutcome()
	if err == nil && o == nil {
		err = errors.New("the trial ended without an outcome recorded")
	}
	return o, err
}

// watchTrial returns a channel closed once trial t is no longer the
// namespace's pending trial, and a function that stops watching.
func (e *Engine) watchTrial(ns state.Namespace, t *state.Trial) (<-chan *state.Trial, func(), error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(ns.Dir); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("watching %s: %w", ns.Dir, err)
	}
	updates, done := make(chan *state.Trial, 1), make(chan struct{})
	// pending reads the trial: ending it (confirmed, rolled back) removes it
	// from both places; a record that does not read is no ending.
	pending := func() (*state.Trial, bool) {
		now, err := e.trials(ns).Read()
		if err != nil {
			return nil, true
		}
		return now, now != nil && now.Generation == t.Generation && now.Deadline.Equal(t.Deadline)
	}
	go func() {
		defer close(updates)
		for now, ok := pending(); ok; now, ok = pending() {
			if now != nil {
				select {
				case <-updates: // an older reading not taken yet: this one is newer
				default:
				}
				updates <- now
			}
			select {
			case <-done:
				return
			case <-w.Events:
			case <-w.Errors:
			}
		}
	}()
	return updates, func() { close(done); w.Close() }, nil
}
