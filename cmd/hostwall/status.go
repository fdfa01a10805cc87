package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/engine"
)

func newGenerationsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "generations",
		Short: "List the recorded generations",
		Long: `generations lists every generation recorded in the state directory, oldest
first: its number (* marks the current one, which the kernel holds), when,
by whom (uid, SSH client) and why it was recorded, its files and the hash
of its ruleset. A damaged generation — its record unreadable, or a file not
the size recorded — is listed as DAMAGED with the reason; it is never
applied (rollback checks every file's SHA-256 besides).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gens, cur, err := g.loader().Generations()
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
			datastore := false
			for _, gen := range gens {
				datastore = datastore || gen.Datastore != nil
			}
			if datastore {
				fmt.Fprintln(w, "\tGEN\tTIME\tUID\tFROM\tREASON\tFILES\tETCD REVISION\tRULESET")
			} else {
				fmt.Fprintln(w, "\tGEN\tTIME\tUID\tFROM\tREASON\tFILES\tRULESET")
			}
			for _, gen := range gens {
				mark := ""
				if gen.Number == cur {
					mark = "*"
				}
				if gen.Damaged != "" {
					fmt.Fprintf(w, "%s\t%d\tDAMAGED: %s\n", mark, gen.Number, gen.Damaged)
					continue
				}
				from := gen.SSHConnection
				if from == "" {
					from = "-"
				}
				files := fmt.Sprint(len(gen.Files))
				if datastore {
					rev := "-"
					if d := gen.Datastore; d != nil {
						rev = fmt.Sprintf("%d (%d %s)", d.Revision, len(d.Files), plural(len(d.Files), "resource", "resources"))
					}
					files += "\t" + rev
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", mark, gen.Number, gen.Time.Format(time.DateTime), gen.UID,
					from, gen.Reason, files, gen.RulesetHash[:12])
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// statusWait is how long status waits for the agent, which answers from
// its loop (busy for seconds applying a large configuration), before it
// reads the state and the kernel itself.
const statusWait = 15 * time.Second

func newStatusCmd(g *globals) *cobra.Command {
	var (
		asJSON  bool
		format  string
		perRule bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the generation in force, the last apply, any pending trial, drift repairs and the rule counters",
		Long: `status asks the running agent (through its control socket, found wherever
its run directory is); without an agent it shows what the state directory
and the kernel tell. Like every command that takes the namespace's lock,
it first settles what a hostwall that died left behind — and rolls back a
trial past its deadline whose guard is gone.

--format prometheus prints the metrics the agent serves (--metrics-listen)
once, in Prometheus's text format; without an agent, those the state
directory and the kernel give (the counters as they stand).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case asJSON && format != "" && format != "json":
				return fmt.Errorf("--json and --format %s: choose one", format)
			case asJSON:
				format = "json"
			}
			switch format {
			case "", "text", "json":
			case "prometheus":
				return g.printMetrics(cmd.OutOrStdout(), perRule)
			default:
				return fmt.Errorf("--format %q: text, json or prometheus", format)
			}
			asJSON = format == "json"
			resp, err := agent.CallWithin(socket(g.loader()), agent.Request{Command: "status"}, statusWait)
			var s *engine.Status
			switch {
			case errors.Is(err, agent.ErrNoAgent) || errors.Is(err, agent.ErrNoAnswer):
				if errors.Is(err, agent.ErrNoAnswer) {
					fmt.Fprintf(os.Stderr, "notice: %v; reading the state and the kernel instead\n", err)
				}
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
			s.GuardAlive = s.Trial != nil && engine.GuardRunning(s.Trial.GuardPID)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd.OutOrStdout(), cmd.ErrOrStderr(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (--format json)")
	cmd.Flags().StringVar(&format, "format", "", "text, json, or prometheus (the metrics, once)")
	cmd.Flags().BoolVar(&perRule, "metrics-per-rule", false, "with --format prometheus and no agent: a series for every policy rule too")
	return cmd
}

// printMetrics prints the agent's metrics, or without an agent those the
// state directory and the kernel give.
func (g *globals) printMetrics(out io.Writer, perRule bool) error {
	resp, err := agent.CallWithin(socket(g.loader()), agent.Request{Command: "metrics"}, statusWait)
	switch {
	case errors.Is(err, agent.ErrNoAgent) || errors.Is(err, agent.ErrNoAnswer):
		if errors.Is(err, agent.ErrNoAnswer) {
			fmt.Fprintf(os.Stderr, "notice: %v; reading the state and the kernel instead\n", err)
		}
		text, err := g.offlineMetrics(perRule)
		if err != nil {
			return err
		}
		_, err = io.WriteString(out, text)
		return err
	case err != nil:
		return err
	case resp.Error != "":
		return errors.New(resp.Error)
	}
	_, err = io.WriteString(out, resp.Metrics)
	return err
}

// offlineStatus is the status without an agent: the state directory's and
// the kernel's (it rolls back a trial past its deadline: committing).
func (g *globals) offlineStatus(ctx context.Context) (*engine.Status, error) {
	e, closeKernel, err := g.committingEngine()
	if err != nil {
		return nil, err
	}
	defer closeKernel()
	if err := e.Settle(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	return e.Status(ctx)
}

// printTrial shows the pending trial t: when it rolls back, or why it
// is rolling back now, or that it is overdue.
func printTrial(out, warn io.Writer, s *engine.Status, t *engine.Trial) {
	back := fmt.Sprintf("generation %d", t.Previous)
	if t.Previous == 0 {
		back = "no firewall (table inet hostwall removed)"
	}
	switch left := time.Until(t.Deadline); {
	case t.Unreadable != "":
		fmt.Fprintf(out, "TRIAL: pending, but %s: generation %d is rolled back to %s by the next hostwall command (or the agent)\n", t.Unreadable, t.Generation, back)
		return
	case t.Rebooted:
		fmt.Fprintf(out, "TRIAL: generation %d was interrupted by a reboot; it is rolled back to %s by the next hostwall command (or the agent, or hostwall guard)\n", t.Generation, back)
		return
	case left <= 0:
		fmt.Fprintf(out, "TRIAL: generation %d was due to roll back to %s at %s, %s ago, and has not been (see the warnings above); hostwall rollback ends it\n",
			t.Generation, back, t.Deadline.Format(time.DateTime), -left.Round(time.Second))
		return
	default:
		fmt.Fprintf(out, "TRIAL: generation %d pending until %s (%s left); rolls back to %s unless confirmed\n",
			t.Generation, t.Deadline.Format(time.DateTime), left.Round(time.Second), back)
	}
	if !s.GuardAlive && s.Agent == 0 {
		guard := "the guard"
		if t.GuardPID > 0 {
			guard = fmt.Sprintf("the guard (pid %d)", t.GuardPID)
		}
		fmt.Fprintf(warn, "warning: neither %s nor an agent is running: run `hostwall guard` to resume the timer\n", guard)
	}
}

func printStatus(out, warn io.Writer, s *engine.Status) {
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
		printTrial(out, warn, s, t)
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
	if in := s.InProgress; in != nil {
		fmt.Fprintf(out, "In progress: %s to generation %d by pid %d, since %s\n", in.Op, in.Generation, in.PID, in.Time.Format(time.DateTime))
	}
	if in := s.Interrupted; in != nil {
		fmt.Fprintf(warn, "warning: a change (%s to generation %d by pid %d at %s) was interrupted before its outcome was recorded; the next change settles it\n",
			in.Op, in.Generation, in.PID, in.Time.Format(time.DateTime))
	}
	if s.Mismatch != "" {
		fmt.Fprintf(warn, "warning: %s\n", s.Mismatch)
	}
	if d := s.Datastore; d != nil {
		printDatastore(out, s.Agent > 0, d)
	}
	if len(s.Names) > 0 {
		fmt.Fprintln(out, "Domain names:")
		for _, a := range s.Names {
			addrs := make([]string, len(a.Addrs))
			for i, x := range a.Addrs {
				addrs[i] = x.String()
			}
			line := strings.Join(addrs, ", ")
			if line == "" {
				line = "no address (its rules match nothing)"
			}
			if a.Stale != "" {
				line += " — STALE, the last known: " + a.Stale
			}
			fmt.Fprintf(out, "  %s: %s\n", a.Name, line)
		}
	}
	if s.CountersError != "" {
		fmt.Fprintf(out, "Counters: unavailable: %s\n", s.CountersError)
		return
	}
	if len(s.TopDrops)+len(s.RecentDrops) > 0 {
		fmt.Fprintln(out)
		printDrops(out, s)
	}
	if len(s.Staged) > 0 {
		fmt.Fprintln(out)
		printStaged(out, s)
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

// printDatastore shows the etcd datastore the generation in force read
// and, from the agent, how current it is.
func printDatastore(out io.Writer, agent bool, d *engine.DatastoreStatus) {
	from := fmt.Sprintf("the generation in force is from revision %d", d.Revision)
	if d.Revision == 0 {
		from = "no generation has read it yet"
	}
	fmt.Fprintf(out, "Datastore: %s at %s; %s\n", d.Type, strings.Join(d.Endpoints, ","), from)
	if !agent {
		return
	}
	switch {
	case d.SyncedAt.IsZero():
		fmt.Fprintf(out, "  STALE: etcd has not answered since the agent started; enforcing what the last generation read")
	case d.Error != "" || time.Since(d.SyncedAt) > 10*time.Second:
		fmt.Fprintf(out, "  STALE: etcd last confirmed revision %d current %s ago; enforcing revision %d until it answers", d.Synced, time.Since(d.SyncedAt).Round(time.Second), d.Applied)
	default:
		fmt.Fprintf(out, "  current: read to revision %d (confirmed %s ago), applied revision %d", d.Synced, time.Since(d.SyncedAt).Round(time.Second), d.Applied)
	}
	if d.Error != "" {
		fmt.Fprintf(out, " (%s)", oneLine(d.Error))
	}
	fmt.Fprintln(out)
	if d.Relists > 0 {
		fmt.Fprintf(out, "  listed again in full %d %s (after a compaction, a loss of etcd, or etcd rebuilt or restored)\n", d.Relists, plural(d.Relists, "time", "times"))
	}
}
