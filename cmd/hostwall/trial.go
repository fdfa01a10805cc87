package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/engine"
)

// guardStart bounds how long a trial's guard may take to arm: it compiles
// the previous generation first.
const guardStart = time.Minute

// spawnGuard starts `hostwall guard` for trial t in a session of its own,
// with no terminal and SIGHUP ignored, logging to the run directory, and
// returns its pid once it says it is armed (it holds the previous ruleset,
// compiled, and the deadline). A guard that does not arm is killed.
func (g *globals) spawnGuard(e *engine.Engine, t *engine.Trial) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	log, err := e.GuardLog()
	if err != nil {
		return 0, err
	}
	defer log.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(exe, g.flagArgs("guard", "--ready-fd", "3")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = nil, log, log, []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	armed := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		switch {
		case line == "armed\n":
		case strings.HasPrefix(line, "error: "):
			err = errors.New(strings.TrimSpace(strings.TrimPrefix(line, "error: ")))
		default:
			err = fmt.Errorf("it exited before it was armed (%v; see %s)", err, log.Name())
		}
		armed <- err
	}()
	select {
	case err = <-armed:
	case <-time.After(guardStart):
		err = fmt.Errorf("it was not armed within %s (see %s)", guardStart, log.Name())
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	pid := cmd.Process.Pid // before Release, which sets it to -1
	return pid, cmd.Process.Release()
}

// flagArgs repeats the global flags for a child hostwall.
func (g *globals) flagArgs(sub string, more ...string) []string {
	args := append([]string{sub, "--config", g.configDir, "--state-dir", g.stateDir, "--run-dir", g.runDir}, more...)
	if g.netns != "" {
		args = append(args, "--netns", g.netns)
	}
	if g.hostName != "" {
		args = append(args, "--host-name", g.hostName)
	}
	return args
}

func newGuardCmd(g *globals) *cobra.Command {
	var readyFD int
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Hold the pending trial's timer and roll it back unless confirmed",
		Long: `guard waits for the deadline of the namespace's pending trial and, unless
"hostwall confirm" came first, restores the previous generation; it exits
as soon as the trial is confirmed. apply --confirm-timeout starts it, and
waits until it holds the previous ruleset before changing the kernel. Run
it yourself (or from boot) to resume a trial whose guard was killed: a
trial past its deadline, or interrupted by a reboot, is rolled back at
once. It ignores SIGHUP, and waits for the lock as long as it takes; told
to stop (SIGTERM, SIGINT), it rolls the trial back at once rather than
leave it unguarded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(syscall.SIGHUP)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ready := func(msg string) {}
			if readyFD > 0 {
				f := os.NewFile(uintptr(readyFD), "ready")
				defer f.Close()
				ready = func(msg string) { f.WriteString(msg + "\n"); f.Close() }
			}
			g.lockTimeout = -1
			o, err := g.guard(ctx, func(t *engine.Trial) {
				fmt.Printf("%s guard: generation %d on trial until %s\n", time.Now().Format(logTime), t.Generation, t.Deadline.Format(logTime))
				ready("armed")
			})
			if err != nil {
				ready("error: " + err.Error())
				return err
			}
			if o != nil {
				fmt.Printf("%s guard: generation %d %s: %s\n", time.Now().Format(logTime), o.Generation, o.Result, o.Detail)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&readyFD, "ready-fd", 0, "write \"armed\" to this file descriptor once armed (apply uses it)")
	cmd.Flags().MarkHidden("ready-fd")
	return cmd
}

// guard runs the engine's guard of the namespace's trial.
func (g *globals) guard(ctx context.Context, armed func(*engine.Trial)) (*engine.Outcome, error) {
	e, closeKernel, err := g.committingEngine()
	if err != nil {
		return nil, err
	}
	defer closeKernel()
	return e.Guard(ctx, armed)
}

func newConfirmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "Keep the generation on trial",
		Long: `confirm ends the pending trial, keeping its generation, and its guard exits.
With an agent running it goes through the agent, which then applies any
changes the trial held back; without one, through the state directory.
If the trial was rolled back already it says so and exits 3; if a guard is
rolling it back at that moment, it waits for the outcome. Past the
deadline a trial can no longer be confirmed (hostwall rollback N keeps a
generation N if that is what you want).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := agent.Call(socket(g.loader()), agent.Request{Command: "confirm"})
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
			e, closeKernel, err := g.committingEngine()
			if err != nil {
				return err
			}
			defer closeKernel()
			t, err := e.Confirm("confirmed by hostwall confirm")
			var rb *engine.RolledBackError
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
			resp, err := agent.Call(socket(g.loader()), agent.Request{Command: "reload"})
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

// logTime is how the guard's log gives times: to the millisecond, since
// the guard acts within a second of a deadline.
const logTime = "2006-01-02T15:04:05.000Z07:00"
