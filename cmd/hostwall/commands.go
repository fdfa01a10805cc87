package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/views"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Long: `version prints hostwall's version: the release it was built from (1.2.3
for a tag v1.2.3, else 0.1.0~git<commit time>.<commit>, with +dirty when
built from changed files; "dev" for a plain go build). Include it in any
report. It reads nothing and changes nothing.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "hostwall %s\n", version)
		},
	}
}

func newValidateCmd(g *globals) *cobra.Command {
	var replace, remove []string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration without touching the kernel",
		Long: `validate loads every policy file of the configuration directory and compiles
it for this host. It prints every problem as path:line:col: summary — detail
and exits 1 when any is an error, 0 otherwise. It never reads or changes the
kernel.

--replace NAME=FILE and --remove NAME check the directory as it would be
after a change, without making it: NAME (relative to the directory) is read
from FILE, or left out. Diagnostics name NAME's place in the directory.
Ansible and Puppet validate a policy this way before writing it.`,
		Example: `  hostwall validate --replace web.hcl=/tmp/web.hcl.new --remove old.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.overlay = map[string]string{}
			for _, r := range replace {
				name, from, ok := strings.Cut(r, "=")
				if !ok || name == "" || from == "" {
					return fmt.Errorf("--replace %q: use NAME=FILE, e.g. --replace web.hcl=/tmp/web.hcl.new", r)
				}
				g.overlay[name] = from
			}
			for _, name := range remove {
				g.overlay[name] = ""
			}
			l, err := g.loader().Load()
			if err != nil {
				return failed(err)
			}
			warn(l.Warnings)
			cfg := l.Result.Config
			enforced := len(cfg.Enforced().Policies)
			staged := ""
			if n := len(cfg.Policies) - enforced; n > 0 {
				staged = fmt.Sprintf(" (and %d staged, not enforced: hostwall explain shows what they would do)", n)
			}
			files, keys := 0, 0
			for _, s := range l.Result.Sources {
				if loader.IsDatastore(s.Path) {
					keys++
				} else {
					files++
				}
			}
			read := fmt.Sprintf("%d %s", files, plural(files, "file", "files"))
			if l.Revision != 0 {
				read += fmt.Sprintf(" and %d etcd %s at revision %d", keys, plural(keys, "resource", "resources"), l.Revision)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! The configuration is valid: %s, %d host %s, %d network %s, %d %s compiled to %d rules for host %q%s.\n",
				read,
				len(cfg.Endpoints), plural(len(cfg.Endpoints), "endpoint", "endpoints"),
				len(cfg.NetworkSets), plural(len(cfg.NetworkSets), "set", "sets"),
				enforced, plural(enforced, "policy", "policies"),
				l.Table.RuleCount(), l.Host, staged)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&replace, "replace", nil, "validate as if `NAME=FILE`: the directory's NAME held FILE's contents (repeatable)")
	cmd.Flags().StringArrayVar(&remove, "remove", nil, "validate as if the directory's file `NAME` were gone (repeatable)")
	return cmd
}

func newPlanCmd(g *globals) *cobra.Command {
	var asJSON, detailed, refresh bool
	var outFile string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change in the kernel",
		Long: `plan reads table inet hostwall from the kernel, compares it with the
configuration and prints the difference: + create, - destroy, ~ update in
place (rules and set elements as + and - lines). Rules changed outside
hostwall are reported first.

With --detailed-exitcode it exits 0 when there are no changes, 1 on error and
2 when there are changes.

When neither the files nor the kernel's ruleset have changed since hostwall
last verified that the kernel holds this configuration (by a full read, or
by the generation of its own apply), plan says so without compiling or
reading the kernel: any nftables change in the namespace, by anyone, moves
the kernel's ruleset generation and ends that shortcut. When the kernel has
not changed and the files change only the elements of sets (a blocklist
file), plan compares with the sets it verified instead of reading the
kernel, and says so. --refresh always reads the kernel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, closeKernel, err := g.engine()
			if err != nil {
				return err
			}
			defer closeKernel()
			planned, err := e.Plan(cmd.Context(), refresh)
			if err != nil {
				return failed(err)
			}
			warn(planned.Warnings)
			if outFile != "" {
				if err := e.SavePlan(outFile, planned); err != nil {
					return err
				}
			}
			if asJSON {
				if err := views.PlanJSON(cmd.OutOrStdout(), planned.Plan); err != nil {
					return err
				}
			} else {
				views.PlanHuman(cmd.OutOrStdout(), planned.Plan, g.style(os.Stdout))
				notes(cmd.OutOrStdout(), planned.Notes)
			}
			if detailed && !planned.Plan.Empty() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when there are changes, 0 when none, 1 on error")
	cmd.Flags().StringVarP(&outFile, "out", "o", "", "also save the plan to `FILE`, for apply FILE")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "read the kernel even when nothing changed since the last verified apply or plan")
	return cmd
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print table inet hostwall as hostwall reads it from the kernel",
		Long: `show reads table inet hostwall from the kernel and prints it in nft syntax
(or, with --json, as JSON), rules with their counters. It changes nothing.
A table that does not exist prints nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, closeKernel, err := g.engine()
			if err != nil {
				return err
			}
			defer closeKernel()
			t, err := e.Show(cmd.Context())
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
			l, err := g.loader().Load()
			if err != nil {
				return failed(err)
			}
			warn(l.Warnings)
			out := loader.WriteHCL(l.Result.Config)
			if to == "yaml" {
				if out, err = loader.WriteYAML(l.Result.Config); err != nil {
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
