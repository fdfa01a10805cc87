package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
		Short: "Show the current generation and any pending trial",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cur, err := g.store().Current()
			if err != nil {
				return err
			}
			run := g.run()
			t, err := run.ReadTrial(g.netns)
			if err != nil {
				return err
			}
			o, _ := run.LastOutcome(g.netns)
			guardAlive := t != nil && t.GuardPID > 0 && syscall.Kill(t.GuardPID, 0) == nil
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"current_generation": cur, "trial": t, "guard_alive": guardAlive, "last_trial": o})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "(no agent running; this is the state directory's view)")
			if cur == 0 {
				fmt.Fprintln(out, "Current generation: none recorded")
			} else {
				fmt.Fprintf(out, "Current generation: %d\n", cur)
			}
			if t != nil {
				fmt.Fprintf(out, "TRIAL: generation %d pending until %s (%s left); rolls back to generation %d unless confirmed\n",
					t.Generation, t.Deadline.Format(time.DateTime), time.Until(t.Deadline).Round(time.Second), t.Previous)
				if !guardAlive {
					fmt.Fprintf(os.Stderr, "warning: the guard (pid %d) is not running: run `hostwall guard` to resume the timer\n", t.GuardPID)
				}
			} else if o != nil {
				fmt.Fprintf(out, "Last trial: generation %d %s at %s\n", o.Generation, o.Result, o.Time.Format(time.DateTime))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
