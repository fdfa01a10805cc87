package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// exitRolledBack is the exit code of a trial that was rolled back.
const exitRolledBack = 3

// exitStalePlan is apply's exit code for a saved plan that no longer
// matches the configuration or the kernel: plan again (Ansible does).
const exitStalePlan = 4

type applyFlags struct {
	autoApprove    bool
	force          bool
	confirmTimeout time.Duration
	wait           bool
	refresh        bool
}

func newApplyCmd(g *globals) *cobra.Command {
	f := &applyFlags{}
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE]",
		Short: "Plan, confirm and commit the change as one atomic transaction",
		Long: `apply plans as plan does, shows the plan, asks for "yes" (--auto-approve
skips the question) and commits the whole plan in one netlink transaction:
either all of it reaches the kernel or none of it. It then reads the table
back, reports success only when the kernel holds exactly the configuration,
and records the result as a new generation (hostwall generations).

Before applying, when SSH_CONNECTION is set, it evaluates a new connection
from that client to that server address and port under the new
configuration and refuses if it would be dropped; it also refuses a
configuration with no failsafe SSH port where nothing allows SSH. --force
overrides both.

With --confirm-timeout DUR (the default, 2m, when stdin is a terminal; 0
turns it off) the change is a trial: unless "hostwall confirm" arrives
within DUR, a guard process restores the previous generation. The guard is
detached from the terminal, so it acts even if your SSH session dies.
Confirm from a NEW connection: the session you applied from survives on
connection tracking and proves nothing. Exit code 3 means the trial was
rolled back.

With PLANFILE (from plan -o) it applies exactly that plan, and refuses with
exit code 4 if the configuration or the kernel's ruleset changed since the
plan was made.

When nothing changed since hostwall last verified the kernel — the files,
the kernel's ruleset generation, and the current generation holding this
very ruleset — apply says so as plan does, without loading or committing.
When only nets_file lists changed since hostwall last verified the kernel
(whose ruleset has not moved since) and failsafe keeps tcp:22 open, apply
does not load the policy files: it applies the lines that changed (against
the current generation's copy of each list) to the sets it recorded then,
or, when it cannot vouch for that, remakes only the sets those lists feed,
and says which under the plan. --refresh, a trial or a PLANFILE always take
the long way.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			interactive := term.IsTerminal(int(os.Stdin.Fd()))
			if !cmd.Flags().Changed("confirm-timeout") && os.Getenv("HOSTWALL_CONFIRM_TIMEOUT") == "" && interactive {
				f.confirmTimeout = 2 * time.Minute
			}
			if !cmd.Flags().Changed("wait") && os.Getenv("HOSTWALL_WAIT") == "" {
				f.wait = interactive
			}
			planFile := ""
			if len(args) == 1 {
				planFile = args[0]
			}
			return g.apply(cmd.Context(), cmd.OutOrStdout(), cmd.InOrStdin(), f, planFile)
		},
	}
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	cmd.Flags().BoolVar(&f.force, "force", false, "apply even if the lockout check refuses")
	cmd.Flags().DurationVar(&f.confirmTimeout, "confirm-timeout", 0, "apply on trial: roll back unless confirmed within `DUR` (default 2m on a terminal, 0 turns it off)")
	cmd.Flags().BoolVar(&f.refresh, "refresh", false, "read the kernel before planning even when the last verified state stands in for it (see plan)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "after a trial apply, wait for the outcome: exit 0 confirmed, 3 rolled back (default on a terminal)")
	return cmd
}

func (g *globals) apply(ctx context.Context, out io.Writer, in io.Reader, f *applyFlags, planFile string) error {
	if !f.refresh {
		g.verifiedRecord() // read while the files are read or loaded
		if planFile == "" && f.confirmTimeout == 0 {
			if done, err := g.applyUnchanged(out); done {
				return err
			}
		}
		if handled, err := g.incrementalApply(ctx, out, in, f, planFile); handled {
			return err
		}
	}
	desired, res, err := g.desired()
	if err != nil {
		return err
	}
	g.ahead(desired) // its records, on the other core while this plans and commits
	host := g.effectiveHostName(res)
	if !f.force {
		if err := g.lockoutCheck(res, host, out); err != nil {
			return err
		}
	}
	lock, err := g.lock()
	if err != nil {
		return err
	}
	defer lock.Release()
	if t, _ := g.run().ReadTrial(g.netns); t != nil {
		return fmt.Errorf("generation %d is on trial until %s; hostwall confirm it (or wait for the rollback) before applying again",
			t.Generation, t.Deadline.Format(time.TimeOnly))
	}
	conn, err := g.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	p, fromRecord, err := g.planOn(ctx, conn, desired, f.refresh)
	if err != nil {
		return err
	}
	if planFile != "" {
		if err := checkSavedPlan(planFile, g, res, p); err != nil {
			return err
		}
	}
	views.PlanHuman(out, p, g.style(os.Stdout))
	if fromRecord {
		fromRecordNote(out, p.Generation)
	}
	if p.Empty() && f.confirmTimeout == 0 {
		g.recordVerified(res, desired, host, p.Generation)
		return g.recordIfNew(res, desired, host)
	}
	if !f.autoApprove && planFile == "" && !confirm(out, in) {
		fmt.Fprintln(out, "\nApply cancelled. Nothing was changed.")
		return &exitError{code: 1}
	}
	store := g.store()
	previous, err := store.Current()
	if err != nil {
		return err
	}
	if f.confirmTimeout > 0 && previous == 0 {
		if live, _, err := conn.Read(ctx); err != nil {
			return err
		} else if live != nil {
			return fmt.Errorf("no recorded generation to return to, and table inet hostwall exists: apply once without --confirm-timeout (or with --confirm-timeout 0), then use trials")
		}
	}
	made := g.verifiedOf(res, desired, host)
	applied, gen, err := g.commitPlan(func() *state.Generation { return g.generation(res, desired, host, reasonFor(f)) },
		func() (*planner.Plan, uint32, error) {
			return agent.Apply(ctx, conn, desired, p, nft.IsGenerationChanged, agent.ByGeneration)
		},
		func(verified uint32) { g.noteVerified(made, verified) })
	if err != nil {
		g.discardVerified(made)
		return err
	}
	fmt.Fprintf(out, "\n%s Generation %d.\n", views.ApplySummary(applied), gen.Number)
	if f.confirmTimeout == 0 {
		return nil
	}
	return g.startTrial(ctx, out, gen, previous, host, f.confirmTimeout, f.wait, lock.Release)
}

// commitPlan commits a plan by apply, which returns the plan applied and
// the kernel's generation after it, and records gen() as the next
// generation and the verified state by note. The generation is made
// (rendered) and written while the kernel commits, and made one after
// (under the lock held since planning); the verified record is written
// beside it.
func (g *globals) commitPlan(gen func() *state.Generation, apply func() (*planner.Plan, uint32, error), note func(verified uint32)) (*planner.Plan, *state.Generation, error) {
	store := g.store()
	prepared := async(func() (*state.Pending, error) { return store.Prepare(gen()) })
	applied, verified, err := apply()
	pending, perr := prepared.get()
	if err != nil {
		if pending != nil {
			pending.Abort()
		}
		return nil, nil, fmt.Errorf("apply failed; the kernel keeps the ruleset it had: %w", err)
	}
	noted := async(func() (struct{}, error) {
		note(verified)
		return struct{}{}, nil
	})
	if perr == nil {
		if perr = pending.Commit(); perr != nil {
			pending.Abort()
		}
	}
	noted.get()
	if perr != nil {
		return nil, nil, fmt.Errorf("applied, but recording the generation failed: %w", perr)
	}
	return applied, pending.Generation(), nil
}

func reasonFor(f *applyFlags) string {
	if f.confirmTimeout > 0 {
		return "apply (trial)"
	}
	return "apply"
}

// record stores the applied configuration as a new generation.
func (g *globals) record(res *loader.Result, desired *ruleset.Table, host, reason string) (*state.Generation, error) {
	gen := g.generation(res, desired, host, reason)
	return gen, g.store().Record(gen)
}

// generation is the record of applying desired, compiled from res.
func (g *globals) generation(res *loader.Result, desired *ruleset.Table, host, reason string) *state.Generation {
	gen := &state.Generation{
		Time: time.Now(), UID: os.Getuid(), SSHConnection: os.Getenv("SSH_CONNECTION"),
		HostName: host, NetNS: g.netns, ConfigDir: g.configDir, Reason: reason, Ruleset: g.rendered(desired), RulesetHash: g.rulesetHash(desired),
	}
	for _, s := range res.Sources {
		gen.Files = append(gen.Files, state.File{Path: s.Path, Data: s.Data, SHA256: s.SHA256})
	}
	return gen
}

// recordIfNew records a generation when the kernel already matches a
// configuration that none records (no changes to apply, but the state dir
// is new or the files changed without changing the ruleset).
func (g *globals) recordIfNew(res *loader.Result, desired *ruleset.Table, host string) error {
	store := g.store()
	cur, err := store.Current()
	if err != nil {
		return err
	}
	if cur > 0 {
		if prev, err := store.Load(cur); err == nil && prev.RulesetHash == g.rulesetHash(desired) {
			return nil
		}
	}
	_, err = g.record(res, desired, host, "apply (no kernel change)")
	return err
}

// confirm asks for "yes", as Terraform does.
func confirm(out io.Writer, in io.Reader) bool {
	fmt.Fprint(out, "\nDo you want to apply these changes?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

// checkSavedPlan refuses a saved plan made against another configuration
// or kernel state, and otherwise checks that planning now gives exactly it.
func checkSavedPlan(path string, g *globals, res *loader.Result, now *planner.Plan) error {
	saved, err := readSavedPlan(path)
	if err != nil {
		return err
	}
	stale := func(format string, args ...any) error {
		return &exitError{code: exitStalePlan, err: fmt.Errorf("plan is stale: "+format, args...)}
	}
	switch {
	case saved.NetNS != g.netns:
		return stale("%s was made for network namespace %q, not %q", path, saved.NetNS, g.netns)
	case saved.ConfigHash != loader.HashSources(res.Sources):
		return stale("the configuration in %s changed since %s was made; plan again", g.configDir, path)
	case saved.Plan.Generation != now.Generation:
		return stale("the kernel's ruleset changed since %s was made (generation %d, now %d); plan again",
			path, saved.Plan.Generation, now.Generation)
	}
	if !samePlan(saved.Plan, now.JSON()) {
		return stale("planning now does not give %s; plan again", path)
	}
	return nil
}
