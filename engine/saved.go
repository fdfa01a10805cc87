package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
)

// SavedPlan is the file plan -o writes and apply PLANFILE applies.
type SavedPlan struct {
	FormatVersion string           `json:"format_version"`
	NetNS         string           `json:"netns"`
	ConfigDir     string           `json:"config_dir"`
	ConfigHash    string           `json:"config_hash"`
	HostName      string           `json:"host_name"`
	Plan          planner.JSONPlan `json:"plan"`
	// path is the file it was read from, for messages.
	path string
}

// StalePlanError is the error of a saved plan that no longer matches the
// configuration or the kernel: plan again.
type StalePlanError struct{ Reason string }

func (e *StalePlanError) Error() string { return "plan is stale: " + e.Reason }

// Unwrap makes a stale saved plan a stale plan (planner.ErrStale): it was
// not applied.
func (e *StalePlanError) Unwrap() error { return planner.ErrStale }

// SavePlan writes planned to path, for apply PLANFILE.
func (e *Engine) SavePlan(path string, planned *Planned) error {
	data, err := json.MarshalIndent(SavedPlan{FormatVersion: planner.FormatVersion, NetNS: e.o.NetNS, ConfigDir: e.o.ConfigDir,
		ConfigHash: planned.ConfigHash, HostName: planned.Host, Plan: planned.Plan.JSON()}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

// ReadSavedPlan reads a plan SavePlan wrote.
func ReadSavedPlan(path string) (*SavedPlan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sp := &SavedPlan{path: path}
	if err := json.Unmarshal(data, sp); err != nil {
		return nil, fmt.Errorf("%s is not a saved plan: %w", path, err)
	}
	if sp.FormatVersion != planner.FormatVersion {
		return nil, fmt.Errorf("%s is a plan of format %q; this hostwall reads %q", path, sp.FormatVersion, planner.FormatVersion)
	}
	return sp, nil
}

// checkSaved refuses a saved plan made against another configuration or
// kernel state than l and now, and otherwise checks that planning now
// gives exactly it.
func (e *Engine) checkSaved(saved *SavedPlan, l *Loaded, now *planner.Plan) error {
	stale := func(format string, args ...any) error {
		return &StalePlanError{Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case saved.NetNS != e.o.NetNS:
		return stale("%s was made for network namespace %q, not %q", saved.path, saved.NetNS, e.o.NetNS)
	case l == nil || saved.ConfigHash != loader.HashSources(l.Result.Sources):
		return stale("the configuration in %s changed since %s was made; plan again", e.o.ConfigDir, saved.path)
	}
	// The kernel's generation may have moved since (a busy host's other
	// programs move it many times a second): what counts is that planning
	// now gives exactly the saved changes, handles included, which then
	// go in at the generation of now's plan.
	x, _ := json.Marshal(saved.Plan)
	j := now.JSON()
	j.Generation = saved.Plan.Generation
	y, _ := json.Marshal(j)
	if !bytes.Equal(x, y) {
		if saved.Plan.Generation != now.Generation {
			return stale("the kernel's ruleset changed since %s was made (generation %d, now %d), and planning now gives other changes; plan again",
				saved.path, saved.Plan.Generation, now.Generation)
		}
		return stale("planning now does not give %s; plan again", saved.path)
	}
	return nil
}
