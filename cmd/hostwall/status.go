package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
)

func newGenerationsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "generations",
		Short: "List the recorded generations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store := g.store()
			gens, err := store.List()
			if err != nil {
				return err
			}
			cur, err := store.Current()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"current": cur, "generations": gens})
			}
			if len(gens) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No generations recorded yet.")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 8, 2, ' ', 0)
			fmt.Fprintln(w, "\tGEN\tTIME\tUID\tFROM\tREASON\tFILES\tRULESET")
			for _, gen := range gens {
				mark := ""
				if gen.Number == cur {
					mark = "*"
				}
				from := gen.SSHConnection
				if from == "" {
					from = "-"
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%d\t%s\n", mark, gen.Number, gen.Time.Format(time.DateTime), gen.UID,
					from, gen.Reason, len(gen.Files), gen.RulesetHash[:12])
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the generation in force, the last apply, any pending trial, drift repairs and the rule counters",
		Long: `status asks the running agent (through its control socket); without an
agent it shows what the state directory and the kernel tell.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := agent.Call(g.run().SocketPath(g.netns), agent.Request{Command: "status"})
			var s *agent.Status
			switch {
			case errors.Is(err, agent.ErrNoAgent):
				if s, err = g.offlineStatus(cmd.Context()); err != nil {
					return err
				}
			case err != nil:
				return err
			case resp.Error != "":
				return errors.New(resp.Error)
			default:
				s = resp.Status
			}
			s.GuardAlive = s.Trial != nil && s.Trial.GuardPID > 0 && syscall.Kill(s.Trial.GuardPID, 0) == nil
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd.OutOrStdout(), cmd.ErrOrStderr(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// offlineStatus is the status without an agent: the state directory, and
// the counters when the kernel can be read.
func (g *globals) offlineStatus(ctx context.Context) (*agent.Status, error) {
	s := &agent.Status{ConfigDir: g.configDir}
	var err error
	if s.Generation, err = g.store().Current(); err != nil {
		return nil, err
	}
	run := g.run()
	if s.Trial, err = run.ReadTrial(g.netns); err != nil {
		return nil, err
	}
	s.LastTrial, _ = run.LastOutcome(g.netns)
	conn, err := g.open()
	if err != nil {
		s.CountersError = err.Error()
		return s, nil
	}
	defer conn.Close()
	s.ReadCounters(ctx, conn, g.store())
	return s, nil
}

func printStatus(out, warn io.Writer, s *agent.Status) {
	if s.Agent > 0 {
		fmt.Fprintf(out, "Agent: running (pid %d), watching %s\n", s.Agent, s.ConfigDir)
	} else {
		fmt.Fprintln(out, "Agent: not running; this is the state directory's and the kernel's view")
	}
	if s.Generation == 0 {
		fmt.Fprintln(out, "Current generation: none recorded")
	} else {
		fmt.Fprintf(out, "Current generation: %d (%d %s)\n", s.Generation, s.Rules, plural(s.Rules, "rule", "rules"))
	}
	if a := s.LastApply; a != nil {
		fmt.Fprintf(out, "Last apply: %s at %s (%s)", a.Result, a.Time.Format(time.DateTime), a.Why)
		if a.Error != "" {
			fmt.Fprintf(out, ": %s", a.Error)
		}
		fmt.Fprintln(out)
	}
	if t := s.Trial; t != nil {
		fmt.Fprintf(out, "TRIAL: generation %d pending until %s (%s left); rolls back to generation %d unless confirmed\n",
			t.Generation, t.Deadline.Format(time.DateTime), time.Until(t.Deadline).Round(time.Second), t.Previous)
		if !s.GuardAlive && s.Agent == 0 {
			fmt.Fprintf(warn, "warning: neither the guard (pid %d) nor an agent is running: run `hostwall guard` to resume the timer\n", t.GuardPID)
		}
	} else if o := s.LastTrial; o != nil {
		fmt.Fprintf(out, "Last trial: generation %d %s at %s\n", o.Generation, o.Result, o.Time.Format(time.DateTime))
	}
	if s.Agent > 0 {
		fmt.Fprintf(out, "Drift repairs: %d", s.DriftRepairs)
		if d := s.LastDrift; d != nil {
			fmt.Fprintf(out, " (last at %s: %d %s by %s)", d.Time.Format(time.DateTime), d.Changes, plural(d.Changes, "change", "changes"), d.By)
		}
		fmt.Fprintln(out)
	}
	if s.CountersError != "" {
		fmt.Fprintf(out, "Counters: unavailable: %s\n", s.CountersError)
		return
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "PACKETS\tBYTES\tCHAIN / RULE")
	for _, c := range s.Chains {
		desc := c.Chain
		if c.Description != "" {
			desc += " — " + c.Description
		}
		fmt.Fprintf(w, "%d\t%d\t%s\n", c.Packets, c.Bytes, desc)
		for _, r := range c.Rules {
			fmt.Fprintf(w, "%d\t%d\t    %s\n", r.Packets, r.Bytes, r.Rule)
		}
	}
	w.Flush()
}
