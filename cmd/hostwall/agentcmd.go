package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/systemd"
)

// Compile-time check that the concrete notifier fits the agent.
var _ agent.Notifier = systemd.Notifier{}

// agentLockTimeout is how long the agent waits for the namespace's lock
// (a CLI apply at its "yes" prompt) unless --lock-timeout says otherwise,
// before trying again later. It stays below half the unit's
// WatchdogSec=30s: the loop that waits is the loop that pings the watchdog.
const agentLockTimeout = 10 * time.Second

func newAgentCmd(g *globals) *cobra.Command {
	var resync, debounce time.Duration
	var of observeFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the daemon: apply the configuration directory and keep the kernel matching it",
		Long: `agent applies the configuration (or, if it does not load, the last good
generation), tells systemd it is ready, then watches the configuration
directory and applies every change of content as a new generation. An
invalid change keeps the running ruleset and says why (logs, systemctl
status). SIGHUP reloads. Changes made to table inet hostwall by others are
repaired. A pending trial is rolled back when its deadline passes, also
after a restart or a reboot. When the agent stops, the ruleset stays in the
kernel: remove it on purpose with nft delete table inet hostwall.

Metrics (off by default): --metrics-listen serves them over HTTP for
Prometheus, --metrics-textfile writes them for node_exporter's textfile
collector. The drops the ruleset logs (settings.drop_log) go to the
journal, rate-limited, with structured fields (HOSTWALL_POLICY, …), and to
hostwall drops and hostwall status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("lock-timeout") {
				g.lockTimeout = agentLockTimeout
			}
			if err := of.check(); err != nil {
				return err
			}
			agentGC()
			return g.runAgent(cmd.Context(), debounce, resync, of)
		},
	}
	cmd.Flags().DurationVar(&resync, "resync", 5*time.Minute, "period of the full verification against drift")
	cmd.Flags().DurationVar(&debounce, "debounce", 200*time.Millisecond, "quiet time after a change before reloading")
	cmd.Flags().DurationVar(&datastore.StatusTTL, "etcd-status-ttl", datastore.StatusTTL, "lease of this host's status key: how long after its agent stops answering fleet status shows it gone")
	of.add(cmd)
	return cmd
}

// runAgent wires the daemon: the kernel connection, the engine on it
// (keeping what it read and decoded between changes), the kernel's events
// as drift, systemd, the log.
func (g *globals) runAgent(ctx context.Context, debounce, resync time.Duration, of observeFlags) error {
	log := g.logger()
	defer log.Sync()
	o := g.engineOptions()
	conn, err := nft.Open(nft.Options{NetNS: g.netns})
	if err != nil {
		return err
	}
	defer conn.Close()
	o.Kernel, o.Memo, o.Notice = conn, true, func(s string) { log.Warn(s) }
	// Its own engine's cookie: the events are this namespace's.
	o.Untouched = func(ctx context.Context, _ uint64, since, now uint32) bool { return conn.Untouched(ctx, since, now) }
	g.autoHost(&o)
	var follow *datastore.Follower
	o.Datastore = engine.DatastoreFunc(func() (*datastore.Snapshot, error) {
		if follow == nil {
			return nil, nil
		}
		return follow.Snapshot()
	})
	e := engine.New(o)
	notices, err := e.CheckPrivate()
	for _, n := range notices {
		log.Warn(n)
	}
	if err != nil {
		return err
	}
	if g.skipPerms {
		log.Warn("INSECURE: --insecure-skip-perms: the configuration is loaded whoever owns or can write it")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var dsDone sync.WaitGroup
	defer dsDone.Wait() // the status key is taken away before the agent ends
	follow, report, err := g.agentDatastore(ctx, e, log, &dsDone)
	if err != nil {
		return err
	}
	drift := make(chan agent.Drift, 16)
	err = conn.Watch(ctx, func(c nft.Change) {
		select {
		case drift <- agent.Drift{By: c.By, Certain: c.Certain}:
		default: // checks already pending cover it
		}
	})
	if err != nil {
		return err
	}
	var d *agent.Daemon
	octx, ocancel := context.WithCancel(ctx) // the observer's: ends before Run returns
	obs, err := newAgentObserver(of, g.netns, log, func() (*observe.Index, error) {
		if x := d.Index(); x != nil {
			return x, nil
		}
		return nil, errors.New("the agent has not started yet")
	})
	if err != nil {
		ocancel()
		return err
	}
	d = agent.New(agent.Options{
		Engine: e, ConfigDir: g.configDir, Debounce: debounce, Resync: resync, Watchdog: systemd.WatchdogInterval(),
		Drift: drift, Notify: systemd.Notifier{}, Log: log, Socket: e.SocketPath(), Settled: agentSettled,
		Metrics: obs.metrics, Gatherer: obs.reg, Observe: func(x *observe.Index) { obs.observed(octx, x) },
		Counters: obs.counts, SampleChanges: of.exported(), DropLog: obs.notListening,
		Datastore: follow, Reporter: report, Node: g.nodeName(), Version: version,
	})
	obs.drops.daemon = d
	if err := obs.serve(); err != nil {
		ocancel()
		if obs.ln != nil {
			obs.ln.Close()
		}
		return err
	}
	obsDone := make(chan struct{})
	go func() { obs.run(octx); close(obsDone) }()
	defer func() { ocancel(); <-obsDone }()
	return d.Run(ctx)
}

// logger logs to stderr: readable on a terminal, JSON otherwise or with
// --log-format json.
func (g *globals) logger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	encoder := zapcore.NewConsoleEncoder(enc)
	if g.logFormat == "json" || (g.logFormat == "" && !term.IsTerminal(int(os.Stderr.Fd()))) {
		encoder = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.Lock(os.Stderr), zap.InfoLevel)).Named("agent")
}
