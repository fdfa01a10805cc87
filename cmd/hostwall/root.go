package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// globals are the flags every command takes (DESIGN §10).
type globals struct {
	configDir   string
	netns       string
	hostName    string
	noColor     bool
	stateDir    string
	runDir      string
	lockTimeout time.Duration
	logFormat   string
	skipPerms   bool
	maxFile     int64
	limits      compile.Limits
	// overlay is validate's --replace and --remove (loader.DirOptions.Overlay).
	overlay map[string]string
	// started is the work begun for the command's compiled table (ahead),
	// verified the reading of the verified record (verifiedRecord).
	started  *ahead
	verified *future[*record]
	// recipes and warnings are what desired's compile made besides the
	// table: the recipes of its sets drawn from nets files, the
	// diagnostics as printed (the verified record keeps both for an
	// incremental apply).
	recipes  []compile.Recipe
	warnings []string
	// read is the last readSources: what it was asked and what it read.
	read *sourcesRead
}

// sourcesRead is a readSources call kept.
type sourcesRead struct {
	nets []string
	srcs []loader.Source
	err  error
}

// readSources reads the configuration's files without parsing them
// (loader.ReadSources), once per command for the same nets files: an
// apply's no-op and incremental checks both look at them.
func (g *globals) readSources(nets []string) ([]loader.Source, error) {
	if g.read == nil || !slices.Equal(g.read.nets, nets) {
		srcs, err := loader.ReadSources(g.configDir, g.dirOptions(), nets)
		g.read = &sourcesRead{nets: nets, srcs: srcs, err: err}
	}
	return g.read.srcs, g.read.err
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "hostwall",
		Short: "Declarative host firewall: plan and apply /etc/hostwall as one atomic nftables change",
		Long: `hostwall turns the policy files of a directory (Calico's host-protection model:
host endpoints, label selectors, ordered policies, failsafe ports) into one
nftables table, table inet hostwall. It shows every change as a plan against
what the kernel runs now and applies it as one atomic netlink transaction.

Every flag can also be set as HOSTWALL_<FLAG> in the environment, e.g.
HOSTWALL_CONFIG=/etc/hostwall or HOSTWALL_NETNS=test.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() != "agent" {
				oneShotGC()
			}
			if err := flagsFromEnv(cmd); err != nil {
				return err
			}
			return g.checkPrivate()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configDir, "config", "c", "/etc/hostwall", "configuration `DIR`ectory")
	pf.StringVar(&g.netns, "netns", "", "act inside the network namespace `NAME` (/run/netns/NAME)")
	pf.StringVar(&g.hostName, "host-name", "", "this host's `NAME` for node matching (default: host block, then the hostname)")
	pf.BoolVar(&g.noColor, "no-color", false, "no colour in output (also NO_COLOR)")
	pf.StringVar(&g.stateDir, "state-dir", "/var/lib/hostwall", "where generations are kept (`DIR`)")
	pf.StringVar(&g.runDir, "run-dir", "/run/hostwall", "lock, pending trial, verified records and decoded-file cache (`DIR`)")
	pf.DurationVar(&g.lockTimeout, "lock-timeout", 0, "how long to wait for another hostwall changing the same firewall")
	pf.BoolVar(&g.skipPerms, "insecure-skip-perms", false, "load configuration files whatever their owner and mode (tests, containers); INSECURE")
	pf.Int64Var(&g.maxFile, "max-file-bytes", loader.DefaultMaxFileBytes, "refuse policy files larger than this")
	pf.IntVar(&g.limits.MaxPolicies, "max-policies", compile.DefaultLimits.MaxPolicies, "refuse configurations with more policies")
	pf.IntVar(&g.limits.MaxRules, "max-rules", compile.DefaultLimits.MaxRules, "refuse configurations whose policies hold more rules")
	pf.IntVar(&g.limits.MaxSetElements, "max-set-elements", compile.DefaultLimits.MaxSetElements, "refuse configurations that compile to more set elements")
	pf.StringVar(&g.logFormat, "log-format", "", "agent logs: console or json (default: console on a terminal, else json)")
	root.AddCommand(newValidateCmd(g), newPlanCmd(g), newApplyCmd(g), newShowCmd(g), newExplainCmd(g), newConvertCmd(g),
		newGenerationsCmd(g), newRollbackCmd(g), newConfirmCmd(g), newReloadCmd(g), newStatusCmd(g), newGuardCmd(g), newAgentCmd(g), newVersionCmd())
	root.AddCommand(newGenDocsCmd(root))
	return root
}

// flagsFromEnv sets every flag not given on the command line from
// HOSTWALL_<FLAG> (dashes become underscores).
func flagsFromEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		env := "HOSTWALL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
			f.Changed = true
		}
	})
	return err
}

func (g *globals) style(w *os.File) views.Style {
	_, noColor := os.LookupEnv("NO_COLOR")
	return views.Style{Color: !g.noColor && !noColor && term.IsTerminal(int(w.Fd()))}
}

// desired loads and compiles the configuration, printing every diagnostic to
// stderr; it fails when any is an error.
func (g *globals) desired() (*ruleset.Table, *loader.Result, error) { return g.compiled(true) }

// compiled is desired, printing the diagnostics only when print is set.
func (g *globals) compiled(print bool) (*ruleset.Table, *loader.Result, error) {
	res, diags := g.loadDir()
	var t *ruleset.Table
	if !diags.HasErrors() {
		var more hcl.Diagnostics
		g.recipes = nil
		t, more = compile.Compile(res.Config, compile.Options{HostName: g.effectiveHostName(res), Limits: g.limits, Recipes: &g.recipes})
		diags = append(diags, more...)
	}
	if print {
		views.Diagnostics(os.Stderr, diags)
	}
	g.warnings = nil
	for _, d := range diags {
		g.warnings = append(g.warnings, views.FormatDiagnostic(d))
	}
	if diags.HasErrors() {
		n := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				n++
			}
		}
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("%d %s in %s; nothing was applied", n, plural(n, "error", "errors"), g.configDir)}
	}
	return t, res, nil
}

// checkPrivate tightens or refuses state and run directories others could
// read (only as root: an unprivileged hostwall only validates, explains
// and converts, and cannot open root's directories anyway).
func (g *globals) checkPrivate() error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, dir := range []string{g.stateDir, g.runDir} {
		notice, err := state.CheckPrivate(dir)
		if err != nil {
			return err
		}
		if notice != "" {
			fmt.Fprintln(os.Stderr, "notice: "+notice)
		}
	}
	return nil
}

// loadDir loads the configuration directory, warning loudly when the
// ownership and mode checks are off.
func (g *globals) loadDir() (*loader.Result, hcl.Diagnostics) {
	if g.skipPerms {
		fmt.Fprintln(os.Stderr, "WARNING: --insecure-skip-perms: loading the configuration whoever owns or can write it")
	}
	return loader.LoadDir(g.configDir, g.dirOptions())
}

func (g *globals) dirOptions() loader.DirOptions {
	return loader.DirOptions{InsecureSkipPerms: g.skipPerms, MaxFileBytes: g.maxFile, Overlay: g.overlay}
}

func (g *globals) effectiveHostName(res *loader.Result) string {
	return res.Config.HostName(g.hostName)
}

func (g *globals) store() *state.Store { return &state.Store{Dir: g.stateDir} }
func (g *globals) run() state.RunDir   { return state.RunDir{Dir: g.runDir, Persist: g.stateDir} }

// netnsPath is the namespace file, "" for the current namespace.
func (g *globals) netnsPath() string {
	if g.netns == "" {
		return ""
	}
	return nft.NetNSPath(g.netns)
}

func (g *globals) lock() (*state.Lock, error) {
	return state.AcquireLock(g.runDir, g.netns, g.lockTimeout)
}

func (g *globals) open() (*nft.Conn, error) {
	return nft.Open(nft.Options{NetNS: g.netns})
}

// planned is a plan with what it was made from; the caller closes conn.
type planned struct {
	res     *loader.Result
	desired *ruleset.Table
	conn    *nft.Conn
	plan    *planner.Plan
	// fromRecord: planned against the verified record, not a read.
	fromRecord bool
}

// plan loads and compiles the configuration, then plans it against the
// kernel. The kernel is not opened when the configuration has errors.
func (g *globals) plan(ctx context.Context, refresh bool) (*planned, error) {
	desired, res, err := g.desired()
	if err != nil {
		return nil, err
	}
	conn, err := g.open()
	if err != nil {
		return nil, err
	}
	p, fromRecord, err := g.planOn(ctx, conn, desired, refresh)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &planned{res: res, desired: desired, conn: conn, plan: p, fromRecord: fromRecord}, nil
}

// planOn plans desired against the kernel of conn: from the verified
// record when that is sound (planFromVerified; fromRecord), otherwise, and
// always with refresh, by reading the table.
func (g *globals) planOn(ctx context.Context, conn *nft.Conn, desired *ruleset.Table, refresh bool) (p *planner.Plan, fromRecord bool, err error) {
	if !refresh {
		if p = g.planFromVerified(conn, desired); p != nil {
			return p, true, nil
		}
	}
	p, err = agent.Plan(ctx, conn, desired)
	return p, false, err
}

// fromRecordNote tells, under a plan, that it was made without reading the
// kernel.
func fromRecordNote(out io.Writer, gen uint32) {
	fmt.Fprintf(out, "(Planned against the sets hostwall verified at nftables generation %d, which the kernel still holds: only set elements change. --refresh reads the kernel.)\n", gen)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
