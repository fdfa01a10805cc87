package datastore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"

	"github.com/hostwall/hostwall/loader"
)

// Reconnecting waits backoffFirst after a failure, doubling up to
// backoffMax (with jitter: a fleet whose etcd came back does not come
// back to it in step).
const (
	backoffFirst = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
)

// ListTimeout bounds a list: the client waits for ever for a connection
// otherwise.
var ListTimeout = 5 * time.Second

// ProgressEvery is how often a follower asks etcd to confirm its watch is
// current (a progress notification): how fresh "synced" is while nothing
// changes, and how soon a silent etcd shows as stale.
var ProgressEvery = 2 * time.Second

// Follower keeps the datastore's resources current: a list, then a watch
// from the list's revision; a lost connection is watched again from where
// it stopped, with backoff, and a revision compacted meanwhile is listed
// again in full. Every change is signalled on Changes.
type Follower struct {
	cli *clientv3.Client
	c   Config
	log *zap.Logger

	mu sync.Mutex
	// res are the values by key as of rev; listed once there was a list
	// or a seed.
	res    map[string][]byte
	rev    int64
	listed bool
	// synced is when etcd last confirmed rev current; err the last
	// failure since (nil once in sync again); relists counts full lists
	// after the first.
	synced  time.Time
	err     error
	relists int
	// cluster is the etcd cluster listed (0: none yet), term the highest
	// raft term seen of it.
	cluster, term uint64
	// dropped is set when the connection to etcd was lost since the last
	// list (Run).
	dropped atomic.Bool

	changes chan struct{}
	// ready is closed once etcd first answered.
	ready     chan struct{}
	readyOnce sync.Once
}

// NewFollower follows the datastore through cli. seed, when not nil, is
// what a generation recorded: it serves until the first list or watch
// answers (etcd down at boot), and the watch starts from its revision.
func NewFollower(cli *clientv3.Client, c Config, log *zap.Logger, seed *Snapshot) *Follower {
	f := &Follower{cli: cli, c: c, log: log, res: map[string][]byte{}, changes: make(chan struct{}, 1), ready: make(chan struct{})}
	if seed != nil {
		for _, s := range seed.Sources {
			f.res[s.Path[len(loader.DatastorePrefix):]] = s.Data
		}
		f.rev, f.listed = seed.Revision, true
	}
	return f
}

// Broken makes a follower that cannot reach etcd at all (its client could
// not be made: a TLS file): Run records err and returns; Snapshot gives
// the seed.
func (f *Follower) Broken(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Config is where the follower reads.
func (f *Follower) Config() Config { return f.c }

// Changes signals that the resources changed (one signal for any number).
func (f *Follower) Changes() <-chan struct{} { return f.changes }

// Ready is closed once etcd first answered (a list, or a watch).
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// ErrNotListed is Snapshot's error before the datastore was ever read.
var ErrNotListed = errors.New("the etcd datastore has not been read yet")

// Snapshot is the resources as of the last revision seen.
func (f *Follower) Snapshot() (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.listed {
		if f.err != nil {
			return nil, errors.Join(ErrNotListed, f.err)
		}
		return nil, ErrNotListed
	}
	s := &Snapshot{Config: f.c, Revision: f.rev, Synced: f.synced, Sources: make([]loader.Source, 0, len(f.res))}
	for k, v := range f.res {
		s.Sources = append(s.Sources, source(k, v))
	}
	sort.Slice(s.Sources, func(i, j int) bool { return s.Sources[i].Path < s.Sources[j].Path })
	return s, nil
}

// State is where a follower stands.
type State struct {
	Revision int64
	// Synced is when etcd last confirmed Revision current (zero: never).
	Synced time.Time
	// Err is the last failure to reach etcd since then (nil: none).
	Err     error
	Relists int
}

// State says where the follower stands.
func (f *Follower) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return State{Revision: f.rev, Synced: f.synced, Err: f.err, Relists: f.relists}
}

// Run follows the datastore until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	if f.cli == nil {
		return // Broken
	}
	backoff := time.Duration(0)
	// A seed serves until etcd answers, but is never watched from: etcd
	// may have been rebuilt or restored since, its revisions lower than
	// the seed's (a watch from the seed's would wait for ever).
	relist, first := true, true
	// The client reconnects and resumes a watch by itself, however short
	// the loss, and may come back to an etcd rebuilt or restored under the
	// same identity, past the revision it resumes from: any loss of the
	// connection since the last list makes the next answer a list.
	if conn := f.cli.ActiveConnection(); conn != nil {
		go func() {
			for st := conn.GetState(); conn.WaitForStateChange(ctx, st); st = conn.GetState() {
				if st == connectivity.Ready {
					f.dropped.Store(true)
				}
			}
		}()
	}
	for ctx.Err() == nil {
		if relist {
			f.dropped.Store(false) // a loss during the list counts
			lctx, cancel := context.WithTimeout(ctx, ListTimeout)
			s, err := List(lctx, f.cli, f.c)
			cancel()
			if err != nil {
				f.failed(err)
			} else {
				f.replace(s, !first)
				relist, backoff, first = false, 0, false
			}
		}
		if !relist {
			var ok bool
			relist, ok = f.watch(ctx)
			if ok {
				backoff = 0
			}
			if relist {
				continue // at once: the watch answered
			}
		}
		backoff = min(max(2*backoff, backoffFirst), backoffMax)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// watch watches from the revision after the one held, until the watch
// fails: relist when etcd compacted the revisions it needed; ok when it
// answered at least once.
func (f *Follower) watch(ctx context.Context) (relist, ok bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	f.mu.Lock()
	from := f.rev + 1
	f.mu.Unlock()
	wch := f.cli.Watch(wctx, loader.CalicoPrefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	tick := time.NewTicker(ProgressEvery)
	defer tick.Stop()
	var asked time.Time
	answered := time.Now()
	// A progress request right away: a watch that starts from a revision
	// already current sends no event to say so.
	_ = f.cli.RequestProgress(wctx)
	for {
		select {
		case <-ctx.Done():
			return false, ok
		case <-tick.C:
			// The watch itself retries in silence: a progress request
			// unanswered by the next one says etcd is not there.
			if !asked.IsZero() && answered.Before(asked) {
				f.failed(fmt.Errorf("etcd has not answered for %s", time.Since(answered).Round(time.Second)))
			}
			asked = time.Now()
			pctx, pcancel := context.WithTimeout(wctx, ProgressEvery)
			if err := f.cli.RequestProgress(pctx); err != nil && wctx.Err() == nil {
				f.failed(err)
			}
			pcancel()
		case resp, open := <-wch:
			switch {
			case !open:
				if ctx.Err() == nil {
					f.failed(errors.New("the etcd watch ended"))
				}
				return false, ok
			case resp.CompactRevision != 0:
				f.log.Warn("the etcd revisions to watch from were compacted; listing the datastore again",
					zap.Int64("from", from), zap.Int64("compacted", resp.CompactRevision))
				return true, true
			case errors.Is(resp.Err(), rpctypes.ErrCompacted):
				return true, true
			case resp.Err() != nil:
				f.failed(resp.Err())
				return false, ok
			}
			ok, answered = true, time.Now()
			if f.behind(resp.Header) {
				f.log.Warn("the etcd datastore is another cluster, or went back (rebuilt, or restored from a backup); listing it again",
					zap.Int64("was at", f.State().Revision), zap.Int64("now at", resp.Header.Revision))
				return true, true
			}
			if f.State().Err != nil || f.dropped.Load() {
				// Back after it did not answer: what answers may be etcd
				// rebuilt or restored under the same identity (its client
				// resumes the watch where it stood, and a restored etcd
				// may be past that revision already); list it again.
				f.log.Info("the etcd datastore answers again; listing it again")
				return true, true
			}
			f.noteTerm(resp.Header.RaftTerm)
			f.apply(resp)
		}
	}
}

// behind reports whether a response comes from a datastore that is not
// the one listed (another cluster) or is behind the revision held (etcd
// restored from a backup): the watch would miss its changes.
func (f *Follower) behind(h etcdserverpb.ResponseHeader) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cluster != 0 && h.ClusterId != f.cluster || h.Revision != 0 && h.Revision < f.rev ||
		h.RaftTerm != 0 && h.RaftTerm < f.term
}

// noteTerm keeps the highest raft term seen: a cluster rebuilt or
// restored under the same identity starts its terms over.
func (f *Follower) noteTerm(t uint64) {
	f.mu.Lock()
	f.term = max(f.term, t)
	f.mu.Unlock()
}

// apply takes a watch response in: its events, or a confirmation that
// the revision held is current.
func (f *Follower) apply(resp clientv3.WatchResponse) {
	f.mu.Lock()
	changed := false
	for _, ev := range resp.Events {
		key := string(ev.Kv.Key)
		f.rev = max(f.rev, ev.Kv.ModRevision)
		if _, _, ok := loader.DatastoreKey(key); !ok {
			continue
		}
		changed = true
		if ev.Type == clientv3.EventTypeDelete {
			delete(f.res, key)
		} else {
			f.res[key] = ev.Kv.Value
		}
	}
	// A progress notification's revision is not taken: etcd 3.4.23
	// (Debian's) sends one to a watch still catching up, ahead of events
	// to come (etcd #15220); a watch resumed from it would skip them. It
	// says etcd answers, which is all it is taken for.
	if f.err != nil {
		f.log.Info("the etcd datastore answers again", zap.Int64("revision", f.rev))
	}
	f.synced, f.err = time.Now(), nil
	f.mu.Unlock()
	f.readyOnce.Do(func() { close(f.ready) })
	if changed {
		f.signal()
	}
}

// replace takes a full list in; again counts it as a list after the
// first (relists).
func (f *Follower) replace(s *Snapshot, again bool) {
	f.mu.Lock()
	if again {
		f.relists++
	}
	f.res = make(map[string][]byte, len(s.Sources))
	for _, src := range s.Sources {
		f.res[src.Path[len(loader.DatastorePrefix):]] = src.Data
	}
	if f.err != nil {
		f.log.Info("the etcd datastore answers again", zap.Int64("revision", s.Revision))
	}
	f.rev, f.listed, f.synced, f.err, f.cluster, f.term = s.Revision, true, s.Synced, nil, s.cluster, s.term
	f.mu.Unlock()
	f.readyOnce.Do(func() { close(f.ready) })
	f.signal()
}

// failed records a failure to reach etcd.
func (f *Follower) failed(err error) {
	f.mu.Lock()
	first := f.err == nil
	f.err = err
	f.mu.Unlock()
	if first {
		f.log.Warn("cannot reach the etcd datastore; enforcing what was last read, and trying again", zap.Error(err))
	}
}

func (f *Follower) signal() {
	select {
	case f.changes <- struct{}{}:
	default:
	}
}
