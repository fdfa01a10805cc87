package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/state"
)

// startTrial records the pending trial, starts the guard that will roll it
// back, and, on a terminal, waits for the outcome.
// unlock is called before waiting: the guard needs the lock to roll back.
func (g *globals) startTrial(ctx context.Context, out io.Writer, gen *state.Generation, previous int, host string, timeout time.Duration, wait bool, unlock func()) error {
	t := &state.Trial{Generation: gen.Number, Previous: previous, Deadline: time.Now().Add(timeout),
		NetNS: g.netns, StateDir: g.stateDir, HostName: host}
	run := g.run()
	if err := run.WriteTrial(t); err != nil {
		return g.abortTrial(ctx, t, fmt.Errorf("recording the trial: %w", err))
	}
	pid, err := g.spawnGuard()
	if err != nil {
		return g.abortTrial(ctx, t, fmt.Errorf("starting the guard: %w", err))
	}
	t.GuardPID = pid
	if err := run.WriteTrial(t); err != nil {
		return err
	}
	back := fmt.Sprintf("generation %d", previous)
	if previous == 0 {
		back = "no firewall (table inet hostwall removed)"
	}
	fmt.Fprintf(out, `
Generation %d is on TRIAL until %s (%s).
Unless you run "hostwall confirm" by then, it is rolled back to %s.

Confirm from a NEW connection (a new SSH session to this host): this session
survives on connection tracking whatever the new rules say, so it proves
nothing. The guard (pid %d) runs detached; it acts even if this session dies.
`, gen.Number, t.Deadline.Format(time.TimeOnly), timeout, back, pid)
	unlock()
	if !wait {
		return nil
	}
	fmt.Fprintln(out, "\nWaiting for the outcome (Ctrl-C stops waiting; the trial goes on)…")
	return g.waitTrial(ctx, t)
}

// abortTrial undoes an apply whose trial could not be armed: without a
// guard nothing would roll it back.
func (g *globals) abortTrial(ctx context.Context, t *state.Trial, cause error) error {
	if err := g.rollbackTo(ctx, t.Previous, false); err != nil {
		return fmt.Errorf("%v; and restoring the previous generation failed too: %w", cause, err)
	}
	return fmt.Errorf("%w; the previous generation was restored", cause)
}

// waitTrial waits until the trial is confirmed (exit 0) or rolled back
// (exit 3).
func (g *globals) waitTrial(ctx context.Context, t *state.Trial) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		pending, err := g.run().ReadTrial(g.netns)
		if err != nil {
			return err
		}
		if pending != nil && pending.Generation == t.Generation {
			continue
		}
		return outcomeError(g.run(), g.netns)
	}
}

// outcomeError turns the last trial's outcome into the exit status.
func outcomeError(run state.RunDir, netns string) error {
	o, err := run.LastOutcome(netns)
	if err != nil || o == nil {
		return err
	}
	if o.Result == state.RolledBack {
		return &exitError{code: exitRolledBack, err: &state.RolledBackError{Outcome: o}}
	}
	fmt.Printf("Generation %d was confirmed at %s.\n", o.Generation, o.Time.Format(time.TimeOnly))
	return nil
}

// spawnGuard starts `hostwall guard` in a session of its own, with no
// terminal and SIGHUP ignored, logging to the run dir.
func (g *globals) spawnGuard() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	log, err := os.OpenFile(filepath.Join(g.runDir, "guard.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.Command(exe, g.flagArgs("guard")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	return pid, cmd.Process.Release()
}

// flagArgs repeats the global flags for a child hostwall.
func (g *globals) flagArgs(sub string) []string {
	args := []string{sub, "--config", g.configDir, "--state-dir", g.stateDir, "--run-dir", g.runDir}
	if g.netns != "" {
		args = append(args, "--netns", g.netns)
	}
	if g.hostName != "" {
		args = append(args, "--host-name", g.hostName)
	}
	return args
}

func newGuardCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "guard",
		Short: "Hold the pending trial's timer and roll it back unless confirmed",
		Long: `guard waits for the deadline of the namespace's pending trial and, unless
"hostwall confirm" came first, restores the previous generation. apply
--confirm-timeout starts it detached; run it yourself (or from boot) to
resume a trial whose guard was killed: a trial already past its deadline is
rolled back at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(syscall.SIGHUP)
			return g.guard(cmd.Context())
		},
	}
}

func (g *globals) guard(ctx context.Context) error {
	run := g.run()
	t, err := run.ReadTrial(g.netns)
	if err != nil || t == nil {
		return err
	}
	fmt.Printf("%s guard: generation %d on trial until %s\n", time.Now().Format(time.RFC3339), t.Generation, t.Deadline.Format(time.RFC3339))
	wait := time.Until(t.Deadline)
	if t.Rebooted {
		// The machine rebooted during the trial: most likely its operator
		// lost access. End on the previous generation now.
		wait = 0
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	lock, err := state.AcquireLock(g.runDir, g.netns, time.Minute)
	if err != nil {
		return err
	}
	defer lock.Release()
	now, err := run.ReadTrial(g.netns)
	if err != nil || now == nil || now.Generation != t.Generation || now.Deadline != t.Deadline {
		fmt.Printf("%s guard: generation %d was confirmed\n", time.Now().Format(time.RFC3339), t.Generation)
		return err
	}
	detail := fmt.Sprintf("not confirmed by %s; generation %d restored", t.Deadline.Format(time.TimeOnly), t.Previous)
	if t.Rebooted {
		detail = fmt.Sprintf("the machine rebooted during the trial; generation %d restored", t.Previous)
	}
	if t.Previous == 0 {
		detail = fmt.Sprintf("not confirmed by %s; table inet hostwall removed (there was none before)", t.Deadline.Format(time.TimeOnly))
	}
	if err := g.rollbackTo(ctx, t.Previous, true); err != nil {
		return fmt.Errorf("rolling back the trial of generation %d: %w", t.Generation, err)
	}
	fmt.Printf("%s guard: %s\n", time.Now().Format(time.RFC3339), detail)
	return run.EndTrial(t, state.RolledBack, detail)
}

// rollbackTo makes the kernel hold generation n again (0: no table),
// recompiling its recorded files; the result must hash to the recorded
// ruleset unless force is set.
func (g *globals) rollbackTo(ctx context.Context, n int, force bool) error {
	conn, err := g.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	store := g.store()
	if n == 0 {
		for attempt := 0; ; attempt++ {
			_, gen, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			err = conn.DeleteTable(ctx, gen)
			if err == nil || !nft.IsGenerationChanged(err) || attempt == 3 {
				if err == nil {
					err = store.SetCurrent(0)
				}
				return err
			}
		}
	}
	gen, err := store.Load(n)
	if err != nil {
		return err
	}
	desired, err := agent.CompileGeneration(gen)
	if err != nil {
		return err
	}
	if got := state.HashRuleset(desired.String()); got != gen.RulesetHash && !force {
		return fmt.Errorf("generation %d compiles to a different ruleset with this hostwall version than when it was applied; --force rolls back to what it compiles to now", n)
	}
	p, err := agent.Plan(ctx, conn, desired)
	if err != nil {
		return err
	}
	if _, _, err := agent.Apply(ctx, conn, desired, p, nft.IsGenerationChanged, agent.ByGeneration); err != nil {
		return err
	}
	return store.SetCurrent(n)
}

func newConfirmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the generation on trial",
		Long: `confirm ends the pending trial, keeping its generation. With an agent
running it goes through the agent, which then applies any changes the trial
held back; without one, through the state directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := agent.Call(g.run().SocketPath(g.netns), agent.Request{Command: "confirm"})
			if !errors.Is(err, agent.ErrNoAgent) {
				switch {
				case err != nil:
					return err
				case resp.RolledBack:
					return &exitError{code: exitRolledBack, err: errors.New(resp.Error)}
				case resp.Error != "":
					return errors.New(resp.Error)
				}
				fmt.Fprintln(cmd.OutOrStdout(), resp.Message)
				return nil
			}
			lock, err := g.lock()
			if err != nil {
				return err
			}
			defer lock.Release()
			t, err := g.run().Confirm(g.netns, "confirmed by hostwall confirm")
			var rb *state.RolledBackError
			if errors.As(err, &rb) {
				return &exitError{code: exitRolledBack, err: err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Generation %d confirmed; it stays.\n", t.Generation)
			return nil
		},
	}
}

func newReloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the running agent apply the configuration directory now",
		Long: `reload asks the running agent to load and apply the configuration
directory now, even when its content did not change (as SIGHUP does), and
reports the result. Without an agent it fails: use hostwall apply.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := agent.Call(g.run().SocketPath(g.netns), agent.Request{Command: "reload"})
			if errors.Is(err, agent.ErrNoAgent) {
				return fmt.Errorf("%w: start it (systemctl start hostwall) or use hostwall apply", err)
			}
			if err != nil {
				return err
			}
			if resp.Error != "" {
				return errors.New(resp.Error)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Message)
			return nil
		},
	}
}

func newRollbackCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rollback [N]",
		Short: "Apply generation N again (default: the one before the current)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lock, err := g.lock()
			if err != nil {
				return err
			}
			defer lock.Release()
			if t, _ := g.run().ReadTrial(g.netns); t != nil {
				return fmt.Errorf("generation %d is on trial; confirm it or let it roll back first", t.Generation)
			}
			n, err := g.rollbackTarget(args)
			if err != nil {
				return err
			}
			if err := g.rollbackTo(cmd.Context(), n, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Rolled back to generation %d.\n", n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "roll back even if the generation compiles differently with this version")
	return cmd
}

func (g *globals) rollbackTarget(args []string) (int, error) {
	if len(args) == 1 {
		var n int
		if _, err := fmt.Sscan(args[0], &n); err != nil || n < 1 {
			return 0, fmt.Errorf("%q is not a generation number", args[0])
		}
		return n, nil
	}
	store := g.store()
	cur, err := store.Current()
	if err != nil {
		return 0, err
	}
	nums, err := store.Numbers()
	if err != nil {
		return 0, err
	}
	prev := 0
	for _, n := range nums {
		if n < cur {
			prev = n
		}
	}
	if prev == 0 {
		return 0, errors.New("there is no generation before the current one")
	}
	return prev, nil
}
