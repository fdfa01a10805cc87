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
// recipes name change. The apply then parses the nets files, makes those
// sets from their recipes, and plans their elements against the recorded
// sets, as planFromVerified would after a full load and compile.
//
// Anything else applies the long way: a policy file or the list of nets
// files changed, a nets file does not parse cleanly (the long way reports
// it), the kernel moved, --refresh, a saved plan, a trial, or a lockout
// check that would have to look at the networks (failsafe does not keep
// tcp:22 open, or $SSH_CONNECTION names another port). The decision is
// made before anything is printed or taken, so the long way starts afresh.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/bincodec"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// incrementalNote tells, under the plan, that the apply is incremental.
const incrementalNote = "(Only nets files changed since: their sets were made again without loading the policy files.)"

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
}

// incrementalOf returns a function making the incremental record of the
// configuration desired() compiled last, from res for host (with the
// chains' text to fill in); nil when no set is drawn from a nets file. The
// recipes and warnings are taken now, the files hashed when it is called.
func (g *globals) incrementalOf(res *loader.Result, host string) func(chains string) *incremental {
	if len(g.recipes) == 0 {
		return nil
	}
	recipes, warnings, ssh := g.recipes, g.warnings, sshFailsafe(res.Config, host)
	return func(chains string) *incremental {
		inc := &incremental{Files: map[string]string{}, Recipes: recipes, Chains: chains, Warnings: warnings, SSHFailsafe: ssh}
		for _, s := range res.Sources {
			inc.Files[s.Path] = fileSum(s.Data)
		}
		return inc
	}
}

func fileSum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
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
	plan    *planner.Plan
}

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
	fmt.Fprintln(out, incrementalNote)
	if !f.autoApprove && !confirm(out, in) {
		fmt.Fprintln(out, "\nApply cancelled. Nothing was changed.")
		return true, &exitError{code: 1}
	}
	host := c.rec.HostName
	rendered := async(func() (string, error) { return c.desired.StringWithChains(c.rec.inc.Chains), nil })
	gen := func() *state.Generation {
		text, _ := rendered.get()
		gen := &state.Generation{Time: time.Now(), UID: os.Getuid(), SSHConnection: os.Getenv("SSH_CONNECTION"),
			HostName: host, NetNS: g.netns, ConfigDir: g.configDir, Reason: reasonFor(f), Ruleset: text}
		for _, s := range c.srcs {
			gen.Files = append(gen.Files, state.File{Path: s.Path, Data: s.Data})
		}
		return gen
	}
	// The verified record is made beside the commit, as the long way's.
	inc := *c.rec.inc
	inc.Files = map[string]string{}
	made := async(func() (verifiedNote, error) {
		for _, s := range c.srcs {
			inc.Files[s.Path] = fileSum(s.Data)
		}
		v := *c.rec.Verified
		v.ConfigHash = loader.HashSources(c.srcs)
		text, _ := rendered.get()
		v.Ruleset = state.HashRuleset(text)
		base, err := bincodec.Marshal(verifiedBase{Sets: c.desired.Sets, Inc: &inc})
		return verifiedNote{&v, base}, err
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
			made = g.verifiedOf(fullRes, full, host)
			return agent.Apply(ctx, conn, full, c.plan, nft.IsGenerationChanged, agent.ByGeneration)
		},
		func(verified uint32) { g.noteVerified(made, verified) })
	if err != nil {
		return true, err
	}
	fmt.Fprintf(out, "\n%s Generation %d.\n", views.ApplySummary(applied), recorded.Number)
	return true, nil
}

// incrementalChange returns the change when the files differ from the
// verified record's in nets files only, and that change makes sets from
// their recipes; nil otherwise.
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
	changed := false
	nets := map[string][]netip.Prefix{}
	for _, s := range srcs {
		was, ok := rec.inc.Files[s.Path]
		switch {
		case !ok:
			return nil // a file the record does not know
		case was == fileSum(s.Data):
			if !isNets[s.Path] {
				continue
			}
		case !isNets[s.Path]:
			return nil // a policy file changed
		default:
			changed = true
		}
		parsed, diags := loader.ParseNetsFile(s.Path, s.Data)
		if len(diags) > 0 {
			return nil // the long way reports them
		}
		nets[s.Path] = parsed
	}
	if !changed {
		return nil
	}
	sets := make([]*ruleset.Set, len(rec.sets))
	copy(sets, rec.sets)
	byName := map[string]int{}
	for i, s := range sets {
		byName[s.Name] = i
	}
	for i := range rec.inc.Recipes {
		r := &rec.inc.Recipes[i]
		at, ok := byName[r.Set]
		if !ok {
			return nil
		}
		s := *sets[at]
		s.Elements = r.Elements(func(file string) []netip.Prefix { return nets[file] })
		s.Normalize()
		sets[at] = &s
	}
	desired := ruleset.NewTable()
	desired.Sets = sets
	base := ruleset.NewTable()
	base.Sets = rec.sets
	p := planner.Diff(desired, base)
	if p.Empty() {
		return nil // the files changed, the sets did not: the long way records it
	}
	for _, ch := range p.Changes {
		if ch.Set == nil || ch.Action != planner.Update {
			return nil
		}
	}
	p.Generation = rec.Generation
	return &incrementalChange{rec: rec, srcs: srcs, desired: desired, plan: p}
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
