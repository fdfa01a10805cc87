package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/hcl/v2"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
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
	ConfigDir string
	Store     *state.Store
	Run       state.RunDir
	NetNS     string
	// HostName is --host-name; empty: each load takes the host block's
	// name, else the kernel's hostname (config.Config.HostName).
	HostName string
	// Debounce is how long the directory must stay quiet before a reload
	// (default 200ms).
	Debounce time.Duration
	// Resync is the period of the full verification backstop (default 5m).
	Resync time.Duration
	// Watchdog is the watchdog ping period; 0 for none.
	Watchdog time.Duration
	// Drift delivers other processes' changes to the table; nil for none.
	Drift  <-chan Drift
	Kernel Kernel
	// Generation returns the kernel's ruleset generation; with it, plans
	// skip reading a table that cannot have changed (readCache). nil: always read.
	Generation func() (uint32, error)
	// DeleteTable removes the table (a trial of the first configuration
	// rolls back to no firewall).
	DeleteTable func(ctx context.Context, gen uint32) error
	// IsGenerationChanged classifies Kernel.Apply errors.
	IsGenerationChanged func(error) bool
	Notify              Notifier
	Log                 *zap.Logger
	// Socket is the control socket's path; empty for none.
	Socket string
	// Load and Limits are the CLI's: trust checks, file size and
	// configuration limits (New gives Load a Memo when it has none).
	Load   loader.DirOptions
	Limits compile.Limits
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
// while when the table was surely touched, longer when it may not have
// been (another tool's set updates must not make us re-read ours on every
// element).
const (
	driftQuiet     = 50 * time.Millisecond
	uncertainQuiet = time.Second
)

// lockTimeout is how long the agent waits for the state lock (a CLI apply
// or rollback, perhaps waiting at its "yes" prompt) before retrying later.
// It stays below half the unit's WatchdogSec=30s: the loop that waits is
// the loop that pings the watchdog.
const lockTimeout = 10 * time.Second

// Daemon is the agent: the CLI's load → compile → plan → apply path in a
// loop driven by the configuration directory, signals, the drift monitor
// and timers. Its desired state is the current generation; a change of the
// files' content makes a new one.
type Daemon struct {
	o Options
	// kernel is o.Kernel behind the read cache: what plans read.
	kernel *readCache
	// appliedHash is the content hash of the files the current
	// generation came from.
	appliedHash string
	current     int
	// rules is the rule count of the current generation's table, which the
	// kernel holds once applied (STATUS= shows it without reading the
	// kernel again).
	rules     int
	lastErr   string
	repairs   int
	lastApply *ApplyRecord
	lastDrift *DriftRecord
	// compiled keeps the large sets of one compile for the next (as
	// o.Load.Memo keeps the decoded files): a save of a policy file
	// rebuilds neither an unchanged blocklist nor its set.
	compiled *compile.Memo
}

// New returns a daemon.
func New(o Options) *Daemon {
	if o.Debounce == 0 {
		o.Debounce = 200 * time.Millisecond
	}
	if o.Resync == 0 {
		o.Resync = 5 * time.Minute
	}
	if o.Load.Memo == nil {
		o.Load.Memo = &loader.Memo{}
	}
	return &Daemon{o: o, kernel: &readCache{Kernel: o.Kernel, generation: o.Generation}, compiled: &compile.Memo{}}
}

// Run runs until ctx ends. The ruleset stays in the kernel when it returns:
// a firewall must not vanish when its agent stops.
func (d *Daemon) Run(ctx context.Context) error {
	log := d.o.Log
	d.o.Notify.Status("starting")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d.settleTrial(ctx)
	if err := d.reconcile(ctx, "start", false); errors.Is(err, errInvalid) {
		log.Error("the configuration does not load; applying the last good generation", zap.Error(err))
		if err := d.locked(func() error { return d.applyCurrent(ctx) }); err != nil {
			log.Error("applying the last good generation", zap.Error(err))
		}
	} else if err != nil {
		log.Error("not applied", zap.Error(err))
	}
	w, err := newWatcher(d.o.ConfigDir, log)
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

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	drift := time.NewTimer(time.Hour)
	drift.Stop()
	var driftBy string
	driftDue := time.Time{}
	resync := time.NewTicker(d.o.Resync)
	defer resync.Stop()
	var watchdog <-chan time.Time
	if d.o.Watchdog > 0 {
		t := time.NewTicker(d.o.Watchdog)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		var trialTimer <-chan time.Time
		if t, _ := d.o.Run.ReadTrial(d.o.NetNS); t != nil {
			trialTimer = time.After(time.Until(t.Deadline))
		}
		select {
		case <-ctx.Done():
			d.o.Notify.Stopping()
			log.Info("stopping; the ruleset stays in the kernel")
			return nil
		case at := <-w.changes:
			// The quiet time counts from the change, not from when this
			// loop got to it (it may have been handing memory back, or
			// finishing the work before).
			debounce.Reset(max(0, d.o.Debounce-time.Since(at)))
		case <-debounce.C:
			if err := d.reconcile(ctx, "the configuration changed", false); errors.Is(err, state.ErrLocked) {
				log.Warn("busy; trying again shortly", zap.Error(err))
				debounce.Reset(time.Second)
			} else if err != nil {
				log.Error("not applied; the running ruleset stays", zap.Error(err))
			}
			d.done()
		case <-hup:
			d.o.Notify.Reloading()
			log.Info("reloading (SIGHUP)")
			if err := d.reconcile(ctx, "reload", true); err != nil {
				log.Error("not applied; the running ruleset stays", zap.Error(err))
			}
			d.o.Notify.Ready()
			d.done()
		case c := <-d.o.Drift:
			quiet := uncertainQuiet
			if c.Certain {
				quiet, driftBy = driftQuiet, c.By
			} else if driftBy == "" {
				driftBy = c.By
			}
			// A burst is checked once, at most quiet after its first event.
			if due := time.Now().Add(quiet); driftDue.IsZero() || due.Before(driftDue) {
				driftDue = due
				drift.Reset(quiet)
			}
		case <-drift.C:
			d.verify(ctx, "changed by "+driftBy)
			driftBy, driftDue = "", time.Time{}
			d.done()
		case <-resync.C:
			d.kernel.forgetDerived() // a table derived from commits is read once
			d.verify(ctx, "periodic verification")
			d.done()
		case c := <-calls:
			c.reply <- d.handle(ctx, c.req)
			if c.req.Command == "confirm" {
				debounce.Reset(0) // changes held back by the trial go in now
			}
		case <-watchdog:
			d.o.Notify.Watchdog()
		case <-trialTimer:
			d.settleTrial(ctx)
			if err := d.reconcile(ctx, "the trial ended", false); err != nil {
				log.Error("not applied; the running ruleset stays", zap.Error(err))
			}
			d.done()
		}
	}
}

// done ends a piece of work: STATUS= says where things stand, and the
// memory the work took (a large configuration loaded, compiled and read
// back from the kernel is ~100 MB of garbage) goes back to the system at
// once, not as the runtime would, lazily and only after the next garbage
// collection — which an idle agent never reaches.
func (d *Daemon) done() {
	d.status()
	debug.FreeOSMemory()
}

func (d *Daemon) status() {
	s := fmt.Sprintf("generation %d", d.current)
	if t, _ := d.o.Run.ReadTrial(d.o.NetNS); t != nil {
		s += fmt.Sprintf(" (generation %d on trial until %s)", t.Generation, t.Deadline.Format(time.TimeOnly))
	}
	s += fmt.Sprintf(", %d rules", d.rules)
	s += "; watching " + d.o.ConfigDir
	if d.repairs > 0 {
		s += fmt.Sprintf("; %d drift repairs", d.repairs)
	}
	if d.lastErr != "" {
		s += "; last error: " + d.lastErr
	}
	d.o.Notify.Status(s)
}

// errInvalid marks a configuration that does not load or compile.
var errInvalid = errors.New("invalid configuration")

// load reads and compiles the configuration files.
func (d *Daemon) load() (*loader.Result, *ruleset.Table, error) {
	res, diags := loader.LoadDir(d.o.ConfigDir, d.o.Load)
	var tbl *ruleset.Table
	if !diags.HasErrors() {
		var more hcl.Diagnostics
		tbl, more = compile.Compile(res.Config, compile.Options{HostName: res.Config.HostName(d.o.HostName), Limits: d.o.Limits, Memo: d.compiled})
		diags = append(diags, more...)
	}
	for _, dg := range diags {
		if dg.Severity == hcl.DiagWarning {
			d.o.Log.Warn(views.FormatDiagnostic(dg))
		}
	}
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("%w: %s", errInvalid, views.FormatDiagnostic(diags.Errs()[0].(*hcl.Diagnostic)))
	}
	return res, tbl, nil
}

// locked runs fn holding the state lock, which the CLI's applies,
// rollbacks and guards take too.
func (d *Daemon) locked(fn func() error) error {
	lock, err := state.AcquireLock(d.o.Run.Dir, d.o.NetNS, lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Release()
	return fn()
}

// reconcile applies the files when their content changed (or when forced)
// and records a generation.
func (d *Daemon) reconcile(ctx context.Context, why string, force bool) error {
	return d.locked(func() error { return d.reconcileLocked(ctx, why, force) })
}

func (d *Daemon) reconcileLocked(ctx context.Context, why string, force bool) error {
	rec := func(result string, gen int, err error) error {
		d.lastApply = &ApplyRecord{Time: time.Now(), Why: why, Result: result, Generation: gen}
		if err != nil {
			d.lastApply.Error = err.Error()
		}
		return err
	}
	res, desired, err := d.load()
	if err != nil {
		d.lastErr = err.Error()
		d.o.Notify.Status(fmt.Sprintf("INVALID configuration, keeping generation %d: %s", d.current, err))
		return rec("invalid", 0, err)
	}
	d.lastErr = ""
	hash := loader.HashSources(res.Sources)
	if hash == d.appliedHash && !force {
		return nil
	}
	if t, _ := d.o.Run.ReadTrial(d.o.NetNS); t != nil {
		return rec("held", 0, fmt.Errorf("generation %d is on trial; the files are applied once it is confirmed or rolled back", t.Generation))
	}
	if d.rolledBack(hash) && !force {
		d.o.Log.Warn("the files hold a configuration whose trial was rolled back; edit them (or hostwall reload) to apply it again")
		d.appliedHash = hash
		rec("held", 0, errors.New("the files hold a configuration whose trial was rolled back; edit them or run hostwall reload to apply it again"))
		return d.applyCurrent(ctx)
	}
	p, err := Plan(ctx, d.kernel, desired)
	if err != nil {
		return rec("failed", 0, err)
	}
	verified, err := d.commit(ctx, desired, p)
	if err != nil {
		d.lastErr = err.Error()
		return rec("failed", 0, err)
	}
	d.appliedHash = hash
	gen, err := d.recordIfNew(res, desired, why)
	if err != nil {
		return rec("failed", 0, err)
	}
	d.current, d.rules = gen, desired.RuleCount()
	d.o.Log.Info("applied", zap.String("why", why), zap.Int("generation", gen), zap.Bool("changed", !p.Empty()), zap.String("verified", verified))
	return rec("applied", gen, nil)
}

// commit applies p, planned for desired, and verifies it: a change to set
// elements alone (a blocklist) by the kernel's generation, which then also
// gives the next plan its base (readCache.keepApplied); anything else by
// reading the table back, which the next plan starts from (a rule's handle
// is known only to the kernel). Drift repairs always read back. It says
// how the commit was verified, for the log.
func (d *Daemon) commit(ctx context.Context, desired *ruleset.Table, p *planner.Plan) (verified string, err error) {
	v := ByReadBack
	if !p.Empty() && p.ElementsOnly() {
		v = ByGeneration
	}
	applied, gen, err := Apply(ctx, d.kernel, desired, p, d.o.IsGenerationChanged, v)
	switch {
	case err != nil:
		return "", err
	case p.Empty():
		return "nothing to commit", nil
	case v == ByReadBack || d.kernel.readAt(gen):
		return "by reading back", nil // Apply read the table: the next plan starts from it
	}
	d.kernel.keepApplied(applied, gen)
	return "by generation", nil
}

// rolledBack reports whether files with this hash were last rolled back.
func (d *Daemon) rolledBack(hash string) bool {
	o, err := d.o.Run.LastOutcome(d.o.NetNS)
	if err != nil || o == nil || o.Result != state.RolledBack {
		return false
	}
	g, err := d.o.Store.Meta(o.Generation)
	return err == nil && sourcesHash(g) == hash
}

// sourcesHash is loader.HashSources of generation g's files, from the
// SHA-256 its record keeps of each (g need not hold their contents).
func sourcesHash(g *state.Generation) string {
	var srcs []loader.Source
	for _, f := range g.Files {
		srcs = append(srcs, loader.Source{Path: f.Path, Data: f.Data, SHA256: f.SHA256})
	}
	return loader.HashSources(srcs)
}

// recordIfNew records a generation unless the current one already holds
// these files and ruleset.
func (d *Daemon) recordIfNew(res *loader.Result, desired *ruleset.Table, why string) (int, error) {
	cur, err := d.o.Store.Current()
	if err != nil {
		return 0, err
	}
	rendered := desired.String()
	if cur > 0 {
		if g, err := d.o.Store.Meta(cur); err == nil && g.RulesetHash == state.HashRuleset(rendered) &&
			sourcesHash(g) == loader.HashSources(res.Sources) {
			return cur, nil
		}
	}
	g := &state.Generation{Time: time.Now(), UID: os.Getuid(), HostName: res.Config.HostName(d.o.HostName), NetNS: d.o.NetNS,
		ConfigDir: d.o.ConfigDir, Reason: "agent: " + why, Ruleset: rendered}
	for _, s := range res.Sources {
		g.Files = append(g.Files, state.File{Path: s.Path, Data: s.Data, SHA256: s.SHA256})
	}
	return g.Number, d.o.Store.Record(g)
}

// generationTable compiles a recorded generation.
func (d *Daemon) generationTable(n int) (*ruleset.Table, error) {
	g, err := d.o.Store.Load(n)
	if err != nil {
		return nil, err
	}
	return CompileGeneration(g)
}

// CompileGeneration compiles a recorded generation's files for its host.
func CompileGeneration(g *state.Generation) (*ruleset.Table, error) {
	var srcs []loader.Source
	for _, f := range g.Files {
		srcs = append(srcs, loader.Source{Path: f.Path, Data: f.Data})
	}
	res, diags := loader.Load(srcs)
	if diags.HasErrors() {
		return nil, fmt.Errorf("generation %d no longer loads: %s", g.Number, diags.Errs()[0])
	}
	tbl, diags := compile.Compile(res.Config, compile.Options{HostName: g.HostName})
	if diags.HasErrors() {
		return nil, fmt.Errorf("generation %d no longer compiles: %s", g.Number, diags.Errs()[0])
	}
	return tbl, nil
}

// applyCurrent makes the kernel hold the current generation (the last good
// one); with none recorded, nothing is applied.
func (d *Daemon) applyCurrent(ctx context.Context) error {
	cur, err := d.o.Store.Current()
	if err != nil || cur == 0 {
		return err
	}
	tbl, err := d.generationTable(cur)
	if err != nil {
		return err
	}
	p, err := Plan(ctx, d.kernel, tbl)
	if err != nil {
		return err
	}
	if _, _, err := Apply(ctx, d.kernel, tbl, p, d.o.IsGenerationChanged, ByReadBack); err != nil {
		return err
	}
	d.current, d.rules = cur, tbl.RuleCount()
	return nil
}

// verify repairs the kernel towards the current generation.
func (d *Daemon) verify(ctx context.Context, why string) {
	if err := d.locked(func() error { d.verifyLocked(ctx, why); return nil }); err != nil {
		d.o.Log.Warn("verification skipped; the next one will tell", zap.Error(err))
	}
}

func (d *Daemon) verifyLocked(ctx context.Context, why string) {
	if t, _ := d.o.Run.ReadTrial(d.o.NetNS); t != nil {
		return // the trial generation is in force and is current
	}
	cur, err := d.o.Store.Current()
	if err != nil || cur == 0 {
		return
	}
	tbl, err := d.generationTable(cur)
	if err != nil {
		d.o.Log.Error("verifying", zap.Error(err))
		return
	}
	p, err := Plan(ctx, d.kernel, tbl)
	if err != nil || p.Empty() {
		return
	}
	if _, _, err := Apply(ctx, d.kernel, tbl, p, d.o.IsGenerationChanged, ByReadBack); err != nil {
		d.o.Log.Error("repairing drift", zap.Error(err))
		return
	}
	d.repairs++
	d.lastDrift = &DriftRecord{Time: time.Now(), By: strings.TrimPrefix(why, "changed by "), Changes: len(p.Changes)}
	d.o.Log.Warn("repaired drift", zap.String("why", why), zap.Int("generation", cur), zap.Int("changes", len(p.Changes)))
}

// settleTrial rolls back a pending trial that is past its deadline or was
// interrupted by a reboot; the CLI's guard may do it first (both take the
// lock and re-read the trial).
func (d *Daemon) settleTrial(ctx context.Context) {
	t, err := d.o.Run.ReadTrial(d.o.NetNS)
	if err != nil || t == nil || (time.Now().Before(t.Deadline) && !t.Rebooted) {
		return
	}
	lock, err := state.AcquireLock(d.o.Run.Dir, d.o.NetNS, lockTimeout)
	if err != nil {
		d.o.Log.Error("rolling back the trial", zap.Error(err))
		return
	}
	defer lock.Release()
	if now, _ := d.o.Run.ReadTrial(d.o.NetNS); now == nil || now.Generation != t.Generation {
		return
	}
	if err := d.rollbackTo(ctx, t.Previous); err != nil {
		d.o.Log.Error("rolling back the trial", zap.Int("generation", t.Generation), zap.Error(err))
		return
	}
	detail := fmt.Sprintf("not confirmed by %s; generation %d restored by the agent", t.Deadline.Format(time.TimeOnly), t.Previous)
	if t.Rebooted {
		detail = fmt.Sprintf("the machine rebooted during the trial; generation %d restored by the agent", t.Previous)
	}
	d.o.Run.EndTrial(t, state.RolledBack, detail)
	d.o.Log.Warn("trial rolled back", zap.Int("generation", t.Generation), zap.String("detail", detail))
}

func (d *Daemon) rollbackTo(ctx context.Context, n int) error {
	if n == 0 {
		_, gen, err := d.kernel.Read(ctx)
		if err != nil {
			return err
		}
		if err := d.o.DeleteTable(ctx, gen); err != nil {
			return err
		}
		d.current, d.rules = 0, 0
		return d.o.Store.SetCurrent(0)
	}
	if err := d.o.Store.SetCurrent(n); err != nil {
		return err
	}
	return d.applyCurrent(ctx)
}

// watcher reports changes to policy files of a directory, surviving
// rename-saves and the directory being removed and created again (it also
// watches the parent).
type watcher struct {
	fs  *fsnotify.Watcher
	dir string
	// changes holds the time of the latest change not yet taken.
	changes chan time.Time
	log     *zap.Logger
	done    chan struct{}
}

func newWatcher(dir string, log *zap.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	w := &watcher{fs: fw, dir: dir, changes: make(chan time.Time, 1), log: log, done: make(chan struct{})}
	if err := fw.Add(filepath.Dir(dir)); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching %s: %w", filepath.Dir(dir), err)
	}
	if err := fw.Add(dir); err != nil {
		log.Warn("the configuration directory is missing; waiting for it", zap.String("dir", dir))
	}
	go w.loop()
	return w, nil
}

func (w *watcher) loop() {
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			switch {
			case ev.Name == w.dir:
				if ev.Has(fsnotify.Create) {
					w.fs.Add(w.dir) // the directory came back
				}
				w.signal()
			case filepath.Dir(ev.Name) == w.dir && loader.IsWatched(filepath.Base(ev.Name)):
				w.signal()
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching the configuration directory", zap.Error(err))
			w.signal() // events may have been lost: look again
		}
	}
}

func (w *watcher) signal() {
	now := time.Now()
	for {
		select {
		case w.changes <- now:
			return
		default:
			select { // an older change not taken yet: this one is later
			case <-w.changes:
			default:
			}
		}
	}
}

func (w *watcher) close() {
	close(w.done)
	w.fs.Close()
}
