package main

// An incremental apply: a change to nets files alone, applied without
// loading the policy files or compiling them.
//
// A blocklist changes daily; the policies beside it do not. The last full
// apply (or plan) recorded, with the verified record, how each set drawn
// from nets files is made (compile.Recipe), the text of the chains, the
// warnings it printed and the hash of every file it read. When the kernel
// is still at the recorded generation and every policy file is as
// recorded, the configuration differs from the recorded one only in the
// networks of nets files — so the chains are the recorded ones (they never
// depend on a set's elements, TestRecipesRemake) and only the sets the
// recipes name change, and the plan is their elements against the
// recorded sets, as planFromVerified would make it after a full load and
// compile. That plan is worked out one of two ways:
//
//   - patched: from the lines of each changed nets file that differ from
//     the current generation's copy of it (loader.ChangedLines), applied to
//     the recorded sets (ruleset.Set.Patch) — microseconds for the few
//     lines a blocklist changes by, where making a 100,000-network set
//     again costs ~10 ms. Taking a network away is only sound when it was
//     an element by itself, which the record's Merged tells.
//   - remade: otherwise (no such copy, a network merged with others taken
//     away), the nets files are parsed whole and the recipes' sets made
//     again.
//
// Anything else applies the long way: a policy file or the list of nets
// files changed, a nets file does not parse cleanly (the long way reports
// it), the kernel moved, --refresh, a saved plan, a trial, or a lockout
// check that would have to look at the networks (failsafe does not keep
// tcp:22 open, or $SSH_CONNECTION names another port). The decision is
// made before anything is printed or taken, so the long way starts afresh.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// incremental is what the verified record keeps for an incremental apply.
type incremental struct {
	// Files are the SHA-256 of every file the configuration was read from,
	// by path.
	Files   map[string]string
	Recipes []compile.Recipe
	// Chains is the rendering's chains (ruleset.Table.ChainsText).
	Chains string
	// Warnings are the load's and compile's diagnostics, as printed.
	Warnings []string
	// SSHFailsafe: failsafe keeps tcp:22 open from anywhere on this host,
	// so the lockout check passes whatever the networks are.
	SSHFailsafe bool
	// Merged is, by set, what Normalize merged of the networks its recipe
	// made (ruleset.Merged): what changing the set by the lines of its nets
	// files that changed needs. A set it lacks is made again from its recipe.
	Merged map[string]ruleset.Merged
}

// incrementalOf returns a function making the incremental record of the
// configuration desired() compiled last, from res for host (with the table
// compiled and its chains' text to fill in); nil when no set is drawn from
// a nets file. The recipes and warnings are taken now, the rest when it is
// called (on the records' goroutine: counting what the sets merged costs
// W1 ~8 ms there).
func (g *globals) incrementalOf(res *loader.Result, host string) func(desired *ruleset.Table, chains string) *incremental {
	if len(g.recipes) == 0 {
		return nil
	}
	recipes, warnings, ssh := g.recipes, g.warnings, sshFailsafe(res.Config, host)
	return func(desired *ruleset.Table, chains string) *incremental {
		inc := &incremental{Files: map[string]string{}, Recipes: recipes, Chains: chains, Warnings: warnings, SSHFailsafe: ssh,
			Merged: mergedOf(recipes, res.Config, desired)}
		for _, s := range res.Sources {
			inc.Files[s.Path] = loader.SourceSum(s)
		}
		return inc
	}
}

// mergedOf makes each recipe's set again from the networks of cfg, counting
// what Normalize merges, for the sets that come out as desired holds them
// (always, unless compile and the recipe disagree — then the set is made
// again from its recipe when it changes).
func mergedOf(recipes []compile.Recipe, cfg *config.Config, desired *ruleset.Table) map[string]ruleset.Merged {
	fileNets := map[string][]netip.Prefix{}
	for _, ns := range cfg.NetworkSets {
		if ns.NetsFile != "" {
			fileNets[ns.NetsFile] = ns.Nets[ns.InlineNets:]
		}
	}
	out := map[string]ruleset.Merged{}
	for i := range recipes {
		want := desired.Set(recipes[i].Set)
		if want == nil {
			continue
		}
		s := *want
		s.Elements = recipes[i].Elements(func(file string) []netip.Prefix { return fileNets[file] })
		if merged := s.NormalizeCounting(); slices.EqualFunc(s.Elements, want.Elements, ruleset.Element.Equal) {
			out[s.Name] = merged
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

// incrementalChange is a change to nets files alone, ready to apply.
type incrementalChange struct {
	rec     *record
	srcs    []loader.Source
	desired *ruleset.Table // the sets only
	merged  map[string]ruleset.Merged
	plan    *planner.Plan
	note    string // how it was made (patchedNote, remadeNote)
}

// How an incremental change was made, told under its plan.
const (
	patchedNote = "(Only nets files changed since: the lines that changed were applied to the sets hostwall recorded, without loading the policy files.)"
	remadeNote  = "(Only nets files changed since: their sets were made again without loading the policy files.)"
)

// incrementalApply applies a change to nets files alone, when it is one
// (see the top of this file); handled is false when the apply must be
// made the long way, and then nothing was printed or changed.
func (g *globals) incrementalApply(ctx context.Context, out io.Writer, in io.Reader, f *applyFlags, planFile string) (handled bool, err error) {
	if planFile != "" || f.refresh || f.confirmTimeout > 0 {
		return false, nil
	}
	c := g.incrementalChange(f.force)
	if c == nil {
		return false, nil
	}
	lock, err := g.lock()
	if err != nil {
		return false, nil
	}
	defer lock.Release()
	if t, _ := g.run().ReadTrial(g.netns); t != nil {
		return false, nil
	}
	conn, err := g.open()
	if err != nil {
		return false, nil
	}
	defer conn.Close()
	if gen, err := conn.Generation(); err != nil || gen != c.rec.Generation {
		return false, nil
	}

	// From here on as the long way's apply, which planFromVerified would
	// have planned the same.
	for _, w := range c.rec.inc.Warnings {
		fmt.Fprintln(os.Stderr, w)
	}
	views.PlanHuman(out, c.plan, g.style(os.Stdout))
	fromRecordNote(out, c.plan.Generation)
	fmt.Fprintln(out, c.note)
	if !f.autoApprove && !confirm(out, in) {
		fmt.Fprintln(out, "\nApply cancelled. Nothing was changed.")
		return true, &exitError{code: 1}
	}
	host := c.rec.HostName
	rendered := async(func() (string, error) { return c.desired.StringWithChains(c.rec.inc.Chains), nil })
	hashed := async(func() (string, error) {
		text, _ := rendered.get()
		return state.HashRuleset(text), nil
	})
	gen := func() *state.Generation {
		text, _ := rendered.get()
		sum, _ := hashed.get()
		gen := &state.Generation{Time: time.Now(), UID: os.Getuid(), SSHConnection: os.Getenv("SSH_CONNECTION"),
			HostName: host, NetNS: g.netns, ConfigDir: g.configDir, Reason: reasonFor(f), Ruleset: text, RulesetHash: sum}
		for _, s := range c.srcs {
			gen.Files = append(gen.Files, state.File{Path: s.Path, Data: s.Data, SHA256: s.SHA256})
		}
		return gen
	}
	// The verified record is made beside the commit, as the long way's.
	inc := *c.rec.inc
	inc.Files, inc.Merged = map[string]string{}, c.merged
	made := async(func() (verifiedNote, error) {
		for _, s := range c.srcs {
			inc.Files[s.Path] = loader.SourceSum(s)
		}
		v := *c.rec.Verified
		v.ConfigHash = loader.HashSources(c.srcs)
		v.Ruleset, _ = hashed.get()
		return g.verifiedNote(&v, verifiedBase{Sets: c.desired.Sets, Inc: &inc})
	})
	// When someone else commits between the check and the batch, the long
	// way takes over: the configuration loaded and compiled (its warnings
	// are printed already), and agent.Apply plans again against the kernel.
	var full *ruleset.Table
	var fullRes *loader.Result
	applied, recorded, err := g.commitPlan(gen,
		func() (*planner.Plan, uint32, error) {
			verified, err := conn.Apply(ctx, c.plan, c.plan.Generation)
			if !nft.IsGenerationChanged(err) {
				return c.plan, verified, err
			}
			if full, fullRes, err = g.compiled(false); err != nil {
				return nil, 0, err
			}
			g.discardVerified(made)
			made = g.verifiedOf(fullRes, full, host)
			return agent.Apply(ctx, conn, full, c.plan, nft.IsGenerationChanged, agent.ByGeneration)
		},
		func(verified uint32) { g.noteVerified(made, verified) })
	if err != nil {
		g.discardVerified(made)
		return true, err
	}
	fmt.Fprintf(out, "\n%s Generation %d.\n", views.ApplySummary(applied), recorded.Number)
	return true, nil
}

// incrementalChange returns the change when the files differ from the
// verified record's in nets files only, and that change makes sets from
// their recipes; nil otherwise. It is worked out from the lines of the nets
// files that changed when the current generation holds the files as they
// were (patched), and by making the sets again from all of the nets files
// otherwise (remade).
func (g *globals) incrementalChange(force bool) *incrementalChange {
	rec, _ := g.verifiedRecord().get()
	if rec == nil || rec.inc == nil {
		return nil
	}
	if !force && !sshSafe(rec.inc) {
		return nil
	}
	srcs, err := g.readSources(rec.NetsFiles)
	if err != nil || len(srcs) != len(rec.inc.Files) {
		return nil
	}
	isNets := map[string]bool{}
	for _, p := range rec.NetsFiles {
		isNets[p] = true
	}
	var changed []loader.Source
	for _, s := range srcs {
		was, ok := rec.inc.Files[s.Path]
		switch {
		case !ok:
			return nil // a file the record does not know
		case was == loader.SourceSum(s):
		case !isNets[s.Path]:
			return nil // a policy file changed
		default:
			changed = append(changed, s)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	c := g.patched(rec, changed)
	if c == nil {
		c = remade(rec, srcs, isNets)
	}
	if c == nil || c.plan.Empty() {
		return nil // the files changed, the sets did not: the long way records it
	}
	if !c.plan.ElementsOnly() {
		return nil
	}
	c.rec, c.srcs = rec, srcs
	c.plan.Generation = rec.Generation
	return c
}

// patched is the change made by the lines of the changed nets files that
// differ from the current generation's copies of them (loader.ChangedLines),
// applied to the recorded sets (ruleset.Set.Patch); nil when a copy is
// missing, the lines do not parse, or a set cannot be patched.
func (g *globals) patched(rec *record, changed []loader.Source) *incrementalChange {
	gone, came := map[string][]netip.Prefix{}, map[string][]netip.Prefix{}
	for _, s := range changed {
		old, err := g.store().CurrentFile(s.Path, rec.inc.Files[s.Path])
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
	byName := map[string]int{}
	for i, s := range sets {
		byName[s.Name] = i
	}
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
		at, ok := byName[r.Set]
		m, known := merged[r.Set]
		if !ok || !known {
			return nil
		}
		before := sets[at]
		out, in, next, ok := before.Patch(m, removed, added)
		if !ok {
			return nil
		}
		after := *before
		after.Elements = ruleset.ApplyPatch(before.Elements, out, in)
		sets[at], merged[r.Set] = &after, next
		updates = append(updates, planner.SetDiff{Before: before, After: &after, Added: in, Removed: out})
	}
	desired := ruleset.NewTable()
	desired.Sets = sets
	return &incrementalChange{desired: desired, merged: merged, plan: planner.SetUpdates(updates), note: patchedNote}
}

// remade is the change made by making the recipes' sets again from every
// nets file (srcs), planned against the recorded sets; nil when a nets file
// does not parse cleanly (the long way reports it).
func remade(rec *record, srcs []loader.Source, isNets map[string]bool) *incrementalChange {
	nets := map[string][]netip.Prefix{}
	for _, s := range srcs {
		if !isNets[s.Path] {
			continue
		}
		parsed, diags := loader.ParseNetsFile(s.Path, s.Data)
		if len(diags) > 0 {
			return nil
		}
		nets[s.Path] = parsed
	}
	sets := slices.Clone(rec.sets)
	byName := map[string]int{}
	for i, s := range sets {
		byName[s.Name] = i
	}
	merged := map[string]ruleset.Merged{}
	for i := range rec.inc.Recipes {
		r := &rec.inc.Recipes[i]
		at, ok := byName[r.Set]
		if !ok {
			return nil
		}
		s := *sets[at]
		s.Elements = r.Elements(func(file string) []netip.Prefix { return nets[file] })
		merged[r.Set] = s.NormalizeCounting()
		sets[at] = &s
	}
	desired := ruleset.NewTable()
	desired.Sets = sets
	base := ruleset.NewTable()
	base.Sets = rec.sets
	return &incrementalChange{desired: desired, merged: merged, plan: planner.Diff(desired, base), note: remadeNote}
}

// sshSafe reports whether the lockout check would pass whatever the
// networks: failsafe keeps tcp:22 open, and the operator's connection, if
// any, is to port 22.
func sshSafe(inc *incremental) bool {
	if !inc.SSHFailsafe {
		return false
	}
	sc := os.Getenv("SSH_CONNECTION")
	if sc == "" {
		return true
	}
	f := strings.Fields(sc)
	return len(f) == 4 && f[3] == "22"
}
