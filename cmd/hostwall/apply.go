package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/views"
)

// Exit codes besides 0, 1 and plan's 2 (DESIGN §10).
const (
	// exitRolledBack: the trial was rolled back.
	exitRolledBack = 3
	// exitStalePlan: a saved plan no longer matches the configuration or
	// the kernel; plan again (Ansible does).
	exitStalePlan = 4
)

// changeFlags are the flags of the commands that change the kernel.
type changeFlags struct {
	autoApprove    bool
	force          bool
	confirmTimeout time.Duration
	wait           bool
	refresh        bool
}

func (f *changeFlags) add(cmd *cobra.Command, force string) {
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	cmd.Flags().BoolVar(&f.force, "force", false, force)
	cmd.Flags().DurationVar(&f.confirmTimeout, "confirm-timeout", 0, "apply on trial: roll back unless confirmed within `DUR` (default 2m on a terminal, 0 turns it off)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "after a trial apply, wait for the outcome: exit 0 confirmed, 3 rolled back (default on a terminal)")
}

// defaults sets what a terminal implies: a trial of 2m, and waiting for it.
func (f *changeFlags) defaults(cmd *cobra.Command) {
	interactive := term.IsTerminal(int(os.Stdin.Fd()))
	if !cmd.Flags().Changed("confirm-timeout") && interactive {
		f.confirmTimeout = 2 * time.Minute
	}
	if !cmd.Flags().Changed("wait") {
		f.wait = interactive
	}
}

func newApplyCmd(g *globals) *cobra.Command {
	f := &changeFlags{}
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE]",
		Short: "Plan, confirm and commit the change as one atomic transaction",
		Long: `apply plans as plan does, shows the plan, asks for "yes" (--auto-approve
skips the question) and commits the whole plan in one netlink transaction:
either all of it reaches the kernel or none of it. Before the kernel sees
the change, the new generation (hostwall generations) is written to disk;
if it cannot be, nothing is applied. apply reports success only once the
kernel is known to hold exactly the configuration: by its ruleset
generation, one commit on from the one planned against, or by reading the
table back.

Before applying, when SSH_CONNECTION is set, it evaluates a new connection
from that client to that server address and port under the new
configuration and refuses if it would be dropped; it also refuses a
configuration with no failsafe SSH port where nothing allows SSH (unless
the configuration sets lockout_check = false). --force overrides both.

With --confirm-timeout DUR (the default, 2m, when stdin is a terminal; 0
turns it off) the change is a trial: unless "hostwall confirm" arrives
within DUR, a guard process restores the previous generation. The guard is
started, and holds the previous ruleset, before the change reaches the
kernel; it is detached from the terminal, so it acts even if your SSH
session dies. Confirm from a NEW connection: the session you applied from
survives on connection tracking and proves nothing. Exit code 3 means the
trial was rolled back. Once the change is on its way, Ctrl-C, SIGHUP and
SIGTERM no longer stop it: it finishes and records its outcome.

With PLANFILE (from plan -o) it applies exactly that plan, and refuses with
exit code 4 if the configuration or the kernel's ruleset changed since the
plan was made.

When nothing changed since hostwall last verified the kernel — the files,
the kernel's ruleset generation, and the current generation holding these
files and this ruleset — apply says so as plan does, without loading or
committing. When only nets_file lists changed since hostwall last verified
the kernel (whose ruleset has not moved since) and failsafe keeps tcp:22
open, apply does not load the policy files: it applies the lines that
changed (against the current generation's copy of each list) to the sets it
recorded then, or, when it cannot vouch for that, remakes only the sets
those lists feed, and says which under the plan. --refresh, a trial or a
PLANFILE always take the long way.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.defaults(cmd)
			req := engine.ApplyRequest{Reason: "apply", Explicit: true, Refresh: f.refresh}
			if len(args) == 1 {
				saved, err := engine.ReadSavedPlan(args[0])
				if err != nil {
					return err
				}
				req.Saved = saved
				f.autoApprove = true // the plan was approved when it was saved
			}
			return g.change(cmd, f, req)
		},
	}
	f.add(cmd, "apply even if the lockout check refuses")
	cmd.Flags().BoolVar(&f.refresh, "refresh", false, "read the kernel before planning even when the last verified state stands in for it (see plan)")
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	f := &changeFlags{}
	cmd := &cobra.Command{
		Use:   "rollback [N]",
		Short: "Apply generation N again (default: the one before the current)",
		Long: `rollback applies a recorded generation again, as apply applies the files:
it plans generation N against the kernel, shows the plan, asks for "yes"
(--auto-approve skips the question), runs the lockout check against the
generation's configuration, and commits in one transaction; with
--confirm-timeout (the default, 2m, on a terminal) it is a trial like any
apply. The generation becomes current again; no new generation is made.

N defaults to the newest generation before the current one that is intact.

During a trial, rollback ends the trial at once, as its deadline would: N
defaults to the generation the trial returns to (another N is restored
instead), and the rollback is not itself on trial. It is also the way out
of a trial that is past its deadline and could not be rolled back (status
says why).

A damaged generation (its record or a file not as recorded) is never
applied. One whose files compile differently with this version of
hostwall than when it was applied needs --force, which also skips the
lockout check. rollback 0 removes table inet hostwall: no firewall.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.defaults(cmd)
			e, closeKernel, err := g.committingEngine()
			if err != nil {
				return err
			}
			defer closeKernel()
			n, err := rollbackTarget(e, args)
			if err != nil {
				return err
			}
			return g.changeWith(cmd, e, f, engine.ApplyRequest{Rollback: &n, Explicit: true})
		},
	}
	f.add(cmd, "roll back even to a generation that compiles differently with this version, and skip the lockout check")
	return cmd
}

func rollbackTarget(e *engine.Engine, args []string) (int, error) {
	if len(args) == 0 {
		return e.RollbackTarget()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a generation number (hostwall generations lists them)", args[0])
	}
	return n, nil
}

// change runs req on the namespace's engine.
func (g *globals) change(cmd *cobra.Command, f *changeFlags, req engine.ApplyRequest) error {
	e, closeKernel, err := g.committingEngine()
	if err != nil {
		return err
	}
	defer closeKernel()
	return g.changeWith(cmd, e, f, req)
}

// changeWith shows, asks, applies req and, for a trial, tells the operator
// what to do and waits for the outcome when asked to.
func (g *globals) changeWith(cmd *cobra.Command, e *engine.Engine, f *changeFlags, req engine.ApplyRequest) error {
	ctx, stop := signalled(cmd.Context())
	defer stop()
	out := cmd.OutOrStdout()
	req.Force, req.Trial, req.SSHConnection = f.force, f.confirmTimeout, os.Getenv("SSH_CONNECTION")
	req.Show = func(p *engine.Preview) {
		warn(p.Warnings)
		if p.Rollback != nil {
			fmt.Fprintf(out, "Rolling back to generation %d.\n\n", *p.Rollback)
		}
		views.PlanHuman(out, p.Plan, g.style(os.Stdout))
		notes(out, p.Notes)
	}
	if !f.autoApprove {
		req.Approve = func(ctx context.Context) (bool, error) { return confirm(ctx, out, cmd.InOrStdin()) }
	}
	req.Arm = func(ctx context.Context, t *engine.Trial) (int, error) { return g.spawnGuard(e, t) }
	res, err := e.Apply(ctx, req)
	if errors.Is(err, engine.ErrCancelled) {
		fmt.Fprintln(out, "\nApply cancelled. Nothing was changed.")
		return &exitError{code: 1}
	}
	if err != nil {
		return failed(err)
	}
	if res.Plan != nil {
		fmt.Fprintf(out, "\n%s Generation %d.\n", views.ApplySummary(res.Plan), res.Generation)
	}
	if o := res.EndedTrial; o != nil {
		fmt.Fprintf(out, "\nThe trial of generation %d is over: %s.\n", o.Generation, o.Detail)
	}
	if res.Trial == nil {
		return nil
	}
	trialMessage(out, res.Trial)
	if !f.wait {
		return nil
	}
	fmt.Fprintln(out, "\nWaiting for the outcome (Ctrl-C stops waiting; the trial goes on)…")
	o, err := e.WaitTrial(ctx, res.Trial)
	if err != nil {
		return err
	}
	return outcome(out, o)
}

// confirm asks for "yes", as Terraform does; a cancelled ctx (Ctrl-C, a
// dropped session) is a no.
func confirm(ctx context.Context, out io.Writer, in io.Reader) (bool, error) {
	fmt.Fprint(out, "\nDo you want to apply these changes?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- line
	}()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case line := <-answer:
		return strings.TrimSpace(line) == "yes", nil
	}
}

func trialMessage(out io.Writer, t *engine.Trial) {
	back := fmt.Sprintf("generation %d", t.Previous)
	if t.Previous == 0 {
		back = "no firewall (table inet hostwall removed)"
	}
	fmt.Fprintf(out, `
Generation %d is on TRIAL until %s.
Unless you run "hostwall confirm" by then, it is rolled back to %s
("hostwall rollback" does that now).

Confirm from a NEW connection (a new SSH session to this host): this session
survives on connection tracking whatever the new rules say, so it proves
nothing. The guard (pid %d) runs detached; it acts even if this session dies.
`, t.Generation, t.Deadline.Format(time.TimeOnly), back, t.GuardPID)
}

// outcome turns a trial's outcome into the exit status.
func outcome(out io.Writer, o *engine.Outcome) error {
	switch o.Result {
	case engine.Confirmed:
		fmt.Fprintf(out, "Generation %d was confirmed at %s.\n", o.Generation, o.Time.Format(time.TimeOnly))
		return nil
	case engine.RolledBack:
		return &exitError{code: exitRolledBack, err: &engine.RolledBackError{Outcome: o}}
	}
	return fmt.Errorf("the trial of generation %d ended: %s (%s)", o.Generation, o.Result, o.Detail)
}
