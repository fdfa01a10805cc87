// Package datastore reads Calico's etcdv3 datastore: the resources of the
// kinds hostwall enforces (loader.DatastoreKinds), listed at one revision
// and then followed by a watch, as libcalico-go's etcdv3 backend keeps them
// — one key per resource, loader.CalicoPrefix + plural + "/" + name,
// holding the resource as JSON. It also keeps each agent's status key
// under a lease (status.go), which hostwall fleet status lists.
//
// It hands out what it read as loader sources (one per key): the loader
// decodes and validates them as it does Calico files, and a generation
// records them, so a rollback needs no datastore.
package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/hostwall/hostwall/loader"
)

// Type is the one datastore type hostwall reads (calicoctl's
// DATASTORE_TYPE).
const Type = "etcdv3"

// Config is how to reach the datastore: calicoctl's ETCD_ENDPOINTS,
// ETCD_CA_CERT_FILE, ETCD_CERT_FILE and ETCD_KEY_FILE.
type Config struct {
	Endpoints []string `json:"endpoints"`
	CA        string   `json:"ca,omitempty"`
	Cert      string   `json:"cert,omitempty"`
	Key       string   `json:"key,omitempty"`
}

// Check refuses a configuration that cannot work, before any connection.
func (c Config) Check() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no etcd endpoints: give --etcd-endpoints (or ETCD_ENDPOINTS), e.g. https://10.0.0.1:2379")
	}
	for _, ep := range c.Endpoints {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return fmt.Errorf("etcd endpoint %q: give a URL, http://HOST:PORT or https://HOST:PORT", ep)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		return errors.New("--etcd-cert and --etcd-key go together: give both, or neither")
	}
	return nil
}

// Open connects a client (it dials lazily: an unreachable etcd is an error
// of the first request, not of Open). log gets the client's warnings.
func Open(c Config, log *zap.Logger) (*clientv3.Client, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints, TLS: tlsConf, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		// gRPC's own reconnection backs off to 2 minutes; etcd back after
		// an outage is followed within 10 s.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 10 * time.Second}})},
		Logger: log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
	})
}

// tlsConfig is the TLS client configuration of c (nil: plain HTTP).
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CA == "" && c.Cert == "" {
		return nil, nil
	}
	if c.CA != "" {
		pemData, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("etcd TLS: %s holds no PEM certificate (--etcd-ca, ETCD_CA_CERT_FILE)", c.CA)
		}
	}
	info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CA}
	conf, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return conf, nil
}

// why says, after a request that timed out, why each endpoint did not
// answer — refused, unreachable, a TLS failure (x509, no client
// certificate) — which the client itself never says; "" for other errors.
func (c Config) why(err error) string {
	if !errors.Is(err, context.DeadlineExceeded) {
		return ""
	}
	conf, _ := c.tlsConfig()
	var out []string
	for _, ep := range c.Endpoints {
		if e := probe(ep, conf); e != nil {
			out = append(out, fmt.Sprintf("%s: %v", ep, e))
		}
	}
	if len(out) == 0 {
		return " (every endpoint accepts connections, yet etcd does not answer: it has no leader, or an http:// endpoint is a TLS one)"
	}
	return " (" + strings.Join(out, "; ") + ")"
}

// probe connects to one endpoint as the client would: TCP, then TLS for
// https with the client's certificate, and a moment's read in which a
// server that refuses the certificate says so.
func probe(endpoint string, conf *tls.Config) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	if u.Scheme != "https" {
		c, err := d.Dial("tcp", u.Host)
		if err == nil {
			c.Close()
		}
		return err
	}
	if conf == nil {
		conf = &tls.Config{}
	} else {
		conf = conf.Clone()
	}
	conf.ServerName = u.Hostname()
	c, err := tls.DialWithDialer(d, "tcp", u.Host, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return err
	}
	return nil
}

// Snapshot is the datastore's resources of the kinds hostwall reads, as
// of a revision, with where they came from.
type Snapshot struct {
	Config Config
	// Revision is the etcd revision the resources are as of.
	Revision int64
	// Sources are the resources, one per key, in key order.
	Sources []loader.Source
	// Synced is when the datastore last confirmed the snapshot current;
	// zero for one taken from a generation's record, never confirmed.
	Synced time.Time
	// cluster is the etcd cluster it was listed from, term its raft term
	// then.
	cluster, term uint64
}

// List reads every resource of the kinds hostwall reads, all at one
// revision: the first kind's read fixes it, the others are read at it.
func List(ctx context.Context, cli *clientv3.Client, c Config) (*Snapshot, error) {
	s := &Snapshot{Config: c}
	h, err := readKinds(ctx, cli, 0, nil, func(_ string, kv *mvccpb.KeyValue) {
		if _, _, ok := loader.DatastoreKey(string(kv.Key)); ok {
			s.Sources = append(s.Sources, source(string(kv.Key), kv.Value))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing %w%s", err, c.why(err))
	}
	s.Revision, s.cluster, s.term = h.Revision, h.ClusterId, h.RaftTerm
	sort.Slice(s.Sources, func(i, j int) bool { return s.Sources[i].Path < s.Sources[j].Path })
	s.Synced = time.Now()
	return s, nil
}

// readKinds reads the keys of every kind hostwall reads, kind by kind, at
// revision rev (0: the first read's, fixed for the others), keys alone
// for the kinds keysOnly says (nil: none), and hands each to each. It
// returns the first read's header.
func readKinds(ctx context.Context, cli *clientv3.Client, rev int64, keysOnly func(plural string) bool, each func(plural string, kv *mvccpb.KeyValue)) (etcdserverpb.ResponseHeader, error) {
	plurals := slices.Sorted(maps.Keys(loader.DatastoreKinds))
	var first etcdserverpb.ResponseHeader
	for _, p := range plurals {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		if keysOnly != nil && keysOnly(p) {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		resp, err := cli.Get(ctx, loader.CalicoPrefix+p+"/", opts...)
		if err != nil {
			return first, fmt.Errorf("%s%s/ from etcd: %w", loader.CalicoPrefix, p, err)
		}
		if rev == 0 {
			rev, first = resp.Header.Revision, *resp.Header
		}
		for _, kv := range resp.Kvs {
			each(p, kv)
		}
	}
	return first, nil
}

// source is a key's value as a loader source.
func source(key string, value []byte) loader.Source {
	return loader.Source{Path: loader.DatastorePrefix + key, Data: value}
}

// FromRecord is the snapshot a generation recorded: its datastore
// sources, at its revision (never confirmed: Synced is zero).
func FromRecord(c Config, revision int64, srcs []loader.Source) *Snapshot {
	s := &Snapshot{Config: c, Revision: revision}
	for _, src := range srcs {
		if loader.IsDatastore(src.Path) {
			s.Sources = append(s.Sources, src)
		}
	}
	return s
}
