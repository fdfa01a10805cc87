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
	"os"
	"path/filepath"
	"strconv"
	"syscall"
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
// rollback, and in the last moments before the deadline plans again
// whenever the kernel has moved since, so that at the deadline only the
// commit is left. A trial interrupted by a reboot (or whose namespace was
// made again), or whose record does not read, is rolled back at once, and
// so is the trial when ctx ends (the guard told to stop: a trial must not
// be left unguarded). It returns how the trial ended; nil when none was
// pending.
func (e *Engine) Guard(ctx context.Context, armed func(*state.Trial)) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	t, err := e.readTrial(ns)
	if err != nil || t == nil {
		return nil, err
	}
	to, err := e.rollbackPoint(t)
	if err != nil {
		return nil, fmt.Errorf("the trial of generation %d cannot be guarded: %w", t.Generation, err)
	}
	if t.Rebooted || t.Unreadable != "" {
		armed(t)
		o, _, err := e.expire(context.WithoutCancel(ctx), t, to, nil, "")
		return o, err
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
	// plan reads the kernel and plans the rollback when the table may
	// have changed since the last plan (not when only other tables did):
	// reading a large table back takes long.
	plan := func() {
		if planned == nil || !e.tableAsAt(planned.Generation) {
			planned, _ = PlanTable(ctx, e.kernel, to.table)
		}
	}
	var poll <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			o, _, err := e.expire(context.WithoutCancel(ctx), t, to, planned, "the guard, told to stop")
			return o, err
		case now, pending := <-updates:
			if !pending {
				return e.lastOutcome(ns)
			}
			if now.Committed != 0 { // the change is in: its rollback can be planned now
				plan()
			}
		case <-lead.C:
			plan()
			tick := time.NewTicker(leadPoll)
			defer tick.Stop()
			poll = tick.C
		case <-poll:
			plan()
		case <-deadline.C:
			// On a busy host a large rollback can race other programs'
			// transactions more than once: the guard keeps at it, for a
			// trial left in force is a lockout (found by a review: with
			// another table changed 50 times a second, both large trials'
			// guards gave up).
			for attempt := 1; ; attempt++ {
				o, _, err := e.expire(context.WithoutCancel(ctx), t, to, planned, "")
				if !errors.Is(err, planner.ErrStale) || attempt == maxRollbackAttempts {
					return o, err
				}
				planned = nil
			}
		}
	}
}

// rollbackLead is how long before a trial's deadline its guard plans the
// rollback: reading a large table back takes about a second. leadPoll is
// how often it then looks whether the kernel moved since.
func rollbackLead(t *state.Trial) time.Duration {
	return min(3*time.Second, time.Until(t.Deadline)/2)
}

const leadPoll = 100 * time.Millisecond

// maxRollbackAttempts bounds how often a guard tries a trial's rollback
// that other writers made stale (each plans it again from a read).
const maxRollbackAttempts = 20

// SettleTrial rolls back the namespace's pending trial when its deadline
// has passed, a reboot interrupted it or its record does not read (the
// agent's part in guarding it; by names who does). It returns the outcome
// of the rollback it made: nil when there was nothing to do, or when
// another (the trial's guard) ended the trial first.
func (e *Engine) SettleTrial(ctx context.Context, by string) (*state.Outcome, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	t, err := e.readTrial(ns)
	if err != nil || t == nil || !expired(t) {
		return nil, err
	}
	to, err := e.rollbackPoint(t)
	if err != nil {
		return nil, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	o, acted, err := e.expire(ctx, t, to, nil, by)
	if !acted {
		o = nil
	}
	return o, err
}

// overdue says that trial t is due to roll back and has not been, and what
// rolls it back.
func overdue(t *state.Trial) string {
	why := fmt.Sprintf("was due to roll back at %s", t.Deadline.Format(time.DateTime))
	switch {
	case t.Unreadable != "":
		why = "is pending, but " + t.Unreadable
	case t.Rebooted:
		why = "was interrupted by a reboot"
	}
	switch {
	case GuardRunning(t.GuardPID):
		return fmt.Sprintf("the trial of generation %d %s, and its guard (pid %d) is rolling it back", t.Generation, why, t.GuardPID)
	case t.Unreadable != "":
		return fmt.Sprintf("the trial of generation %d %s, and is to be rolled back: hostwall status, hostwall guard or the next change rolls it back", t.Generation, why)
	}
	return fmt.Sprintf("the trial of generation %d %s, and has not been rolled back (its guard is gone): hostwall status, hostwall guard or the next change rolls it back", t.Generation, why)
}

// GuardRunning reports whether the process pid (a trial's guard) runs.
func GuardRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && len(cmdline) > 0 && syscall.Kill(pid, 0) == nil
}

// expired reports whether trial t is to be rolled back now.
func expired(t *state.Trial) bool {
	return t.Rebooted || t.Unreadable != "" || !time.Now().Before(t.Deadline)
}

// Trial returns the namespace's pending trial, nil when none.
func (e *Engine) Trial() (*state.Trial, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	return e.readTrial(ns)
}

// readTrial returns the namespace's pending trial, nil when none. When no
// copy of its record reads, a trial is pending but which is not known: a
// trial of the current generation, already due, stands in for it (its
// Unreadable says why), to be rolled back to the generation before — a
// pending trial was never confirmed, and ending it beats keeping what may
// lock the operator out.
func (e *Engine) readTrial(ns state.Namespace) (*state.Trial, error) {
	t, err := e.trials(ns).Read()
	var damaged *state.DamagedTrialError
	if !errors.As(err, &damaged) {
		return t, err
	}
	cur, cerr := e.store.Current()
	if cerr != nil {
		return nil, fmt.Errorf("%w, and the current generation is not known: %v", err, cerr)
	}
	prev := 0 // no current generation: the newest may be the trial's own
	if cur > 0 {
		if p, perr := e.previousOf(e.store, cur); perr == nil {
			prev = p
		}
	}
	return &state.Trial{Generation: cur, Previous: prev, StateDir: e.store.Dir, Cookie: ns.Cookie, Unreadable: damaged.Error()}, nil
}

// rollbackPoint is what a trial's rollback restores: generation gen (0:
// none, the table removed), compiled; instead says why it is not the
// trial's own previous generation.
type rollbackPoint struct {
	gen     int
	table   *ruleset.Table
	instead string
}

// storeFor is the state directory trial t was applied with: the numbers
// of its generations are that directory's.
func (e *Engine) storeFor(t *state.Trial) *state.Store {
	if t.StateDir == "" || filepath.Clean(t.StateDir) == filepath.Clean(e.store.Dir) {
		return e.store
	}
	return &state.Store{Dir: t.StateDir}
}

// rollbackPoint compiles the generation trial t returns to; one that
// compiles differently with this hostwall is taken as it compiles now.
// When that generation is damaged, or no longer compiles, the newest other
// generation that does (not the trial's own) takes its place, and when
// there is none the table is removed: ending the trial beats keeping what
// may lock the operator out. Only a state directory that cannot be read
// at all is an error.
func (e *Engine) rollbackPoint(t *state.Trial) (rollbackPoint, error) {
	if t.Previous == 0 {
		return rollbackPoint{}, nil
	}
	store := e.storeFor(t)
	_, tbl, err := e.generationTable(store, t.Previous, true)
	if err == nil {
		return rollbackPoint{gen: t.Previous, table: tbl}, nil
	}
	nums, lerr := store.Numbers()
	if lerr != nil {
		return rollbackPoint{}, fmt.Errorf("generation %d cannot be restored (%w), and no other can be found: %v", t.Previous, err, lerr)
	}
	for i := len(nums) - 1; i >= 0; i-- {
		if n := nums[i]; n != t.Previous && n != t.Generation {
			if _, tbl, nerr := e.generationTable(store, n, true); nerr == nil {
				rp := rollbackPoint{gen: n, table: tbl, instead: fmt.Sprintf("generation %d cannot be restored (%v); generation %d, the newest that can, is restored instead", t.Previous, err, n)}
				e.notice("the trial of generation %d: %s", t.Generation, rp.instead)
				return rp, nil
			}
		}
	}
	rp := rollbackPoint{instead: fmt.Sprintf("generation %d cannot be restored (%v), nor can any other: table inet hostwall is removed — this host has no hostwall firewall until the next apply", t.Previous, err)}
	e.notice("the trial of generation %d: %s", t.Generation, rp.instead)
	return rp, nil
}

// expire rolls trial t back to to (planned, when not nil, is its plan
// made ahead; by says who, for the record) under the lock, unless the
// trial ended meanwhile; it returns how the trial ended, and whether this
// call ended it. A change a dead writer left is settled first, but a
// failure to settle it does not stop the rollback.
func (e *Engine) expire(ctx context.Context, t *state.Trial, to rollbackPoint, planned *planner.Plan, by string) (*state.Outcome, bool, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, false, err
	}
	lock, err := ns.Lock(e.o.LockTimeout, state.NewHolder(e.o.RunDir))
	if err != nil {
		return nil, false, err
	}
	defer lock.Release()
	if err := e.settleIntent(ns); err != nil {
		e.notice("%v; rolling the trial of generation %d back all the same", err, t.Generation)
	}
	return e.expireLocked(ctx, ns, t, to, planned, by)
}

// expireLocked is expire, the lock held. A trial record that does not
// read is no confirmation: t, as its guard read it, is rolled back. A
// trial whose end was moved meanwhile (a rollback to another generation
// during the trial, interrupted) goes to where its record says.
func (e *Engine) expireLocked(ctx context.Context, ns state.Namespace, t *state.Trial, to rollbackPoint, planned *planner.Plan, by string) (*state.Outcome, bool, error) {
	trials := e.trials(ns)
	now, err := trials.Read()
	switch {
	case err != nil:
		if t.Unreadable == "" {
			e.notice("the trial's record does not read (%v); rolling back generation %d's trial as its guard knew it", err, t.Generation)
		}
	case now == nil || now.Generation != t.Generation || !now.Deadline.Equal(t.Deadline):
		o, err := trials.LastOutcome()
		return o, false, err
	default:
		if now.Previous != t.Previous {
			if to, err = e.rollbackPoint(now); err != nil {
				return nil, false, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
			}
			planned = nil
		}
		now.Unreadable = t.Unreadable // a record made anew for one that did not read
		t = now
	}
	if err := e.restore(ctx, to.table, planned); err != nil {
		return nil, false, fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	o := &state.Outcome{Generation: t.Generation, Result: state.RolledBack, Previous: to.gen, Time: time.Now(), Deadline: t.Deadline,
		Detail: expiredDetail(t, to, by)}
	// The kernel holds the previous generation again. The trial's record
	// is the intent of its rollback: it ends only once that generation is
	// current, and a later holder of the lock finishes what cannot be
	// recorded now (a full or read-only state directory).
	if err := e.storeFor(t).MakeCurrent(to.gen, to.gen); err != nil {
		return o, true, fmt.Errorf("the kernel holds generation %d again, but recording it as current failed (the trial stays pending until that can be recorded): %w", to.gen, err)
	}
	if err := trials.End(t, state.RolledBack, o.Detail); err != nil {
		return o, true, fmt.Errorf("the kernel holds generation %d again, but ending the trial's record failed: %w", to.gen, err)
	}
	return o, true, nil
}

// expiredDetail says, for the record, why trial t ended and what was
// restored (by whom, when by is not empty).
func expiredDetail(t *state.Trial, to rollbackPoint, by string) string {
	restored := fmt.Sprintf("generation %d restored", to.gen)
	switch {
	case to.instead != "":
		restored = to.instead
	case to.gen == 0 && t.Unreadable != "":
		restored = "table inet hostwall removed (no generation before it to restore)"
	case to.gen == 0:
		restored = "table inet hostwall removed (there was none before)"
	}
	if by != "" {
		restored += " by " + by
	}
	switch {
	case t.Unreadable != "":
		return t.Unreadable + "; " + restored
	case t.Rebooted:
		return "the machine rebooted during the trial (or its namespace was made again); " + restored
	case time.Now().Before(t.Deadline):
		return "rolled back before its deadline; " + restored
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
	// A plan made ahead still goes when only other tables changed since
	// (a busy host); ApplyTable plans again when the kernel refuses it.
	if p == nil || !e.tableAsAt(p.Generation) {
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
