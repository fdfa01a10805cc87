package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/views"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "hostwall %s\n", version)
		},
	}
}

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration without touching the kernel",
		Long: `validate loads every policy file of the configuration directory and compiles
it for this host. It prints every problem as path:line:col: summary — detail
and exits 1 when any is an error, 0 otherwise. It never reads or changes the
kernel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, res, err := g.desired()
			if err != nil {
				return err
			}
			cfg := res.Config
			fmt.Fprintf(cmd.OutOrStdout(), "Success! The configuration is valid: %d %s, %d host %s, %d network %s, %d %s compiled to %d rules for host %q.\n",
				len(res.Sources), plural(len(res.Sources), "file", "files"),
				len(cfg.Endpoints), plural(len(cfg.Endpoints), "endpoint", "endpoints"),
				len(cfg.NetworkSets), plural(len(cfg.NetworkSets), "set", "sets"),
				len(cfg.Policies), plural(len(cfg.Policies), "policy", "policies"),
				t.RuleCount(), g.effectiveHostName(res))
			return nil
		},
	}
}

func newPlanCmd(g *globals) *cobra.Command {
	var asJSON, detailed bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change in the kernel",
		Long: `plan reads table inet hostwall from the kernel, compares it with the
configuration and prints the difference: + create, - destroy, ~ update in
place (rules and set elements as + and - lines). Rules changed outside
hostwall are reported first.

With --detailed-exitcode it exits 0 when there are no changes, 1 on error and
2 when there are changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.plan(cmd.Context())
			if err != nil {
				return err
			}
			defer s.conn.Close()
			p := s.plan
			if asJSON {
				if err := views.PlanJSON(cmd.OutOrStdout(), p); err != nil {
					return err
				}
			} else {
				views.PlanHuman(cmd.OutOrStdout(), p, g.style(os.Stdout))
			}
			if detailed && !p.Empty() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when there are changes, 0 when none, 1 on error")
	return cmd
}

func newApplyCmd(g *globals) *cobra.Command {
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Plan, confirm and commit the change as one atomic transaction",
		Long: `apply plans as plan does, shows the plan, asks for "yes" (--auto-approve
skips the question) and commits the whole plan in one netlink transaction:
either all of it reaches the kernel or none of it. It then reads the table
back and reports success only when the kernel holds exactly the
configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.plan(ctx)
			if err != nil {
				return err
			}
			defer s.conn.Close()
			p := s.plan
			out := cmd.OutOrStdout()
			views.PlanHuman(out, p, g.style(os.Stdout))
			if p.Empty() {
				return nil
			}
			if !autoApprove && !confirm(out, cmd.InOrStdin()) {
				fmt.Fprintln(out, "\nApply cancelled. Nothing was changed.")
				return &exitError{code: 1}
			}
			return applyPlan(ctx, out, s.conn, s.desired, p)
		},
	}
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "apply without asking for confirmation")
	return cmd
}

func applyPlan(ctx context.Context, out io.Writer, conn *nft.Conn, desired *ruleset.Table, p *planner.Plan) error {
	applied, err := agent.Apply(ctx, conn, desired, p, nft.IsGenerationChanged)
	if err != nil {
		return fmt.Errorf("apply failed; the kernel keeps the ruleset it had: %w", err)
	}
	fmt.Fprintf(out, "\n%s\n", views.ApplySummary(applied))
	return nil
}

// confirm asks for "yes", as Terraform does.
func confirm(out io.Writer, in io.Reader) bool {
	fmt.Fprint(out, "\nDo you want to apply these changes?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print table inet hostwall as hostwall reads it from the kernel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.open()
			if err != nil {
				return err
			}
			defer conn.Close()
			t, _, err := conn.Read(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return views.TableJSON(cmd.OutOrStdout(), t)
			}
			views.Table(cmd.OutOrStdout(), t)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the table as JSON")
	return cmd
}

func newConvertCmd(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "convert --to hcl|yaml",
		Short: "Print the whole configuration in native HCL or native YAML",
		Long: `convert loads every file of the configuration directory — HCL, native YAML
or Calico YAML — and prints the configuration as one native HCL or YAML
document. Loading the output gives the same ruleset. Comments are not kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != "hcl" && to != "yaml" {
				return fmt.Errorf("--to %q: use hcl or yaml", to)
			}
			_, res, err := g.desired()
			if err != nil {
				return err
			}
			out := loader.WriteHCL(res.Config)
			if to == "yaml" {
				if out, err = loader.WriteYAML(res.Config); err != nil {
					return err
				}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "output format: hcl or yaml (required)")
	return cmd
}
