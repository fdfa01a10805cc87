package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/engine"
)

// datastoreFlags are where Calico's etcdv3 datastore is (--datastore and
// the --etcd-* flags, or calicoctl's environment variables).
type datastoreFlags struct {
	kind      string
	endpoints []string
	ca        string
	cert      string
	key       string
	node      string
}

func (f *datastoreFlags) add(pf *pflag.FlagSet) {
	pf.StringVar(&f.kind, "datastore", "", "load Calico's `TYPE` datastore with the files: etcdv3, or none (default: none, or the one the generation in force read; also DATASTORE_TYPE)")
	pf.StringSliceVar(&f.endpoints, "etcd-endpoints", nil, "etcd `URL`s, comma-separated (also ETCD_ENDPOINTS)")
	pf.StringVar(&f.ca, "etcd-ca", "", "CA certificate `FILE` to verify etcd (also ETCD_CA_CERT_FILE)")
	pf.StringVar(&f.cert, "etcd-cert", "", "client certificate `FILE` for etcd (also ETCD_CERT_FILE)")
	pf.StringVar(&f.key, "etcd-key", "", "client key `FILE` for etcd (also ETCD_KEY_FILE)")
	pf.StringVar(&f.node, "node", "", "this host's Calico node `NAME` (--host-name; also NODENAME)")
}

// calicoEnv are calicoctl's variables for the flags (after HOSTWALL_*).
var calicoEnv = map[string]string{
	"datastore": "DATASTORE_TYPE", "etcd-endpoints": "ETCD_ENDPOINTS", "etcd-ca": "ETCD_CA_CERT_FILE",
	"etcd-cert": "ETCD_CERT_FILE", "etcd-key": "ETCD_KEY_FILE", "node": "NODENAME",
}

// fromCalicoEnv sets the datastore flags still unset from calicoctl's
// variables, and --node into --host-name. calicoctl's DATASTORE_TYPE of
// another datastore (kubernetes, on a cluster's nodes) means no datastore
// for hostwall, not an error; NODENAME gives way to --host-name.
func (g *globals) fromCalicoEnv(fs *pflag.FlagSet) error {
	var err error
	// Endpoints given to hostwall (flag or HOSTWALL_ETCD_ENDPOINTS) mean
	// the datastore; calicoctl's ETCD_ENDPOINTS alone, exported in an
	// operator's shell for calicoctl, does not (DATASTORE_TYPE=etcdv3
	// does, as for calicoctl).
	explicit := false
	if f := fs.Lookup("etcd-endpoints"); f != nil {
		explicit = f.Changed
	}
	hostGiven := false
	if f := fs.Lookup("host-name"); f != nil {
		hostGiven = f.Changed
	}
	for name, env := range calicoEnv {
		f := fs.Lookup(name)
		v, ok := os.LookupEnv(env)
		switch {
		case f == nil || f.Changed || !ok || v == "":
			continue
		case name == "datastore" && v != datastore.Type:
			continue // calicoctl's other datastores are not hostwall's
		case name == "node" && hostGiven:
			continue
		}
		if e := f.Value.Set(v); e != nil && err == nil {
			err = fmt.Errorf("%s=%q: %w", env, v, e)
		}
		f.Changed = true
	}
	d := &g.ds
	switch {
	case err != nil:
		return err
	case d.kind != "" && d.kind != datastore.Type && d.kind != "none":
		return fmt.Errorf("--datastore %q: hostwall reads etcdv3 (Calico's etcd datastore), or none", d.kind)
	case d.node != "" && g.hostName != "" && d.node != g.hostName:
		return fmt.Errorf("--node %q and --host-name %q name this host twice: give one", d.node, g.hostName)
	case d.node != "":
		g.hostName = d.node
	}
	if d.kind == "" && explicit {
		d.kind = datastore.Type // endpoints given: the datastore is meant
	}
	for i, ep := range d.endpoints {
		d.endpoints[i] = strings.TrimSpace(ep)
	}
	// TLS files by absolute path: a generation records them, and the
	// agent reading it runs elsewhere.
	for _, p := range []*string{&d.ca, &d.cert, &d.key} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	if d.kind == datastore.Type && len(d.endpoints) > 0 {
		// (none: said by the commands that read the datastore, not by
		// version or status under calicoctl's DATASTORE_TYPE=etcdv3)
		if err := d.config().Check(); err != nil {
			return err
		}
	}
	if f := fs.Lookup("etcd-status-ttl"); f != nil && datastore.StatusTTL < 2*time.Second {
		return fmt.Errorf("--etcd-status-ttl %s: at least 2s (etcd's leases are whole seconds)", datastore.StatusTTL)
	}
	return nil
}

// config is the datastore's configuration from the flags.
func (d *datastoreFlags) config() datastore.Config {
	return datastore.Config{Endpoints: d.endpoints, CA: d.ca, Cert: d.cert, Key: d.key}
}

// datastoreConfig is the datastore a command loads with the files: the
// flags', else the one the generation in force read (so that a plan on
// a host of an etcd fleet does not plan the datastore's policies away);
// nil for none.
func (g *globals) datastoreConfig(e *engine.Engine) (*datastore.Config, error) {
	switch g.ds.kind {
	case "none":
		return nil, nil
	case datastore.Type:
		c := g.ds.config()
		return &c, nil
	}
	rec, _, err := e.RecordedDatastore()
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the generation in force, to tell whether it read the etcd datastore: %w (--datastore none for the files alone)", err)
	case rec == nil:
		return nil, nil // files alone, as ever
	}
	c := datastore.Config{Endpoints: rec.Endpoints, CA: rec.CA, Cert: rec.Cert, Key: rec.Key}
	fmt.Fprintf(os.Stderr, "notice: the generation in force read Calico's etcd datastore (%s, revision %d): it is read again (--datastore none for the files alone)\n",
		strings.Join(rec.Endpoints, ","), rec.Revision)
	return &c, nil
}

// autoHost makes a command on a host whose generation in force read the
// datastore, given no host name, the host that generation was made for
// (the agent's --node, which its unit's environment gave it, and a shell
// does not): else its plan would take the host's endpoints away.
func (g *globals) autoHost(o *engine.Options) {
	if g.ds.kind == "none" || g.hostName != "" {
		return
	}
	rec, host, err := engine.New(*o).RecordedDatastore()
	if err != nil || rec == nil || host == "" {
		return
	}
	g.hostName, o.HostName = host, host
	fmt.Fprintf(os.Stderr, "notice: planning for node %q, as the generation in force was (--node to name another)\n", host)
}

// listOnce is a command's datastore: one list, when the first load asks.
type listOnce struct {
	g    *globals
	e    *engine.Engine
	once sync.Once
	s    *datastore.Snapshot
	err  error
}

// Snapshot lists the datastore (nil when the command reads none).
func (l *listOnce) Snapshot() (*datastore.Snapshot, error) {
	l.once.Do(func() {
		c, err := l.g.datastoreConfig(l.e)
		if err != nil || c == nil {
			l.err = err
			return
		}
		cli, err := datastore.Open(*c, nil)
		if err != nil {
			l.err = err
			return
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.s, l.err = datastore.List(ctx, cli, *c)
	})
	return l.s, l.err
}

// withDatastore makes e's loads read the datastore the flags (or the
// generation in force) name.
func (g *globals) withDatastore(o *engine.Options) func(*engine.Engine) {
	if g.ds.kind == "none" {
		return func(*engine.Engine) {}
	}
	g.autoHost(o)
	l := &listOnce{g: g}
	o.Datastore = l
	return func(e *engine.Engine) { l.e = e }
}

// agentDatastore starts the agent's follower and status reporter when a
// datastore is named (nil, nil: none). They run until ctx ends.
func (g *globals) agentDatastore(ctx context.Context, e *engine.Engine, log *zap.Logger, wg *sync.WaitGroup) (*datastore.Follower, *datastore.Reporter, error) {
	c, err := g.datastoreConfig(e)
	if err != nil || c == nil {
		return nil, nil, err
	}
	seed := e.RecordedSnapshot()
	if seed != nil && !sameEndpoints(seed.Config, *c) {
		seed = nil // another datastore: nothing recorded of it
	}
	cli, err := datastore.Open(*c, log)
	if err != nil {
		// The agent still runs: on what its last generation read, the
		// files, drift repair; status says why etcd is not read.
		log.Error("cannot follow the etcd datastore; enforcing what the last generation read", zap.Error(err))
		f := datastore.NewFollower(nil, *c, log, seed)
		f.Broken(err)
		return f, nil, nil
	}
	f := datastore.NewFollower(cli, *c, log, seed)
	r := datastore.NewReporter(cli, g.nodeName(), log)
	wg.Add(2)
	go func() { defer wg.Done(); f.Run(ctx) }()
	go func() { defer wg.Done(); r.Run(ctx) }()
	go func() { wg.Wait(); cli.Close() }()
	log.Info("following Calico's etcd datastore", zap.Strings("endpoints", c.Endpoints), zap.String("node", g.nodeName()))
	return f, r, nil
}

func sameEndpoints(a, b datastore.Config) bool {
	return strings.Join(a.Endpoints, ",") == strings.Join(b.Endpoints, ",")
}

// nodeName is this host's node name: --node or --host-name, else the
// kernel's hostname.
func (g *globals) nodeName() string {
	if g.hostName != "" {
		return g.hostName
	}
	h, _ := os.Hostname()
	return h
}

func newFleetCmd(g *globals) *cobra.Command {
	fleet := &cobra.Command{
		Use:   "fleet",
		Short: "Show the hosts that follow the etcd datastore",
		Long: `fleet reads what the agents following Calico's etcd datastore
(hostwall agent --datastore etcdv3) report there: each keeps a status key
under a lease. Give the datastore as for the agent: --etcd-endpoints (or
ETCD_ENDPOINTS) and, for TLS, --etcd-ca, --etcd-cert and --etcd-key.
docs/fleet.md says what each host may read and write in etcd.`,
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "List every host of the etcd fleet: the revision it enforces, and which are behind, failing or gone",
		Long: `fleet status reads the status key every agent following the datastore keeps
(/hostwall/status/<node>, under a lease: an agent gone for 15 s drops out)
and the datastore's host endpoints. Each host is:

  current   it enforces the datastore's newest change
  behind    it enforces an older revision (applying, or etcd cut off from it)
  failing   its last apply failed (an invalid resource, a refused change):
            it keeps the last good generation in force
  trial     a generation is on trial there
  gone      host endpoints name it, but no agent reports for it

It exits 1 when a host is not current.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := g.ds.config()
			if g.ds.kind == "none" {
				return errors.New("fleet status reads the etcd datastore: give --etcd-endpoints (or ETCD_ENDPOINTS)")
			}
			cli, err := datastore.Open(c, nil)
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			f, err := datastore.ReadFleet(ctx, cli, c)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(f); err != nil {
					return err
				}
			} else {
				printFleet(cmd.OutOrStdout(), f)
			}
			for _, h := range f.Hosts {
				if h.State != "current" {
					return &exitError{code: 1} // the table said which
				}
			}
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	fleet.AddCommand(status)
	return fleet
}

func printFleet(out io.Writer, f *datastore.Fleet) {
	fmt.Fprintf(out, "Datastore: newest change at revision %d; %d %s\n", f.Revision, len(f.Hosts), plural(len(f.Hosts), "host", "hosts"))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tREVISION\tGENERATION\tLAST APPLY\tDRIFT REPAIRS\tDETAIL")
	for _, h := range f.Hosts {
		s := h.Status
		if s == nil {
			fmt.Fprintf(w, "%s\t%s\t-\t-\t-\t-\t%d host %s; no agent reports\n", printableName(h.Node), strings.ToUpper(h.State), h.Endpoints, plural(h.Endpoints, "endpoint names it", "endpoints name it"))
			continue
		}
		last := "-"
		if !s.LastApply.IsZero() {
			last = fmt.Sprintf("%s %s ago", oneLine(s.Result), time.Since(s.LastApply).Round(time.Second))
		}
		detail := s.Error
		if detail == "" && !s.Trial.IsZero() {
			detail = fmt.Sprintf("generation %d on trial until %s", s.TrialGeneration, s.Trial.Format(time.DateTime))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", printableName(h.Node), strings.ToUpper(h.State), s.Revision, s.Generation, last, s.DriftRepairs, oneLine(detail))
	}
	w.Flush()
}

// safeName is a name printed as it is; others are quoted (a node name
// comes from a host endpoint's spec.node or a status key, which a newline,
// a bidi override or a trailing space could make look like another).
var safeName = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]*$`)

func printableName(s string) string {
	if safeName.MatchString(s) {
		return s
	}
	return strconv.QuoteToASCII(s)
}

// oneLine keeps the first line of s, made printable.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}
