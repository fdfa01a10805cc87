package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// Planned is a plan with what it was made from.
type Planned struct {
	Plan *planner.Plan
	// Warnings are the configuration's diagnostics; Notes say how the plan
	// was made when the kernel was not read.
	Warnings hcl.Diagnostics
	Notes    []string
	// ConfigHash is loader.HashSources of the files and Host the host name
	// the configuration was compiled for (a saved plan records both).
	ConfigHash, Host string
}

// Plan plans the configuration against the kernel: from the verified
// record when neither the files nor the kernel moved since, or when only
// set elements change (unless refresh), else by reading the kernel. A plan
// that finds nothing to do records so, for the next command's shortcut.
// Planning changes nothing in the kernel; a trial past its deadline that
// nobody rolled back is said (overdue), for status or the next change to
// roll back.
func (e *Engine) Plan(ctx context.Context, refresh bool) (*Planned, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	if t, _ := e.readTrial(ns); t != nil && expired(t) {
		e.notice("%s", overdue(t))
	}
	if err := e.takeSnapshot(); err != nil {
		return nil, err
	}
	if !refresh {
		if rec, srcs := e.readRecordAnd(ns, true, false); e.unchanged(rec, srcs) {
			return &Planned{Plan: &planner.Plan{Generation: rec.Generation}, Notes: []string{unchangedNote("plan", rec)},
				ConfigHash: rec.ConfigHash, Host: rec.HostName}, nil
		}
	}
	l, err := e.load()
	if err != nil {
		return nil, err
	}
	chains := renderChains(l.Table)
	p, note, err := e.planLoaded(ctx, l.Table, chains, refresh)
	if err != nil {
		return nil, err
	}
	out := &Planned{Plan: p, Warnings: l.Warnings, ConfigHash: loader.HashSources(l.Result.Sources), Host: l.Host}
	if note != "" {
		out.Notes = append(out.Notes, note)
	}
	out.Notes = append(out.Notes, stagedNotes(l.Result.Config, l.Host, !strings.Contains(l.Warnings.Error(), compile.StagedUncounted))...)
	out.Notes = append(out.Notes, nameNotes(l.Names)...)
	if p.Empty() {
		e.recordVerified(ns, l, chains.withSets(l.Table).hashed(), p.Generation)
	}
	return out, nil
}

// recordVerified writes the verified record of l, found in the kernel at
// generation gen, unless another hostwall is changing the namespace (then
// the record would be stale at once).
func (e *Engine) recordVerified(ns state.Namespace, l *Loaded, r rendering, gen uint32) {
	lock, err := ns.Lock(0, state.NewHolder(e.o.RunDir))
	if err != nil {
		return
	}
	defer lock.Release()
	if now, err := e.o.Kernel.Generation(); err != nil || now != gen {
		return
	}
	rec, err := e.newRecord(ns, l, r)
	if err != nil {
		e.notice("cannot record the verified state (the next plan reads the kernel): %v", err)
		return
	}
	e.saveRecord(ns, rec, gen)
}

// Show reads the namespace's table from the kernel (nil: there is none).
func (e *Engine) Show(ctx context.Context) (*ruleset.Table, error) {
	t, _, err := e.o.Kernel.Read(ctx)
	return t, err
}

// stagedNotes mark in a plan the staged policies of cfg, which decide no
// packet (their chains only count: docs/kernel.md), by what they would do,
// and the host endpoints of host in audit mode. counted is false when the
// compiler left the staged view out.
func stagedNotes(cfg *config.Config, host string, counted bool) []string {
	enforced := map[string]bool{}
	for _, p := range cfg.Policies {
		if p.Staged == "" {
			enforced[p.Name] = true
		}
	}
	watch := "hostwall status and hostwall drops --staged show what it would change on live traffic; explain, for a packet"
	if !counted {
		watch = "not counted on live traffic: see the warning; hostwall explain shows what it would change, for a packet"
	}
	var out []string
	for _, p := range cfg.Policies {
		switch {
		case p.Staged == config.StagedDelete:
			out = append(out, fmt.Sprintf("staged, not enforced: policy %q would be deleted (%s)", p.Name, watch))
		case p.Staged != "" && enforced[p.Name]:
			out = append(out, fmt.Sprintf("staged, not enforced: policy %q would replace the enforced policy of its name (%s)", p.Name, watch))
		case p.Staged != "":
			out = append(out, fmt.Sprintf("staged, not enforced: policy %q would be added (%s)", p.Name, watch))
		}
	}
	for _, hep := range cfg.Endpoints {
		if hep.Audit && (hep.Node == "" || hep.Node == host) {
			out = append(out, fmt.Sprintf("audit mode: host endpoint %q (interface %s) logs what its policies would drop and lets it by (hostwall drops shows it; mode = \"enforce\" enforces)", hep.Name, hep.Interface))
		}
	}
	return out
}
