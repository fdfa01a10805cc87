package engine

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

// ApplyRequest is one change asked of the engine: the configuration
// directory applied (the default), or a recorded generation again.
type ApplyRequest struct {
	// Rollback, when set, applies that recorded generation again instead
	// of the files (0 removes the table: no firewall).
	Rollback *int
	// Reason is what a new generation records ("apply", "agent: the
	// configuration changed"); " (trial)" is added for a trial.
	Reason string
	// Explicit is an operator's request (apply, rollback, reload): it
	// applies a configuration whose trial was rolled back, and is refused
	// while a trial runs. Otherwise (the agent's watch of the files) such
	// a change is held back, and said so in ApplyResult.Held.
	Explicit bool
	// Names is the agent's apply of the files to follow their domain
	// names: held back when the generation in force was not made from
	// the files (a rollback).
	Names bool
	// Refresh reads the kernel even where a record stands in for it.
	Refresh bool
	// Force skips the lockout check, and lets a rollback go to a
	// generation that compiles differently with this hostwall version
	// (never to a damaged one).
	Force bool
	// SSHConnection is the operator's $SSH_CONNECTION, for the lockout
	// check.
	SSHConnection string
	// Trial, when positive, applies on trial: Previous comes back unless
	// confirmed within it. Arm then starts what holds the trial's timer
	// (the guard) and returns once it is armed, with its pid.
	Trial time.Duration
	Arm   func(ctx context.Context, t *state.Trial) (pid int, err error)
	// Saved, when set, is a saved plan: it is applied only if planning now
	// gives exactly it (else a *StalePlanError), and never planned again.
	Saved *SavedPlan
	// Show shows the preview before approval (nil: nothing shown); Approve
	// asks for approval of a change (nil: approved).
	Show    func(*Preview)
	Approve func(ctx context.Context) (bool, error)
}

// Preview is what is about to happen, shown before approval.
type Preview struct {
	Plan *planner.Plan
	// Warnings are the configuration's diagnostics (none an error).
	Warnings hcl.Diagnostics
	// Notes say how the plan was made and what the lockout check could not
	// check; they follow the plan.
	Notes []string
	// Rollback is the generation a rollback goes to (nil otherwise).
	Rollback *int
}

// ApplyResult is what an apply did.
type ApplyResult struct {
	// Plan is the plan committed (nil when the kernel was not changed).
	Plan *planner.Plan
	// Generation is the current generation after the apply; Recorded is
	// set when the apply recorded it.
	Generation int
	Recorded   bool
	// Trial is the trial started (nil for none).
	Trial *state.Trial
	// Held says why the files were not applied (ApplyRequest.Explicit).
	Held string
	// Rules counts the rules of the table in force; Warnings are the
	// configuration's diagnostics (none an error).
	Rules    int
	Warnings hcl.Diagnostics
	// Verified says how the kernel was found to hold the change.
	Verified string
	// EndedTrial is how the trial pending ended, when the change (a
	// rollback during a trial) ended it.
	EndedTrial *state.Outcome
	// Revision is the etcd revision of the datastore resources applied
	// with the files (0: none): the kernel holds what they say, changed
	// or not.
	Revision int64
}

// ErrCancelled is returned when approval was refused or the request was
// cancelled before the kernel was touched.
var ErrCancelled = errors.New("apply cancelled; nothing was changed")

// Apply makes the kernel hold the configuration (or a generation, for a
// rollback), with the write-ahead order of commit.go. A request cancelled
// before the change was sent (reading the kernel, say) is ErrCancelled;
// once sent, nothing cancels it (commit).
func (e *Engine) Apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	res, err := e.apply(ctx, req)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil, ErrCancelled
	}
	if err == nil && res != nil && req.Rollback == nil && res.Held == "" {
		res.Revision = e.snapshotRevision()
	}
	return res, err
}

func (e *Engine) apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	if req.Rollback != nil {
		return e.rollback(ctx, req)
	}
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	if err := e.takeSnapshot(); err != nil {
		return nil, err
	}
	if !req.Refresh && req.Saved == nil && req.Trial == 0 {
		rec, srcs := e.readRecordAnd(ns, true, false)
		if res, done, err := e.applyUnchanged(rec, srcs, req); done {
			return res, err
		}
		if c := e.incrementalChange(e.withBase(ns, rec), srcs, req); c != nil {
			if res, err := e.applyIncremental(ctx, ns, c, req); !errors.Is(err, errLongWay) {
				return res, err
			}
		}
	}
	l, err := e.load()
	if err != nil {
		return nil, err
	}
	return e.applyLoaded(ctx, ns, l, req)
}

// errLongWay ends a shortcut that found, under the lock, that it does not
// hold: nothing was shown or changed, and the apply goes the long way.
var errLongWay = errors.New("take the long way")

// applyUnchanged is an apply with nothing to do: the kernel holds what the
// files srcs compile to, by the record, and the current generation records
// these files and that ruleset, so the long way would neither commit nor
// record. done is false when the apply must go on, and then nothing was
// shown.
func (e *Engine) applyUnchanged(rec *record, srcs []loader.Source, req ApplyRequest) (res *ApplyResult, done bool, err error) {
	if !e.unchanged(rec, srcs) || rec.Ruleset == "" {
		return nil, false, nil
	}
	err = e.locked(func(ns state.Namespace) error {
		if t, _ := e.readTrial(ns); t != nil || !e.stillHolds(rec) {
			return errLongWay
		}
		cur, err := e.store.CurrentMeta()
		if err != nil || cur == nil || cur.RulesetHash != rec.Ruleset || sourcesHash(cur) != rec.ConfigHash {
			return errLongWay
		}
		res = &ApplyResult{Generation: cur.Number, Rules: rec.Rules}
		show(req, &Preview{Plan: &planner.Plan{Generation: rec.Generation}, Notes: []string{unchangedNote("apply", rec)}})
		return nil
	})
	if errors.Is(err, errLongWay) {
		return nil, false, nil
	}
	return res, true, err
}

// unchangedNote tells, under an empty plan, that it comes from the record.
func unchangedNote(command string, rec *record) string {
	if rec.madeAt != 0 {
		return fmt.Sprintf("From hostwall's last full check (nftables generation %d): the files have not changed since, and the agent saw the kernel's transactions since (to generation %d) leave table inet hostwall alone. %s --refresh reads the kernel anyway.",
			rec.madeAt, rec.Generation, command)
	}
	return fmt.Sprintf("From hostwall's last full check: neither the files nor the kernel's ruleset (nftables generation %d) have changed since. %s --refresh reads the kernel anyway.", rec.Generation, command)
}

// fromRecordNote tells, under a plan, that it was made without reading the
// kernel.
func fromRecordNote(gen uint32) string {
	return fmt.Sprintf("Planned against the sets hostwall verified at nftables generation %d, which the kernel still holds: only set elements change. --refresh reads the kernel.", gen)
}

// sourcesHash is loader.HashSources of generation g's files, from the
// SHA-256 its record keeps of each.
func sourcesHash(g *state.Generation) string {
	var srcs []loader.Source
	for _, f := range recordedFiles(g) {
		srcs = append(srcs, loader.Source{Path: f.Path, SHA256: f.SHA256})
	}
	return loader.HashSources(srcs)
}

func show(req ApplyRequest, p *Preview) {
	if req.Show != nil {
		req.Show(p)
	}
}

// applyLoaded applies a loaded configuration. Its records — the
// generation, written durably, and the verified record — are made while
// the change is planned and approved, and wait for it.
func (e *Engine) applyLoaded(ctx context.Context, ns state.Namespace, l *Loaded, req ApplyRequest) (*ApplyResult, error) {
	c := &change{req: req, op: "apply", desired: l.Table, rules: l.Table.RuleCount(), host: l.Host, warnings: l.Warnings, loaded: l,
		sources: l.Result.Sources}
	if !req.Force {
		notes, err := e.lockoutCheck(l.Result.Config, l.Host, req.SSHConnection)
		if err != nil {
			return nil, err
		}
		c.notes = notes
	}
	chains := renderChains(l.Table)
	c.records = e.startRecords(l.Result.Sources, l.Host, l.Names, req).finish(e, func() rendering { return chains.withSets(l.Table) },
		func(r rendering) (*stagedRecord, error) { return e.newRecord(ns, l, r) })
	var res *ApplyResult
	err := e.locked(func(ns state.Namespace) (err error) {
		res, err = e.applyChange(ctx, ns, c, func() (*planner.Plan, string, error) { return e.planLoaded(ctx, l.Table, chains, req.Refresh) })
		return err
	})
	if err != nil {
		c.discard()
	}
	return res, err
}

// planLoaded plans desired, whose chains r rendered: against the record
// when that is sound (unless refresh), else by reading the kernel. note
// says how, when not by reading.
func (e *Engine) planLoaded(ctx context.Context, desired *ruleset.Table, r rendering, refresh bool) (p *planner.Plan, note string, err error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, "", err
	}
	if !refresh {
		if p := e.planFromRecord(e.readRecord(ns), desired, r); p != nil {
			return p, fromRecordNote(p.Generation), nil
		}
	}
	p, err = PlanTable(ctx, e.kernel, desired)
	return p, "", err
}

// applyIncremental applies a change to nets files alone (incremental.go);
// errLongWay when, under the lock, the kernel is no longer the record's.
func (e *Engine) applyIncremental(ctx context.Context, ns state.Namespace, ic *incChange, req ApplyRequest) (*ApplyResult, error) {
	c := &change{req: req, op: "apply", desired: ic.desired, rules: ic.rec.Rules, host: ic.rec.HostName,
		warnings: loadDiags(ic.rec.inc.Warnings), incremental: true, sources: ic.srcs}
	c.records = ic.records.finish(e, func() rendering { return rendering{chains: ic.rec.inc.Chains}.withSets(ic.desired) },
		func(r rendering) (*stagedRecord, error) { return ic.stageRecord(e, ns, r) })
	var res *ApplyResult
	err := e.locked(func(ns state.Namespace) (err error) {
		if !e.stillHolds(ic.rec) {
			return errLongWay
		}
		ic.plan.Generation = ic.rec.Generation
		res, err = e.applyChange(ctx, ns, c, func() (*planner.Plan, string, error) {
			return ic.plan, fromRecordNote(ic.plan.Generation) + "\n" + ic.note(), nil
		})
		return err
	})
	if err != nil {
		c.discard()
	}
	return res, err
}
