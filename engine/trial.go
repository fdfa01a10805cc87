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
	if err := trials.Write(t); err != nil {
		e.notice("recording the guard's pid %d (the trial stands): %v", pid, err)
	}
	return nil
}

// Guard holds the timer of the namespace's pending trial: it compiles the
// generation the trial would return to, calls armed, and waits for the
// deadline; unless the trial was confirmed (or ended otherwise) by then,
// it restores that generation. A trial interrupted by a reboot (or whose
// namespace was made again) is rolled back at once. It returns how the
// trial ended; nil when none was pending.
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
		return e.expire(context.WithoutCancel(ctx), t, restore, "")
	}
	ended, stop, err := e.watchTrial(ns, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	armed(t)
	timer := time.NewTimer(time.Until(t.Deadline))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ended:
		return e.lastOutcome(ns)
	case <-timer.C:
	}
	return e.expire(context.WithoutCancel(ctx), t, restore, "")
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
	if err != nil || t == nil || (time.Now().Before(t.Deadline) && !t.Rebooted) {
		return nil, err
	}
	restore, err := e.restoreTable(t)
	if err != nil {
		return nil, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	return e.expire(ctx, t, restore, by)
}

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

// expire rolls trial t back to restore (by: who, for the record), under
// the lock, unless it ended meanwhile; it returns how the trial ended.
func (e *Engine) expire(ctx context.Context, t *state.Trial, restore *ruleset.Table, by string) (*state.Outcome, error) {
	var out *state.Outcome
	err := e.locked(func(ns state.Namespace) error {
		now, err := e.trials(ns).Read()
		if err != nil {
			return err
		}
		if now == nil || now.Generation != t.Generation || !now.Deadline.Equal(t.Deadline) {
			out, err = e.trials(ns).LastOutcome()
			return err
		}
		if err := e.restore(ctx, ns, now, restore); err != nil {
			return fmt.Errorf("rolling back the trial of generation %d: %w", now.Generation, err)
		}
		if err := e.trials(ns).End(now, state.RolledBack, expiredDetail(now, by)); err != nil {
			return err
		}
		out, err = e.trials(ns).LastOutcome()
		return err
	})
	return out, err
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

// restore makes the kernel hold restore (nil: no table) again, as the
// generation the trial t returns to; the caller holds the lock.
func (e *Engine) restore(ctx context.Context, ns state.Namespace, t *state.Trial, restore *ruleset.Table) error {
	p, err := PlanTable(ctx, e.kernel, restore)
	if err != nil {
		return err
	}
	if p.Empty() {
		return e.store.MakeCurrent(t.Previous)
	}
	c := &change{req: ApplyRequest{Explicit: true, Force: true}, op: "rollback", desired: restore, target: t.Previous,
		plan: p}
	_, err = e.commit(ctx, ns, c)
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
	ended, stop, err := e.watchTrial(ns, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ended:
		return e.lastOutcome(ns)
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
func (e *Engine) watchTrial(ns state.Namespace, t *state.Trial) (<-chan struct{}, func(), error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(ns.Dir); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("watching %s: %w", ns.Dir, err)
	}
	ended, done := make(chan struct{}), make(chan struct{})
	pending := func() bool { // ended (confirmed, rolled back) removes it from both places
		now, err := e.trials(ns).Read()
		return err != nil || now != nil && now.Generation == t.Generation && now.Deadline.Equal(t.Deadline)
	}
	go func() {
		defer close(ended)
		for pending() {
			select {
			case <-done:
				return
			case <-w.Events:
			case <-w.Errors:
			}
		}
	}()
	return ended, func() { close(done); w.Close() }, nil
}
