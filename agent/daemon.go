package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/metrics"
	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/views"
)

// Notifier reports to the service manager (systemd.Notifier).
type Notifier interface {
	Ready()
	Reloading()
	Stopping()
	Status(string)
	Watchdog()
}

// Options configure the daemon.
type Options struct {
	// Engine is the host transaction the daemon drives (made with
	// engine.Options.Memo).
	Engine    *engine.Engine
	ConfigDir string
	// Debounce is how long the directory must stay quiet before a reload
	// (default 200ms).
	Debounce time.Duration
	// Resync is the period of the full verification backstop (default 5m).
	Resync time.Duration
	// Watchdog is the watchdog ping period; 0 for none.
	Watchdog time.Duration
	// Drift delivers other processes' changes to the table; nil for none.
	Drift  <-chan Drift
	Notify Notifier
	Log    *zap.Logger
	// Socket is the control socket's path; empty for none.
	Socket string
	// Settled, if set, runs after each piece of work, once its garbage is
	// collected (the command sets the collector's limits by it).
	Settled func()
	// Metrics, when set, are the agent's metrics, which it updates;
	// Gatherer, when set, answers "metrics" on the control socket.
	Metrics  *metrics.Agent
	Gatherer prometheus.Gatherer
	// Observe, if set, runs after each piece of work, with the index of
	// the generation in force (the command restarts the drop log's
	// listener when its group changes, and refreshes the metrics file).
	Observe func(*observe.Index)
	// Counters, when set, gives status its top drops, and with
	// SampleChanges samples the kernel's counters before and after each
	// change, so that what a rule the change replaces counted is kept
	// (set when metrics are exported: each sample reads the table's rules).
	Counters      Counters
	SampleChanges bool
	// DropLog, when set, says why the agent does not listen to the drop
	// log ("" when it does).
	DropLog func() string
	// Datastore, when set, is the etcd datastore the engine loads with
	// the files (engine.Options.Datastore): each change it reads is
	// applied. Reporter, when set, keeps this host's status key for
	// hostwall fleet status, as Node, running hostwall Version.
	Datastore *datastore.Follower
	Reporter  *datastore.Reporter
	Node      string
	Version   string
}

// Counters are the kernel's counters as the metrics keep them
// (metrics.Kernel).
type Counters interface {
	Sample(ctx context.Context) (*observe.Index, map[ruleset.Origin]observe.Count, error)
	TopDrops(ctx context.Context, n int) ([]observe.DropCount, time.Time, error)
}

// Drift is a change to the table by another process.
type Drift struct {
	// By names the process.
	By string
	// Certain is false when the change may have been to another table
	// (set and element events come without their table).
	Certain bool
}

// Drift checks wait this long for a burst of changes to end: a short
// while when the table was surely touched (a repair of set elements costs
// a few milliseconds, replayed from the kernel's events: a burst repaired
// twice is cheap), longer when events were lost and a whole read follows.
const (
	driftQuiet     = 20 * time.Millisecond
	uncertainQuiet = time.Second
)

// Failed applies (not invalid files: a full state directory, a kernel
// that refused) are tried again after retryFirst, doubling up to retryMax.
const (
	retryFirst = 10 * time.Second
	retryMax   = 5 * time.Minute
)

// Daemon is the agent: the engine driven by the configuration directory,
// signals, the drift monitor, the control socket and timers. Each event
// becomes one engine call; the daemon keeps only what status shows.
type Daemon struct {
	o Options
	e *engine.Engine
	// current and rules are the generation in force and its rule count,
	// as of the last apply (STATUS= shows them without reading the kernel).
	current, rules int
	lastErr        string
	repairs        int
	lastVerified   time.Time
	lastApply      *engine.ApplyRecord
	lastDrift      *engine.DriftRecord
	// retry is when a failed apply is tried again (zero: none pending);
	// backoff the wait after the next failure. trialRetry and trialBackoff
	// are the same for a trial's rollback that failed.
	retry, trialRetry time.Time
	// namesHeld is set while the names are not followed: the generation
	// in force is not the files' (a rollback); the next apply clears it.
	namesHeld             bool
	backoff, trialBackoff time.Duration
	// drops are the drop log's, as Dropped takes them; index is the
	// generation in force's, for Dropped to decode them by.
	drops *dropHub
	index atomic.Pointer[observe.Index]
	// sampled is set once the counters were first sampled.
	sampled bool
	// revision is the datastore revision last applied (atomic: the
	// metrics read it at a scrape); appliedGen the generation that apply
	// left in force.
	revision   atomic.Int64
	appliedGen int
}

// New returns a daemon.
func New(o Options) *Daemon {
	if o.Debounce == 0 {
		o.Debounce = 200 * time.Millisecond
	}
	if o.Resync == 0 {
		o.Resync = 5 * time.Minute
	}
	d := &Daemon{o: o, e: o.Engine, drops: newDropHub()}
	if f := o.Datastore; f != nil {
		d.revision.Store(f.State().Revision) // what the generation in force read, until an apply
		o.Metrics.FollowDatastore(func() metrics.DatastoreState {
			st := f.State()
			return metrics.DatastoreState{Applied: d.revision.Load(), Synced: st.Synced, Up: st.Err == nil && !st.Synced.IsZero(), Relists: st.Relists}
		})
	}
	return d
}

// Run runs until ctx ends. The ruleset stays in the kernel when it returns:
// a firewall must not vanish when its agent stops.
func (d *Daemon) Run(ctx context.Context) error {
	reg, err := d.e.RegisterAgent(d.o.Socket)
	if err != nil {
		return err
	}
	defer reg.Release()
	d.o.Notify.Status("starting")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d.start(ctx)
	w, err := newWatcher(d.o.ConfigDir, d.o.Log)
	if err != nil {
		return err
	}
	defer w.close()
	calls := make(chan call)
	if d.o.Socket != "" {
		ln, err := listenControl(d.o.Socket)
		if err != nil {
			return err
		}
		defer ln.Close()
		go d.serveControl(ctx, ln, calls)
	}
	d.o.Notify.Ready()
	d.done()
	return d.loop(ctx, w, hup, calls)
}

// start settles a trial that ended while no agent ran, then applies the
// files — or, when they do not load, makes sure the last good generation
// is in force.
func (d *Daemon) start(ctx context.Context) {
	d.settleTrial(ctx)
	d.awaitDatastore(ctx)
	err := d.reconcile(ctx, "start", false)
	var invalid *engine.InvalidError
	var unread *engine.DatastoreError
	if errors.As(err, &unread) {
		d.o.Log.Error("the etcd datastore was never read; keeping the last good generation in force until it is", zap.Error(err))
	} else if !errors.As(err, &invalid) {
		if err != nil {
			d.o.Log.Error("not applied; the running ruleset stays", zap.Error(err))
		}
		return
	}
	if invalid != nil {
		d.o.Log.Error("the configuration does not load; keeping the last good generation in force")
	}
	if _, err := d.e.Repair(ctx, true); err != nil {
		d.o.Log.Error("applying the last good generation", zap.Error(err))
	}
	if cur, err := d.e.Current(); err == nil {
		d.current = cur
	}
}

// timers are the daemon's: the debounce of file changes, the drift check,
// the periodic verification, the watchdog.
type timers struct {
	debounce, drift *time.Timer
	resync          *time.Ticker
	watchdog        <-chan time.Time
	// driftBy names who changed the table, driftDue when the check runs.
	driftBy  string
	driftDue time.Time
}

func (d *Daemon) loop(ctx context.Context, w *watcher, hup <-chan os.Signal, calls <-chan call) error {
	t := &timers{debounce: stopped(), drift: stopped(), resync: time.NewTicker(d.o.Resync)}
	defer t.resync.Stop()
	if d.o.Watchdog > 0 {
		tick := time.NewTicker(d.o.Watchdog)
		defer tick.Stop()
		t.watchdog = tick.C
	}
	var dsChanges <-chan struct{}
	if d.o.Datastore != nil {
		dsChanges = d.o.Datastore.Changes()
	}
	dsTimer := stopped()
	// The status key follows what the CLI changes too (a rollback to a
	// ruleset the kernel already holds sends the agent no event): checked
	// every few seconds, written only when it changed.
	var reportTick <-chan time.Time
	if d.o.Reporter != nil {
		tick := time.NewTicker(reportEvery)
		defer tick.Stop()
		reportTick = tick.C
	}
	for {
		trialTimer, retryTimer, namesTimer := d.trialTimer(), d.retryTimer(), d.namesTimer()
		select {
		case <-ctx.Done():
			d.o.Notify.Stopping()
			d.o.Log.Info("stopping; the ruleset stays in the kernel")
			return nil
		case at := <-w.changes:
			// The quiet time counts from the change, not from when this
			// loop got to it (it may have been finishing the work before).
			t.debounce.Reset(max(0, d.o.Debounce-time.Since(at)))
		case <-dsChanges:
			dsTimer.Reset(datastoreQuiet)
		case <-reportTick:
			d.report()
		case <-dsTimer.C:
			d.apply(ctx, t, datastoreChanged, false)
			d.done()
		case c := <-d.o.Drift:
			t.noteDrift(c)
		case <-t.watchdog:
			d.o.Notify.Watchdog()
		case c := <-calls:
			c.reply <- d.handle(ctx, c.req)
			if c.req.Command == "confirm" {
				t.debounce.Reset(0) // changes held back by the trial go in now
			}
			if c.req.Command != "status" {
				d.done()
			}
		case <-t.debounce.C:
			d.apply(ctx, t, "the configuration changed", false)
			d.done()
		case <-retryTimer:
			d.apply(ctx, t, "retrying a failed apply", false)
			d.done()
		case <-namesTimer:
			d.apply(ctx, t, namesDue, false)
			d.done()
		case <-hup:
			d.o.Notify.Reloading()
			d.o.Log.Info("reloading (SIGHUP)")
			d.apply(ctx, t, "reload", true)
			d.o.Notify.Ready()
			d.done()
		case <-t.drift.C:
			d.verify(ctx, "changed by "+t.driftBy)
			t.driftBy, t.driftDue = "", time.Time{}
			d.done()
		case <-t.resync.C:
			d.e.Forget() // a full comparison, whatever the events showed
			d.verify(ctx, "periodic verification")
			d.done()
		case <-trialTimer:
			d.settleTrial(ctx)
			d.apply(ctx, t, "the trial ended", false)
			d.done()
		}
	}
}

// datastoreChanged is why the agent applies when the datastore changed;
// datastoreQuiet how long it waits for more changes first (each revision
// is whole: a burst of writes is applied once).
const (
	datastoreChanged = engine.DatastoreReason
	datastoreQuiet   = 30 * time.Millisecond
	reportEvery      = 5 * time.Second
)

// awaitDatastore waits a while for the datastore's first read, so that the
// start applies what it holds now rather than what the last generation
// recorded; when etcd does not answer, the start goes on with that.
func (d *Daemon) awaitDatastore(ctx context.Context) {
	if d.o.Datastore == nil {
		return
	}
	// With what the last generation read, a start at boot (before the
	// network is up: systemd waits for READY) is not held up long; the
	// first read applies when it comes. Without, there is nothing to
	// apply until etcd answers.
	wait := 5 * time.Second
	_, err := d.o.Datastore.Snapshot()
	if err == nil {
		wait = time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	select {
	case <-d.o.Datastore.Ready():
	case <-wctx.Done():
		if err != nil {
			d.o.Log.Warn("the etcd datastore does not answer, and no generation has read it: nothing is applied until it does")
		} else {
			d.o.Log.Warn("the etcd datastore does not answer; starting from what the last generation read", zap.Int64("revision", d.o.Datastore.State().Revision))
		}
	}
}

// stopped is a timer that has not started.
func stopped() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// noteDrift schedules a check of the table: a burst of changes is checked
// once, at most its quiet time after its first event.
func (t *timers) noteDrift(c Drift) {
	quiet := uncertainQuiet
	if c.Certain {
		quiet, t.driftBy = driftQuiet, c.By
	} else if t.driftBy == "" {
		t.driftBy = c.By
	}
	if due := time.Now().Add(quiet); t.driftDue.IsZero() || due.Before(t.driftDue) {
		t.driftDue = due
		t.drift.Reset(quiet)
	}
}

// trialTimer fires at the pending trial's deadline, or when a rollback
// that failed is due again (nil: none pending).
func (d *Daemon) trialTimer() <-chan time.Time {
	if t, _ := d.e.Trial(); t != nil {
		due := t.Deadline
		if d.trialRetry.After(due) {
			due = d.trialRetry
		}
		return time.After(time.Until(due))
	}
	return nil
}

// namesDue is why the agent applies when domain names are due to be
// resolved again.
const namesDue = engine.NamesReason

// namesTimer fires when a domain name of the configuration is due to be
// resolved again (nil: none): the apply resolves the names due, and
// changes the elements of their sets if their addresses changed.
func (d *Daemon) namesTimer() <-chan time.Time {
	if due := d.e.NamesDue(); !due.IsZero() && !d.namesHeld {
		return time.After(time.Until(due))
	}
	return nil
}

// retryTimer fires when a failed apply is due again (nil: none).
func (d *Daemon) retryTimer() <-chan time.Time {
	if d.retry.IsZero() {
		return nil
	}
	return time.After(time.Until(d.retry))
}

// apply applies the files (explicit: an operator's reload), and says what
// became of it; a busy lock is tried again shortly.
func (d *Daemon) apply(ctx context.Context, t *timers, why string, explicit bool) {
	err := d.reconcile(ctx, why, explicit)
	switch {
	case errors.Is(err, engine.ErrLocked):
		d.o.Log.Warn("busy; trying again shortly", zap.Error(err))
		t.debounce.Reset(time.Second)
	case err != nil:
		d.o.Log.Error("not applied; the running ruleset stays", zap.Error(err))
	}
}

// done ends a piece of work: STATUS= says where things stand, and the
// memory the work took (a large configuration loaded, compiled and read
// back from the kernel is a lot of garbage) goes back to the system at
// once, not as the runtime would, lazily and only after the next garbage
// collection — which an idle agent never reaches.
func (d *Daemon) done() {
	d.status()
	d.observe()
	d.report()
	debug.FreeOSMemory()
	if d.o.Settled != nil {
		d.o.Settled()
	}
}

// observe publishes the index of the generation in force and the state
// the metrics show, and runs Options.Observe.
func (d *Daemon) observe() {
	x, err := d.e.Index()
	if err != nil {
		d.o.Log.Warn("indexing the generation in force for the drop log and the metrics", zap.Error(err))
		x = d.index.Load()
	} else {
		d.index.Store(x)
	}
	if !d.sampled && d.o.Counters != nil {
		// The first sample: status's top drops count from here.
		d.sampled = d.sampleNow() == nil
	} else {
		d.sample()
	}
	var deadline time.Time
	if t, _ := d.e.Trial(); t != nil {
		deadline = t.Deadline
	}
	d.o.Metrics.State(d.current, deadline)
	d.o.Metrics.Names(d.e.NameStates())
	if d.o.Observe != nil && x != nil {
		d.o.Observe(x)
	}
}

// sample samples the kernel's counters, when asked to around changes (a
// failure shows in the next scrape).
func (d *Daemon) sample() {
	if d.o.Counters != nil && d.o.SampleChanges && d.index.Load() != nil {
		d.sampleNow()
	}
}

func (d *Daemon) sampleNow() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := d.o.Counters.Sample(ctx)
	return err
}

// metricsText is the metrics in Prometheus's text format.
func (d *Daemon) metricsText() Response {
	if d.o.Gatherer == nil {
		return Response{Error: "this agent keeps no metrics"}
	}
	text, err := metrics.Text(d.o.Gatherer)
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{Metrics: text}
}

func (d *Daemon) status() {
	s := fmt.Sprintf("generation %d", d.current)
	if t, _ := d.e.Trial(); t != nil {
		if t.Unreadable != "" {
			s += " (a trial is pending, its record unreadable: rolling it back)"
		} else {
			s += fmt.Sprintf(" (generation %d on trial until %s)", t.Generation, t.Deadline.Format(time.TimeOnly))
		}
	}
	s += fmt.Sprintf(", %d rules; watching %s", d.rules, d.o.ConfigDir)
	if d.repairs > 0 {
		s += fmt.Sprintf("; %d drift repairs", d.repairs)
	}
	if d.lastErr != "" {
		s += "; last error: " + d.lastErr
	}
	d.o.Notify.Status(s)
}

// reconcile applies the files through the engine and records the outcome
// for status.
func (d *Daemon) reconcile(ctx context.Context, why string, explicit bool) error {
	d.sample() // what the rules the change replaces counted
	start := time.Now()
	res, err := d.e.Apply(ctx, engine.ApplyRequest{Reason: "agent: " + why, Explicit: explicit, Names: why == namesDue})
	rec := &engine.ApplyRecord{Time: time.Now(), Why: why}
	d.lastApply = rec
	defer func() { d.o.Metrics.Applied(metricResult(rec.Result, err), metrics.Trigger(why), time.Since(start)) }()
	var invalid *engine.InvalidError
	switch {
	case errors.As(err, &invalid):
		d.logDiagnostics(invalid)
		d.lastErr = firstError(invalid)
		rec.Result, rec.Error = "invalid", err.Error()+": "+d.lastErr // which file or key, and what is wrong
		d.o.Notify.Status(fmt.Sprintf("INVALID configuration, keeping generation %d: %s", d.current, d.lastErr))
		return err
	case err != nil:
		rec.Result, rec.Error, d.lastErr = "failed", err.Error(), err.Error()
		d.scheduleRetry(err)
		return err
	case res.Held != "":
		rec.Result, rec.Error = "held", res.Held
		d.o.Log.Warn("not applied", zap.String("why", res.Held))
		d.namesHeld = why == namesDue
		return d.keepCurrent(ctx)
	}
	d.namesHeld = false
	d.revision.Store(res.Revision)
	d.appliedGen = res.Generation
	d.lastErr, d.retry, d.backoff = "", time.Time{}, 0
	d.current, d.rules = res.Generation, res.Rules
	rec.Result, rec.Generation = "applied", res.Generation
	for _, w := range res.Warnings {
		d.o.Log.Warn(views.FormatDiagnostic(w))
	}
	d.o.Log.Info("applied", zap.String("why", why), zap.Int("generation", res.Generation), zap.Bool("changed", res.Plan != nil),
		zap.String("verified", res.Verified))
	return nil
}

// metricResult is the result label of an apply that ended as result
// (ApplyRecord.Result) with err.
func metricResult(result string, err error) string {
	switch {
	case errors.Is(err, engine.ErrLocked):
		return "busy"
	case result == "applied":
		return "success"
	}
	return result
}

// keepCurrent makes sure the current generation is in force while the
// files are held back.
func (d *Daemon) keepCurrent(ctx context.Context) error {
	if _, err := d.e.Repair(ctx, false); err != nil {
		return err
	}
	cur, err := d.e.Current()
	d.current = cur
	return err
}

// scheduleRetry tries a failed apply again later, waiting longer after each
// failure: a full state directory or a busy kernel may clear up.
func (d *Daemon) scheduleRetry(err error) {
	if errors.Is(err, engine.ErrLocked) || errors.Is(err, engine.ErrLockout) {
		return // a busy lock is retried at once; a refused configuration waits for an edit
	}
	d.backoff = min(max(2*d.backoff, retryFirst), retryMax)
	d.retry = time.Now().Add(d.backoff)
}

// logDiagnostics logs every diagnostic of an invalid configuration.
func (d *Daemon) logDiagnostics(invalid *engine.InvalidError) {
	for _, dg := range invalid.Diags {
		d.o.Log.Warn(views.FormatDiagnostic(dg))
	}
}

// firstError is the first error of an invalid configuration, for STATUS=.
func firstError(invalid *engine.InvalidError) string {
	errs := invalid.Diags.Errs()
	s := views.FormatDiagnostic(errs[0].(*hcl.Diagnostic))
	if len(errs) > 1 {
		s += fmt.Sprintf(" (and %d more errors: see the log)", len(errs)-1)
	}
	return s
}

// verify repairs the kernel towards the current generation.
func (d *Daemon) verify(ctx context.Context, why string) {
	start := time.Now()
	p, err := d.e.Repair(ctx, false)
	if cur, cerr := d.e.Current(); err == nil && cerr == nil {
		d.current = cur // Repair holds the current generation, which a CLI rollback may have changed
	}
	switch {
	case errors.Is(err, engine.ErrLocked):
		d.o.Log.Warn("verification skipped; the next one will tell", zap.Error(err))
	case err != nil:
		d.o.Metrics.Verified("failed")
		d.o.Log.Error("repairing drift", zap.Error(err))
	case p == nil:
		d.o.Metrics.Verified("held")
		d.lastVerified = time.Now()
		d.o.Log.Info("verified", zap.String("why", why), zap.Int("generation", d.current), zap.Duration("took", time.Since(start)))
	default:
		d.o.Metrics.Verified("repaired")
		d.lastVerified = time.Now()
		d.repairs++
		add, change, destroy := p.Summary() // a woken table is a change too
		n := add + change + destroy
		d.lastDrift = &engine.DriftRecord{Time: time.Now(), By: strings.TrimPrefix(why, "changed by "), Changes: n}
		d.o.Log.Warn("repaired drift", zap.String("why", why), zap.Int("generation", d.current), zap.Int("changes", n))
	}
}

// settleTrial rolls back a pending trial that is past its deadline or was
// interrupted by a reboot; the CLI's guard may do it first.
func (d *Daemon) settleTrial(ctx context.Context) {
	if t, _ := d.e.Trial(); t != nil {
		d.sample() // a rollback replaces rules
	}
	o, err := d.e.SettleTrial(ctx, "the agent")
	if err != nil {
		d.trialBackoff = min(max(2*d.trialBackoff, retryFirst), retryMax)
		d.trialRetry = time.Now().Add(d.trialBackoff)
		d.o.Log.Error("rolling back the trial", zap.Error(err), zap.Duration("again in", d.trialBackoff))
		return
	}
	d.trialRetry, d.trialBackoff = time.Time{}, 0
	if o == nil { // nothing was due, or the guard was first
		if cur, err := d.e.Current(); err == nil {
			d.current = cur
		}
		return
	}
	d.current = o.Previous
	d.o.Log.Warn("trial rolled back", zap.Int("generation", o.Generation), zap.String("detail", o.Detail))
}

// revisionInForce is the datastore revision of what the kernel holds, the
// generation in force being cur: the one the agent applied last, while cur
// is the one that apply left (a change of the datastore that left this host's
// ruleset as it was makes no generation); else, after a rollback or an
// apply by the CLI, the one the generation in force recorded.
func (d *Daemon) revisionInForce(cur int) int64 {
	if cur == d.appliedGen {
		return d.revision.Load()
	}
	return d.e.RecordedRevision(cur)
}

// report publishes this host's status key (Options.Reporter).
func (d *Daemon) report() {
	if d.o.Reporter == nil {
		return
	}
	if cur, err := d.e.Current(); err == nil {
		d.current = cur // a CLI's rollback or apply
	}
	s := datastore.NodeStatus{Node: d.o.Node, Version: d.o.Version, Generation: d.current, Revision: d.revisionInForce(d.current),
		DriftRepairs: d.repairs, Error: d.lastErr}
	if d.o.Datastore != nil {
		s.Synced = d.o.Datastore.State().Revision
	}
	if a := d.lastApply; a != nil {
		s.LastApply, s.Result = a.Time, a.Result
	}
	if t, _ := d.e.Trial(); t != nil {
		s.TrialGeneration, s.Trial = t.Generation, t.Deadline
	}
	d.o.Reporter.Publish(s)
}
