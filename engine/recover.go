package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// Settle settles what a writer that died left behind (recover), when the
// namespace's lock is free at once; a hostwall at work is left alone —
// unless a trial is due to roll back: then whoever holds the lock is most
// likely rolling it back, and its outcome is waited for (settleWait). It
// makes status and the default rollback target tell the truth after a
// death, before the next change.
func (e *Engine) Settle() error {
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	h := state.NewHolder(e.o.RunDir)
	lock, err := ns.Lock(0, h)
	if err != nil {
		if t, _ := e.readTrial(ns); t == nil || !expired(t) {
			return nil // busy: whoever holds the lock settles it
		}
		if lock, err = ns.Lock(settleWait, h); err != nil {
			return nil
		}
	}
	defer lock.Release()
	return e.recover(ns)
}

// settleWait is how long Settle waits for a trial's rollback under way.
const settleWait = 10 * time.Second

// recover settles what a writer that died left behind; the caller holds
// the namespace's lock, so no writer is at work. Temporary files of dead
// writers go. An intent left behind is settled (settleIntent), and a trial
// past its deadline is rolled back: whoever holds the lock next finishes
// what a dead guard, or a full state directory, left undone. A rollback
// that fails is reported, and stops nothing: the trial stays pending (and
// holds back changes of the files), and hostwall rollback ends it.
func (e *Engine) recover(ns state.Namespace) error {
	e.store.Clean()
	e.run.Clean()
	ns.Clean()
	// A trial due to roll back is rolled back even when the intent cannot
	// be settled: a record that does not read must not keep a change in
	// force past its deadline.
	intentErr := e.settleIntent(ns)
	if err := e.settleExpiredTrial(ns); err != nil {
		e.notice("%v", err)
	}
	return intentErr
}

// settleIntent settles an intent (commit.go): a change was on its way to
// the kernel when its process died. Which generation is current then
// follows from what the kernel holds (intentHeld).
func (e *Engine) settleIntent(ns state.Namespace) error {
	in, err := e.store.ReadIntent(ns)
	if err != nil {
		return fmt.Errorf("the record of a change under way does not read (%w); once plan --refresh shows what the kernel holds, remove it (rm -r %s), and run the command again", err, e.store.IntentPath(ns))
	}
	if in == nil {
		return nil
	}
	if in.Op == "" {
		e.notice("the record of a change under way does not read; it is removed, and the kernel's state is what plan shows")
		return e.store.ClearIntent(ns)
	}
	held, sure, err := e.intentHeld(in, ns)
	if err != nil {
		return fmt.Errorf("settling the change of pid %d (%s to generation %d, %s) that was interrupted: %w",
			in.PID, in.Op, in.Generation, in.Time.Format("2006-01-02 15:04:05"), err)
	}
	switch {
	case held:
		err = e.store.MakeCurrent(in.Generation, in.Previous)
	case sure:
		err = e.undoIntent(ns, in)
	}
	if err != nil {
		return err
	}
	// "Reached", not "holds": a trial's change that went in may have been
	// rolled back since (its rollback is settled next).
	outcome := fmt.Sprintf("it never reached the kernel; generation %d stays current", in.Previous)
	switch {
	case held && sure:
		outcome = fmt.Sprintf("it reached the kernel; generation %d is current", in.Generation)
	case held:
		outcome = fmt.Sprintf("the kernel is closer to generation %d, which is made current (another program changed the table meanwhile: plan --refresh shows how)", in.Generation)
	case !sure:
		outcome = fmt.Sprintf("the kernel is closer to generation %d, which stays current (another program changed the table meanwhile: plan --refresh shows how)", in.Previous)
	}
	e.notice("settled a change interrupted before it was recorded (pid %d, %s to generation %d): %s", in.PID, in.Op, in.Generation, outcome)
	return e.store.ClearIntent(ns)
}

// settleExpiredTrial rolls back a trial past its deadline (or interrupted
// by a reboot, or whose record does not read) that its guard has not.
func (e *Engine) settleExpiredTrial(ns state.Namespace) error {
	t, err := e.readTrial(ns)
	if err != nil || t == nil || !expired(t) {
		return err
	}
	to, err := e.rollbackPoint(t)
	var o *state.Outcome
	if err == nil {
		o, _, err = e.expireLocked(context.Background(), ns, t, to, nil, "hostwall")
	}
	if err != nil {
		return fmt.Errorf("the trial of generation %d is due to roll back, and could not be: %w", t.Generation, err)
	}
	e.notice("the trial of generation %d was rolled back: %s", t.Generation, o.Detail)
	return nil
}

// undoIntent takes back the records of a change that never reached the
// kernel: its new generation, and its trial.
func (e *Engine) undoIntent(ns state.Namespace, in *state.Intent) error {
	if in.New && in.Generation > 0 {
		if err := e.store.Remove(in.Generation); err != nil {
			return err
		}
	}
	// A change during a trial is refused: a trial pending is this
	// change's, also when its record does not read.
	t, err := e.readTrial(ns)
	if err != nil || t == nil || t.Unreadable == "" && (t.Generation != in.Generation || t.Previous != in.Previous) {
		return err
	}
	return e.trials(ns).End(t, state.NotApplied, "the change was interrupted before it reached the kernel")
}

// intentHeld reports whether the kernel holds the generation intent in
// applied (held), and whether that is certain (sure); what is not certain
// keeps the records (the generation, a trial, whose guard restores the
// previous generation in any case).
//
//   - The namespace it was applied to is gone, or the kernel's generation
//     is still the one planned at: nothing went in (sure).
//   - The generation is current (only the intent's removal was lost), or a
//     trial of it records that the change went in: held.
//   - Else the kernel is compared with the generation, and with the one
//     before: whichever it holds exactly; when neither (another program
//     changed the table since), whichever it is closer to, not sure.
func (e *Engine) intentHeld(in *state.Intent, ns state.Namespace) (held, sure bool, err error) {
	if in.Cookie != ns.Cookie {
		return false, true, nil
	}
	if e.o.Kernel == nil {
		return false, false, errors.New("no kernel to look at")
	}
	gen, err := e.o.Kernel.Generation()
	if err != nil {
		return false, false, err
	}
	if gen == in.Planned || in.Generation > 0 && !e.store.Has(in.Generation) {
		return false, true, nil
	}
	if cur, err := e.store.Current(); err == nil && cur == in.Generation {
		return true, true, nil
	}
	if t, err := e.trials(ns).Read(); err == nil && t != nil && t.Generation == in.Generation && t.Previous == in.Previous && t.Committed != 0 {
		return true, true, nil
	}
	now, err := e.distance(in.Generation)
	if err != nil || now == 0 {
		return err == nil, err == nil, err
	}
	before, err := e.distance(in.Previous)
	if err != nil || before == 0 {
		return false, err == nil, err
	}
	return now <= before, false, nil
}

// distance is how many changes a plan would make for the kernel to hold
// generation n (0: no table): 0 when it holds it exactly. A generation that
// cannot be compiled is as far as can be.
func (e *Engine) distance(n int) (int, error) {
	var tbl *ruleset.Table
	if n > 0 {
		var err error
		if _, tbl, err = e.generationTable(e.store, n, true); err != nil {
			e.notice("generation %d of an interrupted change cannot be compiled: %v", n, err)
			return math.MaxInt, nil
		}
	}
	p, err := PlanTable(context.Background(), e.o.Kernel, tbl)
	if err != nil {
		return 0, err
	}
	add, change, destroy := p.Summary()
	return add + change + destroy, nil
}
