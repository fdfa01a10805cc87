package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/metrics"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// observeFlags are the agent's metrics and drop-log flags.
type observeFlags struct {
	listen   string
	textfile string
	interval time.Duration
	perRule  bool
	dropLog  bool
}

func (f *observeFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "metrics-listen", "", "serve Prometheus metrics over HTTP at `ADDR`/metrics (e.g. 127.0.0.1:9631); off by default")
	fl.StringVar(&f.textfile, "metrics-textfile", "", "write the metrics to `FILE` (must end in .prom) for node_exporter's textfile collector, atomically, after every apply and verification and every --metrics-interval; off by default")
	fl.DurationVar(&f.interval, "metrics-interval", time.Minute, "how often --metrics-textfile is written besides")
	fl.BoolVar(&f.perRule, "metrics-per-rule", false, "also give every policy rule its own packet and byte series (labels: position and action)")
	fl.BoolVar(&f.dropLog, "drop-log", true, "listen to the drop log (settings.drop_log): the journal, hostwall status and hostwall drops show the drops")
}

// minInterval is the shortest --metrics-interval: each writing reads the
// table's rules.
const minInterval = time.Second

// check refuses bad values before the agent starts.
func (f *observeFlags) check() error {
	if f.textfile != "" && !strings.HasSuffix(f.textfile, ".prom") {
		return fmt.Errorf("--metrics-textfile %s: node_exporter's textfile collector reads only files named *.prom", f.textfile)
	}
	if f.interval < minInterval {
		return fmt.Errorf("--metrics-interval %s: at least %s (each writing reads the table's rules)", f.interval, minInterval)
	}
	return nil
}

// exported says whether the metrics leave the agent (a listener or a
// file): then the counters are sampled around every change.
func (f *observeFlags) exported() bool { return f.listen != "" || f.textfile != "" }

// kernelCounters reads the live chains for the metrics on a netlink
// connection of their own, opened at the first scrape: the agent's loop
// keeps its own.
type kernelCounters struct {
	netns string
	mu    sync.Mutex
	conn  *nft.Conn
}

func (k *kernelCounters) read(ctx context.Context) ([]*ruleset.Chain, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn == nil {
		c, err := nft.Open(nft.Options{NetNS: k.netns})
		if err != nil {
			return nil, err
		}
		k.conn = c
	}
	chains, _, err := k.conn.ReadChains(ctx)
	return chains, err
}

func (k *kernelCounters) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		k.conn.Close()
	}
}

// agentObserver is the agent's metrics endpoint, metrics file and drop-log
// listener.
type agentObserver struct {
	f       observeFlags
	netns   string
	log     *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics.Agent
	kernel  *kernelCounters
	counts  *metrics.Kernel
	server  *http.Server
	ln      net.Listener
	kick    chan struct{}
	// retry is signalled relisten after the kernel refused the drop log's
	// group: nothing polls while all is well.
	retry chan struct{}
	// The drop log's listener: the group it listens to, and its stop.
	drops struct {
		mu      sync.Mutex
		group   int // -1: not listening
		stop    context.CancelFunc
		done    <-chan struct{}
		daemon  *agent.Daemon
		refused int // a group the kernel refused (+1), not warned of again
		// why is why the agent does not listen ("" when it does); last
		// the index it last listened by (or tried to).
		why  string
		last *observe.Index
	}
}

// newAgentObserver makes the registry, opens the metrics listener and
// writes the metrics file once (an address in use or a file that cannot
// be written fails the agent's start, before it applies anything); serve
// starts serving, once the daemon exists.
func newAgentObserver(f observeFlags, netns string, log *zap.Logger, index func() (*observe.Index, error)) (*agentObserver, error) {
	o := &agentObserver{f: f, netns: netns, log: log, reg: metrics.Registry(), kernel: &kernelCounters{netns: netns}, kick: make(chan struct{}, 1), retry: make(chan struct{}, 1)}
	o.drops.group = -1
	if !f.dropLog {
		o.drops.why = "the agent runs with --drop-log=false"
	}
	o.metrics = metrics.NewAgent(o.reg)
	o.counts = &metrics.Kernel{Read: o.kernel.read, Index: index, PerRule: f.perRule, Monotonic: true}
	o.reg.MustRegister(o.counts)
	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return nil, fmt.Errorf("--metrics-listen %s: %w", f.listen, err)
		}
		o.ln = ln
	}
	return o, nil
}

// serve writes the metrics file once (a file that cannot be written fails
// the agent's start, before it applies anything) and starts serving the
// metrics, the daemon made.
func (o *agentObserver) serve() error {
	if o.f.textfile != "" {
		if err := prometheus.WriteToTextfile(o.f.textfile, o.reg); err != nil {
			return fmt.Errorf("--metrics-textfile %s: %w", o.f.textfile, err)
		}
	}
	if o.ln == nil {
		return nil
	}
	o.server = metricsServer(o.reg)
	go o.server.Serve(o.ln)
	o.log.Info("serving metrics", zap.String("address", "http://"+o.ln.Addr().String()+"/metrics"))
	return nil
}

// notListening says why the agent does not listen to the drop log ("" when
// it does).
func (o *agentObserver) notListening() string {
	o.drops.mu.Lock()
	defer o.drops.mu.Unlock()
	return o.drops.why
}

// metricsServer serves reg at /metrics, in OpenMetrics when asked.
func metricsServer(reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 32, Timeout: 30 * time.Second}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hostwall agent: metrics at /metrics")
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 40 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
}

// run writes the metrics file after each kick and every interval until ctx
// ends, then stops the listener and the drop log.
// relisten is how often the agent tries again to listen to the drop log
// when another program held its group.
const relisten = 10 * time.Second

func (o *agentObserver) run(ctx context.Context) {
	defer o.kernel.close()
	defer o.stopDrops()
	if o.ln != nil {
		defer o.ln.Close()
	}
	defer func() {
		if o.server != nil {
			o.server.Close()
		}
	}()
	var textfile <-chan time.Time
	if o.f.textfile != "" {
		tick := time.NewTicker(o.f.interval)
		defer tick.Stop()
		textfile = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.retry:
			o.drops.mu.Lock()
			x := o.drops.last
			o.drops.mu.Unlock()
			if x != nil {
				o.listen(ctx, x)
			}
			continue
		case <-textfile:
		case <-o.kick:
		}
		if o.f.textfile == "" {
			continue
		}
		// Atomic: a temporary file beside it (not named *.prom, so
		// node_exporter never reads half of one), then a rename.
		if err := prometheus.WriteToTextfile(o.f.textfile, o.reg); err != nil {
			o.metrics.TextfileFailed()
			o.log.Warn("writing the metrics file", zap.String("file", o.f.textfile), zap.Error(err))
		}
	}
}

// observed runs after each piece of the agent's work: the metrics file
// is written again, and the drop log listened to on the generation's
// group.
func (o *agentObserver) observed(ctx context.Context, x *observe.Index) {
	select {
	case o.kick <- struct{}{}:
	default:
	}
	o.listen(ctx, x)
}

// listen listens to the drop log of the generation x indexes: binds its
// group, binds again when the group changed or listening ended, stops
// when it logs no drops.
func (o *agentObserver) listen(ctx context.Context, x *observe.Index) {
	if !o.f.dropLog {
		return
	}
	o.drops.mu.Lock()
	defer o.drops.mu.Unlock()
	o.drops.last = x
	listening := o.drops.group >= 0
	if listening && o.drops.done != nil {
		select {
		case <-o.drops.done: // ended by an error: listen again
			listening, o.drops.group = false, -1
		default:
		}
	}
	switch {
	case !x.DropLog:
		o.stopDropsLocked()
		o.drops.why = fmt.Sprintf("generation %d logs no drops (settings { drop_log = false }, or no host endpoint here)", x.Generation)
	case !listening || o.drops.group != int(x.Group):
		o.stopDropsLocked()
		lctx, stop := context.WithCancel(ctx)
		d := o.drops.daemon
		done, err := nft.ListenDrops(lctx, nft.Options{NetNS: o.netns}, x.Group, d.Dropped, d.DropLost)
		if err != nil {
			stop()
			if o.drops.refused != int(x.Group)+1 {
				o.log.Warn("not listening to the drop log: the journal, hostwall status and hostwall drops will not show drops; trying again every 10s", zap.Error(err))
			}
			o.drops.refused = int(x.Group) + 1
			o.drops.why = err.Error()
			time.AfterFunc(relisten, func() {
				select {
				case o.retry <- struct{}{}:
				default:
				}
			})
			return
		}
		o.drops.refused, o.drops.why = 0, ""
		o.drops.group, o.drops.stop, o.drops.done = int(x.Group), stop, done
		o.log.Info("listening to the drop log", zap.Uint16("nflog_group", x.Group))
	}
}

func (o *agentObserver) stopDrops() {
	o.drops.mu.Lock()
	defer o.drops.mu.Unlock()
	o.stopDropsLocked()
}

func (o *agentObserver) stopDropsLocked() {
	if o.drops.stop != nil {
		o.drops.stop()
		<-o.drops.done
	}
	o.drops.stop, o.drops.done, o.drops.group = nil, nil, -1
}

// offlineMetrics are the metrics the state directory and the kernel give
// without an agent (hostwall status --format prometheus): the generation,
// the trial, whether the files load, and the kernel's counters as they
// stand.
func (g *globals) offlineMetrics(perRule bool) (string, error) {
	e, closeKernel, err := g.engine()
	if err != nil {
		return "", err
	}
	defer closeKernel()
	gen, err := e.Current()
	if err != nil {
		return "", err
	}
	var deadline time.Time
	if t, _ := e.Trial(); t != nil {
		deadline = t.Deadline
	}
	var invalid *engine.InvalidError
	_, err = e.Load()
	reg := prometheus.NewRegistry()
	s := metrics.NewState(reg)
	s.Set(gen, deadline)
	s.Valid(!errors.As(err, &invalid))
	if st, err := e.Status(context.Background()); err == nil {
		s.Names(st.Names)
	}
	reg.MustRegister(&metrics.Kernel{Read: e.LiveChains, Index: e.Index, PerRule: perRule})
	return metrics.Text(reg)
}
