package datastore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StatusPrefix is where agents keep their status keys: StatusPrefix +
// node, each under a lease of its agent, so that a host whose agent is
// gone drops out by itself.
const StatusPrefix = "/hostwall/status/"

// StatusTTL is the lease of a status key: an agent that stops answering
// is gone this long after.
var StatusTTL = 15 * time.Second

// NodeStatus is an agent's status key's value.
type NodeStatus struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Generation is the generation in force; Revision the etcd revision
	// its datastore resources are as of (0: none).
	Generation int   `json:"generation"`
	Revision   int64 `json:"revision"`
	// Synced is the revision the agent had read the datastore to when it
	// wrote the key. The key is written when the agent's state changes,
	// not periodically (a fleet's agents writing every few seconds would
	// be a load on etcd of its own): the lease, kept alive, says the agent
	// is there.
	Synced int64 `json:"synced"`
	// LastApply is when the last apply ended, Result how ("applied",
	// "invalid", "failed", "held") and Error why not.
	LastApply    time.Time `json:"last_apply,omitzero"`
	Result       string    `json:"result,omitempty"`
	Error        string    `json:"error,omitempty"`
	DriftRepairs int       `json:"drift_repairs"`
	// Trial is the deadline of the generation on trial (zero: none).
	TrialGeneration int       `json:"trial_generation,omitempty"`
	Trial           time.Time `json:"trial_until,omitzero"`
	Updated         time.Time `json:"updated"`
}

// Reporter keeps an agent's status key: written under a lease it keeps
// alive, written again whenever the status changes or the lease was lost
// (etcd down longer than the lease), and removed when the agent stops.
type Reporter struct {
	cli *clientv3.Client
	key string
	log *zap.Logger
	mu  sync.Mutex
	// last is the status to write; core the same without its time, to
	// tell a change.
	last []byte
	core string
	kick chan struct{}
}

// NewReporter reports node's status through cli.
func NewReporter(cli *clientv3.Client, node string, log *zap.Logger) *Reporter {
	return &Reporter{cli: cli, key: StatusPrefix + node, log: log, kick: make(chan struct{}, 1)}
}

// Publish sets the status to write (written by Run, in the background),
// unless it is the one written already.
func (r *Reporter) Publish(s NodeStatus) {
	core, err := json.Marshal(s)
	if err != nil {
		return
	}
	s.Updated = time.Now()
	data, _ := json.Marshal(s)
	r.mu.Lock()
	same := string(core) == r.core
	if !same {
		r.core, r.last = string(core), data
	}
	r.mu.Unlock()
	if same {
		return // written already: only the lease says the agent is there
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run writes the status until ctx ends, then takes the key away.
func (r *Reporter) Run(ctx context.Context) {
	var lease clientv3.LeaseID
	var alive <-chan *clientv3.LeaseKeepAliveResponse
	var cancelAlive context.CancelFunc = func() {}
	backoff := time.Duration(0)
	var retry <-chan time.Time
	defer func() {
		cancelAlive()
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = r.cli.Revoke(rctx, lease) // the key goes with it
			cancel()
		}
	}()
	write := func() bool {
		r.mu.Lock()
		data := r.last
		r.mu.Unlock()
		if data == nil {
			return true
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if lease == 0 {
			g, err := r.cli.Grant(wctx, int64(StatusTTL/time.Second))
			if err != nil {
				return false
			}
			lease = g.ID
			var actx context.Context
			actx, cancelAlive = context.WithCancel(ctx)
			if alive, err = r.cli.KeepAlive(actx, lease); err != nil {
				lease = 0
				return false
			}
		}
		if _, err := r.cli.Put(wctx, r.key, string(data), clientv3.WithLease(lease)); err != nil {
			return false
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry:
		case _, open := <-alive:
			if open {
				continue
			}
			// The lease is lost (etcd gone longer than it): a new one, and
			// the status written again under it.
			cancelAlive()
			lease, alive = 0, nil
		}
		if write() {
			backoff, retry = 0, nil
			continue
		}
		backoff = min(max(2*backoff, backoffFirst), backoffMax)
		retry = time.After(backoff)
	}
}

// Fleet is every host's status, as hostwall fleet status shows it.
type Fleet struct {
	// Revision is the datastore's newest change of the resources hostwall
	// reads: a host enforcing an older one is behind.
	Revision int64  `json:"revision"`
	Hosts    []Host `json:"hosts"`
}

// Host is one host of the fleet: its status key, if any, and the host
// endpoints naming it as their node.
type Host struct {
	Node      string      `json:"node"`
	Status    *NodeStatus `json:"status"`
	Endpoints int         `json:"endpoints"`
	// State is "current", "behind", "failing", "trial" or "gone" (host
	// endpoints name the node, but no agent reports for it).
	State string `json:"state"`
}

// ReadFleet reads every status key and the datastore's host endpoints
// through cli, which c configured.
func ReadFleet(ctx context.Context, cli *clientv3.Client, c Config) (*Fleet, error) {
	st, err := cli.Get(ctx, StatusPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading %s from etcd: %w%s", StatusPrefix, err, c.why(err))
	}
	head := st.Header.Revision
	hosts := map[string]*Host{}
	for _, kv := range st.Kvs {
		var s NodeStatus
		node := strings.TrimPrefix(string(kv.Key), StatusPrefix)
		if json.Unmarshal(kv.Value, &s) != nil {
			s = NodeStatus{Node: node, Result: "unreadable status key", Error: "its value is not a hostwall status"}
		}
		hosts[node] = &Host{Node: node, Status: &s}
	}
	f := &Fleet{}
	now := map[string]bool{}
	_, err = readKinds(ctx, cli, head, func(plural string) bool { return plural != "hostendpoints" }, func(plural string, kv *mvccpb.KeyValue) {
		f.Revision = max(f.Revision, kv.ModRevision)
		now[string(kv.Key)] = true
		if plural != "hostendpoints" {
			return // their revisions alone
		}
		var hep struct {
			Spec struct {
				Node string `json:"node"`
			} `json:"spec"`
		}
		if json.Unmarshal(kv.Value, &hep) != nil || hep.Spec.Node == "" {
			return
		}
		h := hosts[hep.Spec.Node]
		if h == nil {
			h = &Host{Node: hep.Spec.Node}
			hosts[hep.Spec.Node] = h
		}
		h.Endpoints++
	})
	if err != nil {
		return nil, fmt.Errorf("reading %w%s", err, c.why(err))
	}
	// A host is behind when a change came after the revision it enforces:
	// a key written since (its revision is later), or one it has that is
	// gone now — a deletion leaves no key to carry its revision, so the
	// keys at the host's revision tell (one read for each revision hosts
	// are at), and a bisection when.
	live := f.Revision
	gone := map[int64]bool{}
	for _, h := range hosts {
		if h.Status == nil || h.Status.Revision < live || h.Status.Revision >= head {
			continue
		}
		r := h.Status.Revision
		if _, done := gone[r]; done {
			continue
		}
		then, err := keysAt(ctx, cli, r)
		if err != nil {
			gone[r] = false // compacted away: cannot tell
			continue
		}
		var went []string
		for k := range then {
			if !now[k] {
				went = append(went, k)
			}
		}
		gone[r] = len(went) > 0
		if len(went) > 0 {
			f.Revision = max(f.Revision, deletedAfter(ctx, cli, r, head, went))
		}
	}
	for _, h := range hosts {
		h.State = h.state(live, gone)
		f.Hosts = append(f.Hosts, *h)
	}
	sort.Slice(f.Hosts, func(i, j int) bool { return f.Hosts[i].Node < f.Hosts[j].Node })
	return f, nil
}

// keysAt are the keys of the resources hostwall reads at revision rev.
func keysAt(ctx context.Context, cli *clientv3.Client, rev int64) (map[string]bool, error) {
	out := map[string]bool{}
	_, err := readKinds(ctx, cli, rev, func(string) bool { return true }, func(_ string, kv *mvccpb.KeyValue) { out[string(kv.Key)] = true })
	return out, err
}

// deletedAfter is the revision by which every key of went, present at
// revision from and gone at to, was deleted: a bisection of the revisions
// between, reading keys only. etcd keeps no tombstone to list, and a
// watch cannot say when it has caught up (etcd 3.4.23 sends a progress
// notification before the backlog, etcd #15220).
func deletedAfter(ctx context.Context, cli *clientv3.Client, from, to int64, went []string) int64 {
	lo, hi := from, to // at lo one of them is there, at hi none is
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		keys, err := keysAt(ctx, cli, mid)
		if err == nil && !slices.ContainsFunc(went, func(k string) bool { return keys[k] }) {
			hi = mid
		} else {
			lo = mid // (unreadable: taken as still there, the later answer)
		}
	}
	return hi
}

func (h *Host) state(live int64, gone map[int64]bool) string {
	s := h.Status
	switch {
	case s == nil:
		return "gone"
	case s.Result == "invalid" || s.Result == "failed" || s.Error != "":
		return "failing"
	case !s.Trial.IsZero():
		return "trial"
	case s.Revision < live || gone[s.Revision]:
		return "behind"
	}
	return "current"
}
