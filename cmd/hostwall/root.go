package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/views"
)

// Compile-time check that the kernel connection fits the engine.
var _ engine.Kernel = (*nft.Conn)(nil)

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
	maxNetsFile int64
	limits      compile.Limits
	// overlay is validate's --replace and --remove (loader.DirOptions.Overlay).
	overlay map[string]string
	// ds is where Calico's etcd datastore is (fleet.go).
	ds datastoreFlags
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
			if err := g.fromCalicoEnv(cmd.Flags()); err != nil {
				return err
			}
			return g.limits.Check()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configDir, "config", "c", "/etc/hostwall", "configuration `DIR`ectory")
	pf.StringVar(&g.netns, "netns", "", "act inside the network namespace `NAME` (/run/netns/NAME, or a namespace file's path)")
	pf.StringVar(&g.hostName, "host-name", "", "this host's `NAME` for node matching (default: host block, then the hostname)")
	pf.BoolVar(&g.noColor, "no-color", false, "no colour in output (also NO_COLOR)")
	pf.StringVar(&g.stateDir, "state-dir", "/var/lib/hostwall", "where generations are kept (`DIR`)")
	pf.StringVar(&g.runDir, "run-dir", "/run/hostwall", "verified records, the agent's socket and the guard's log (`DIR`)")
	pf.DurationVar(&g.lockTimeout, "lock-timeout", 0, "how long to wait for another hostwall changing the same firewall (the agent: 10s unless given)")
	pf.BoolVar(&g.skipPerms, "insecure-skip-perms", false, "load configuration files whatever their owner and mode (tests, containers); INSECURE")
	pf.Int64Var(&g.maxFile, "max-file-bytes", loader.DefaultMaxFileBytes, "refuse policy files larger than this")
	pf.Int64Var(&g.maxNetsFile, "max-nets-file-bytes", loader.DefaultMaxNetsFileBytes, "refuse nets files larger than this")
	pf.IntVar(&g.limits.MaxPolicies, "max-policies", compile.DefaultLimits.MaxPolicies, "refuse configurations with more policies")
	pf.IntVar(&g.limits.MaxRules, "max-rules", compile.DefaultLimits.MaxRules, "refuse configurations whose policies hold more rules")
	pf.IntVar(&g.limits.MaxSetElements, "max-set-elements", compile.DefaultLimits.MaxSetElements, "refuse configurations that compile to more set elements")
	pf.IntVar(&g.limits.Sharding.Min, "shard-min", ruleset.DefaultSharding.Min, "deal address sets of this many elements and more into slot sets, read back in linear time (docs/kernel.md)")
	pf.IntVar(&g.limits.Sharding.Slots, "shard-slots", ruleset.DefaultSharding.Slots, "slot sets of a sharded set")
	pf.UintVar(&g.limits.Sharding.ChunkBits, "shard-chunk-bits", ruleset.DefaultSharding.ChunkBits, "chunks of 2^N elements on average")
	_ = pf.MarkHidden("shard-slots") // for tests: the layout's defaults are measured ones
	_ = pf.MarkHidden("shard-chunk-bits")
	g.ds.add(pf)
	pf.StringVar(&g.logFormat, "log-format", "", "agent logs: console or json (default: console on a terminal, else json)")
	root.AddCommand(newValidateCmd(g), newPlanCmd(g), newApplyCmd(g), newShowCmd(g), newExplainCmd(g), newConvertCmd(g),
		newGenerationsCmd(g), newRollbackCmd(g), newConfirmCmd(g), newReloadCmd(g), newStatusCmd(g), newDropsCmd(g), newGuardCmd(g), newAgentCmd(g), newFleetCmd(g), newVersionCmd())
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

// engineOptions are the engine's options from the flags, without a kernel.
func (g *globals) engineOptions() engine.Options {
	if g.skipPerms {
		fmt.Fprintln(os.Stderr, "WARNING: --insecure-skip-perms: loading the configuration whoever owns or can write it")
	}
	return engine.Options{
		ConfigDir: g.configDir, StateDir: g.stateDir, RunDir: g.runDir, NetNS: g.netns, HostName: g.hostName,
		Load:   loader.DirOptions{InsecureSkipPerms: g.skipPerms, MaxFileBytes: g.maxFile, MaxNetsFileBytes: g.maxNetsFile, Overlay: g.overlay},
		Limits: g.limits, LockTimeout: g.lockTimeout, Version: version,
		Notice: func(s string) { fmt.Fprintln(os.Stderr, "notice: "+s) },
	}
}

// loader is an engine for what needs no kernel: loading and compiling.
func (g *globals) loader() *engine.Engine {
	o := g.engineOptions()
	bind := g.withDatastore(&o)
	e := engine.New(o)
	bind(e)
	return e
}

// engine is an engine on the namespace's kernel, the state and run
// directories checked private first (as root: an unprivileged hostwall
// cannot open root's directories, nor change the firewall). The caller
// closes it.
func (g *globals) engine() (*engine.Engine, func(), error) { return g.kernelEngine(false) }

// committingEngine is engine for a command that may change the kernel. It
// follows the kernel's events from the start: another program's
// transactions while it reads, plans and sends (a busy host's, many a
// second) then do not make it stale (nft.Options.Follow). Commands that
// only read listen only while they read (nft.Conn.Read): while anything on
// the host listens to nftables events, the kernel makes a notification of
// every element of every transaction, ~8 KiB each until the transaction
// ends (4.5 GB for another process's 100,000-network change, measured by
// a review), so hostwall listens only while it needs to.
func (g *globals) committingEngine() (*engine.Engine, func(), error) { return g.kernelEngine(true) }

func (g *globals) kernelEngine(follow bool) (*engine.Engine, func(), error) {
	o := g.engineOptions()
	conn, err := nft.Open(nft.Options{NetNS: g.netns, Follow: follow})
	if err != nil {
		return nil, nil, err
	}
	o.Kernel = conn
	var e *engine.Engine
	// What came before the command started, only an agent running for
	// the namespace can tell: it follows the kernel's events and tells
	// whether other programs' transactions since the verified record left
	// table inet hostwall alone. One that does not answer is not asked
	// again by this command.
	noAgent := false
	o.Untouched = func(ctx context.Context, cookie uint64, since, now uint32) bool {
		if conn.Untouched(ctx, since, now) {
			return true
		}
		if noAgent {
			return false
		}
		ok, err := agent.AskUntouched(e.SocketPath(), cookie, since, now)
		noAgent = err != nil
		return ok
	}
	o.BeforeCommit = func(context.Context) { agent.AskSample(e.SocketPath()) }
	bind := g.withDatastore(&o)
	e = engine.New(o)
	bind(e)
	if os.Geteuid() == 0 {
		notices, err := e.CheckPrivate()
		for _, n := range notices {
			fmt.Fprintln(os.Stderr, "notice: "+n)
		}
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return e, func() { conn.Close() }, nil
}

// failed turns an engine error into the command's: an invalid
// configuration prints every diagnostic.
func failed(err error) error {
	var invalid *engine.InvalidError
	var stale *engine.StalePlanError
	switch {
	case errors.As(err, &invalid):
		views.Diagnostics(os.Stderr, invalid.Diags)
	case errors.As(err, &stale):
		return &exitError{code: exitStalePlan, err: err}
	}
	return err
}

// warn prints a configuration's warnings to stderr.
func warn(diags hcl.Diagnostics) { views.Diagnostics(os.Stderr, diags) }

// notes prints the notes under a plan.
func notes(out io.Writer, ns []string) {
	for _, n := range ns {
		fmt.Fprintf(out, "(%s)\n", n)
	}
}

// signalled is ctx, cancelled by SIGHUP (a dropped SSH session), SIGINT,
// SIGTERM or SIGPIPE (output gone) instead of dying of them: a change
// heeds the cancellation until its outcome must be recorded, and then
// finishes (engine/commit.go).
func signalled(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
}

// socket is where the namespace's agent listens: the one registered for
// the namespace, whatever its run directory, else this run directory's.
func socket(e *engine.Engine) string {
	if a := e.Agent(); a != nil && a.Socket != "" {
		return a.Socket
	}
	return e.SocketPath()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
