package engine

// An incremental apply: a change to nets files alone, applied without
// loading the policy files or compiling them.
//
// A blocklist changes daily; the policies beside it do not. The verified
// record keeps how each set drawn from nets files is made
// (compile.Recipe), the text of the chains, the warnings and the hash of
// every file read. When the kernel is still at the recorded generation and
// every policy file is as recorded, the configuration differs from the
// recorded one only in the networks of nets files — so the chains are the
// recorded ones (they never depend on a set's elements, TestRecipesRemake)
// and only the sets the recipes name change, and the plan is their
// elements against the recorded sets, as planFromRecord would make it
// after a full load and compile. That plan is worked out one of two ways:
//
//   - patched: from the lines of each changed nets file that differ from
//     the current generation's copy of it (loader.ChangedLines), applied to
//     the recorded sets (ruleset.Set.Patch). Taking a network away is only
//     sound when it was an element by itself, which the record's Merged
//     tells.
//   - remade: otherwise (no such copy, a network merged with others taken
//     away), the nets files are parsed whole and the recipes' sets made
//     again.
//
// Anything else applies the long way: a policy file or the list of nets
// files changed, a nets file does not parse cleanly (the long way reports
// it), the kernel moved, --refresh, a saved plan, a trial, or a lockout
// check that would have to look at the networks (failsafe does not keep
// tcp:22 open, or the operator's connection is to another port). The
// decision is made before anything is printed or locked.

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// incChange is a change to nets files alone, ready to apply.
type incChange struct {
	rec     *record
	srcs    []loader.Source
	desired *ruleset.Table // the sets only
	merged  map[string]ruleset.Merged
	plan    *planner.Plan
	patched bool // by the lines that changed; else the sets were made again
	// records are the change's, their files started as soon as the change
	// was known to be incremental.
	records *records
}

// How an incremental change was made, told under its plan.
const (
	patchedNote = "Only nets files changed since: the lines that changed were applied to the sets hostwall recorded, without loading the policy files."
	remadeNote  = "Only nets files changed since: their sets were made again without loading the policy files."
)

func (c *incChange) note() string {
	if c.patched {
		return patchedNote
	}
	return remadeNote
}

// incrementalChange returns the change when the files srcs (readRecordAnd)
// differ from the record's in nets files only, and that change makes sets from their
// recipes; nil otherwise. ssh is the operator's connection
// ($SSH_CONNECTION); unless force, the change must pass the lockout check
// whatever the networks are.
func (e *Engine) incrementalChange(rec *record, srcs []loader.Source, req ApplyRequest) *incChange {
	if rec == nil || rec.inc == nil || !req.Force && !sshSafe(rec.inc, req.SSHConnection) || srcs == nil || len(srcs) != len(rec.inc.Files) {
		return nil
	}
	changed, ok := changedNetsFiles(rec, srcs)
	if !ok || len(changed) == 0 {
		return nil
	}
	records := e.startRecords(srcs, rec.HostName, nil, req) // the generation's files are written while the change is worked out (a configuration with names has no incremental record)
	c := e.patched(rec, changed)
	if c == nil {
		c = remade(rec, srcs, e.o.Limits.WithDefaults().Sharding)
	}
	if c == nil || c.plan.Empty() || !c.plan.ElementsOnly() {
		records.discard()
		return nil // the files changed, the sets did not: the long way records it
	}
	c.rec, c.srcs, c.records = rec, srcs, records
	c.plan.Generation = rec.Generation
	return c
}

// changedNetsFiles returns the sources that differ from the record's; ok
// is false when one of them is not a nets file, or unknown to the record.
func changedNetsFiles(rec *record, srcs []loader.Source) (changed []loader.Source, ok bool) {
	for _, s := range srcs {
		was, known := rec.inc.Files[s.Path]
		switch {
		case !known:
			return nil, false
		case was == loader.SourceSum(s):
		case !slices.Contains(rec.NetsFiles, s.Path):
			return nil, false // a policy file changed
		default:
			changed = append(changed, s)
		}
	}
	return changed, true
}

// patched is the change made by the lines of the changed nets files that
// differ from the current generation's copies of them (loader.ChangedLines),
// applied to the recorded sets (ruleset.Set.Patch); nil when a copy is
// missing, the lines do not parse, or a set cannot be patched.
func (e *Engine) patched(rec *record, changed []loader.Source) *incChange {
	gone, came := map[string][]netip.Prefix{}, map[string][]netip.Prefix{}
	for _, s := range changed {
		old, err := e.store.CurrentFile(s.Path, rec.inc.Files[s.Path])
		if err != nil {
			return nil
		}
		was, now := loader.ChangedLines(old, s.Data)
		var d1, d2 hcl.Diagnostics
		gone[s.Path], d1 = loader.ParseNetsFile(s.Path, was)
		came[s.Path], d2 = loader.ParseNetsFile(s.Path, now)
		if len(d1)+len(d2) > 0 {
			return nil // the remade way finds them, and the long way reports them
		}
	}
	sets := slices.Clone(rec.sets)
	byName := setIndex(sets)
	merged := maps.Clone(rec.inc.Merged)
	var updates []planner.SetDiff
	for i := range rec.inc.Recipes {
		r := rec.inc.Recipes[i]
		r.Fixed = nil // the networks that are not from nets files stay
		removed := r.Elements(func(file string) []netip.Prefix { return gone[file] })
		added := r.Elements(func(file string) []netip.Prefix { return came[file] })
		if len(removed)+len(added) == 0 {
			continue
		}
		rs, ok := findRecorded(sets, byName, r.Set)
		m, known := merged[r.Set]
		if !ok || !known {
			return nil
		}
		out, in, next, ok := rs.patch(sets, r.Set, m, removed, added)
		if !ok {
			return nil
		}
		u, ok := rs.update(sets, r.Set, out, in, e.o.Limits.WithDefaults().Sharding)
		if !ok {
			return nil
		}
		merged[r.Set] = next
		updates = append(updates, u...)
	}
	return &incChange{desired: setsOnly(sets), merged: merged, plan: planner.SetUpdates(updates), patched: true}
}

// remade is the change made by making the recipes' sets again from every
// nets file of srcs, planned against the recorded sets; nil when a nets
// file does not parse cleanly (the long way reports it).
func remade(rec *record, srcs []loader.Source, sh ruleset.Sharding) *incChange {
	nets := map[string][]netip.Prefix{}
	for _, s := range srcs {
		if !slices.Contains(rec.NetsFiles, s.Path) {
			continue
		}
		parsed, diags := loader.ParseNetsFile(s.Path, s.Data)
		if len(diags) > 0 {
			return nil
		}
		nets[s.Path] = parsed
	}
	sets := slices.Clone(rec.sets)
	byName := setIndex(sets)
	merged := map[string]ruleset.Merged{}
	for i := range rec.inc.Recipes {
		r := &rec.inc.Recipes[i]
		rs, ok := findRecorded(sets, byName, r.Set)
		if !ok {
			return nil
		}
		s := ruleset.Set{Name: r.Set, Type: r.Family.AddrType(), Interval: true}
		if rs.at >= 0 {
			s = *sets[rs.at]
		}
		s.Elements = r.Elements(func(file string) []netip.Prefix { return nets[file] })
		merged[r.Set] = s.NormalizeCounting()
		if rs.at >= 0 {
			if sh.Applies(&s) && !keptWhole(sets[rs.at], sh) {
				return nil // to be sharded: the long way
			}
			sets[rs.at] = &s
		} else if _, ok := rs.resplit(sets, &s, sh); !ok {
			return nil
		}
	}
	desired := setsOnly(sets)
	return &incChange{desired: desired, merged: merged, plan: planner.Diff(desired, setsOnly(rec.sets))}
}

func setIndex(sets []*ruleset.Set) map[string]int {
	out := make(map[string]int, len(sets))
	for i, s := range sets {
		out[s.Name] = i
	}
	return out
}

// mergedOf is, by set, what compile's Normalize merged of each recipe's
// set (compile.Recipe.Merged), for the sets desired holds.
func mergedOf(recipes []compile.Recipe, desired *ruleset.Table) map[string]ruleset.Merged {
	out := map[string]ruleset.Merged{}
	byName := setIndex(desired.Sets)
	for _, r := range recipes {
		if _, ok := findRecorded(desired.Sets, byName, r.Set); ok && r.Merged != nil {
			out[r.Set] = r.Merged
		}
	}
	return out
}

// sshFailsafe reports whether failsafe keeps tcp:22 open from anywhere on
// host (noWayIn's first test).
func sshFailsafe(cfg *config.Config, host string) bool {
	for _, e := range cfg.ForHost(host).Failsafe.Inbound {
		if e.Protocol == config.ProtoTCP && e.Port == 22 && !e.Net.IsValid() {
			return true
		}
	}
	return false
}

// sshSafe reports whether the lockout check would pass whatever the
// networks: failsafe keeps tcp:22 open, and the operator's connection ssh
// ($SSH_CONNECTION), if any, is to port 22.
func sshSafe(inc *incremental, ssh string) bool {
	if !inc.SSHFailsafe {
		return false
	}
	if ssh == "" {
		return true
	}
	f := strings.Fields(ssh)
	return len(f) == 4 && f[3] == "22"
}

// stageRecord makes the verified record of the change once applied: the
// record's, with the files and sets of the change, rendered as r.
func (c *incChange) stageRecord(e *Engine, ns state.Namespace, r rendering) (*stagedRecord, error) {
	inc := *c.rec.inc
	inc.Files, inc.Merged = map[string]string{}, c.merged
	for _, s := range c.srcs {
		inc.Files[s.Path] = loader.SourceSum(s)
	}
	v := *c.rec.Verified
	v.ConfigHash, v.Ruleset = loader.HashSources(c.srcs), r.hash
	return e.stageRecord(ns, &v, recordBase{Sets: c.desired.Sets, Inc: &inc})
}
