package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/state"
)

// Options say where an Engine finds the configuration, its records and the
// kernel. The front door fills them from its flags.
type Options struct {
	// ConfigDir is the configuration directory; Load tunes its loading
	// (trust checks, file size, validate's overlay).
	ConfigDir string
	Load      loader.DirOptions
	// StateDir keeps generations and the change under way; RunDir the
	// verified records, the agent's socket and the guard's log.
	StateDir string
	RunDir   string
	// NetNS is --netns: a name under /run/netns or a namespace file's
	// path ("" for hostwall's own namespace).
	NetNS string
	// HostName is --host-name: empty takes the host block's name, else the
	// kernel's hostname (config.Config.HostName).
	HostName string
	Limits   compile.Limits
	// Kernel reaches the namespace's nftables; nil for what needs no
	// kernel (Load).
	Kernel Kernel
	// LockTimeout is how long a change waits for the namespace's lock
	// held by another hostwall (negative: for ever).
	LockTimeout time.Duration
	// Memo keeps, between operations, the decoded files, the large sets of
	// the last compile and the last read of the kernel: for a long-running
	// process (the agent).
	Memo bool
	// Version is this binary's version, part of what a verified record
	// depends on.
	Version string
	// Untouched, when set, tells whether no nftables transaction after
	// generation since, up to now, touched table inet hostwall of the
	// namespace whose SO_NETNS_COOKIE is cookie: then what the kernel held
	// at since it holds at now, and a verified record, or the agent's last
	// read, made at since still holds although other programs changed
	// their tables. The agent answers from the kernel's events
	// (nft.Conn.Untouched); a command asks the agent. False whenever it
	// cannot tell.
	Untouched func(ctx context.Context, cookie uint64, since, now uint32) bool
	// BeforeCommit, if set, runs before a change is sent to the kernel
	// (a command asks the running agent to read the rule counters, which
	// the change may replace).
	BeforeCommit func(ctx context.Context)
	// ResolvConf is the resolv.conf whose servers resolve the policies'
	// domain names ("" for /etc/resolv.conf), unless the host block names
	// dns_servers; they are asked from the namespace (NetNS).
	ResolvConf string
	// Datastore, when set, gives the resources of Calico's etcdv3
	// datastore that each load takes with the files (a generation records
	// them, and the revision).
	Datastore Datastore
	// Notice reports what went wrong but changes no outcome (a record that
	// could not be written costs the next command its shortcut); nil
	// drops them.
	Notice func(string)
}

// Engine is hostwall's host transaction, for one configuration directory
// and one network namespace: load, compile, plan (with every shortcut),
// the lockout check, commit, verify, record, trial, confirm, rollback,
// repair and recovery. The CLI and the agent are its two front doors.
type Engine struct {
	o     Options
	store *state.Store
	run   state.RunDir
	// kernel is what plans read: o.Kernel, or behind cache when o.Memo.
	kernel Kernel
	cache  *readCache
	// compiled keeps the large sets of one compile for the next (o.Memo).
	compiled *compile.Memo
	// names keeps the domain names' answers between loads (o.Memo).
	names *nameCache
	// desired is the table of the generation made current last (o.Memo).
	desired *desiredTable
	// base is the record base staged last, by its sum (o.Memo): withBase
	// takes it instead of decoding the file saved from it (at a million
	// networks, 60 MB made at every change of a nets file).
	base struct {
		sync.Mutex
		sum  string
		kept recordBase
	}

	// snap is the datastore snapshot the operation under way took
	// (takeSnapshot).
	snap *datastore.Snapshot

	// index is the generation in force's, made by Index.
	index *observe.Index

	nsOnce sync.Once
	ns     state.Namespace
	nsErr  error
	// openNS identifies the namespace (state.OpenNamespace; tests stand a
	// directory of their own in for it).
	openNS func() (state.Namespace, error)
}

// New returns an engine.
func New(o Options) *Engine {
	// The state and run directories (and a namespace given as a path)
	// absolute: a trial records them, and whoever finishes it — the agent,
	// the next command — runs elsewhere (a relative "state" given in /tmp/x
	// and read from / was another directory, without the trial's
	// generations).
	for _, p := range []*string{&o.StateDir, &o.RunDir} {
		absolute(p)
	}
	if strings.Contains(o.NetNS, "/") {
		absolute(&o.NetNS)
	}
	e := &Engine{o: o, store: &state.Store{Dir: o.StateDir}, run: state.RunDir{Dir: o.RunDir}, kernel: o.Kernel,
		openNS: func() (state.Namespace, error) { return state.OpenNamespace(o.NetNS, netif.Path(o.NetNS)) }}
	if o.Memo {
		if e.o.Load.Memo == nil {
			e.o.Load.Memo = &loader.Memo{}
		}
		e.compiled = &compile.Memo{}
		e.names = &nameCache{}
		if o.Kernel != nil {
			e.cache = &readCache{Kernel: o.Kernel, untouched: e.untouched}
			e.kernel = e.cache
		}
	}
	return e
}

// absolute makes *p an absolute path, when it is a path at all.
func absolute(p *string) {
	if *p == "" {
		return
	}
	if a, err := filepath.Abs(*p); err == nil {
		*p = a
	}
}

// namespace identifies the namespace, once.
func (e *Engine) namespace() (state.Namespace, error) {
	e.nsOnce.Do(func() { e.ns, e.nsErr = e.openNS() })
	return e.ns, e.nsErr
}

// trials is the namespace's pending trial.
func (e *Engine) trials(ns state.Namespace) state.Trials { return state.Trials{NS: ns, Store: e.store} }

func (e *Engine) notice(format string, args ...any) {
	if e.o.Notice != nil {
		e.o.Notice(fmt.Sprintf(format, args...))
	}
}

// locked runs fn holding the namespace's lock, after recovering from
// whatever a writer that died left behind.
func (e *Engine) locked(fn func(ns state.Namespace) error) error {
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	lock, err := ns.Lock(e.o.LockTimeout, state.NewHolder(e.o.RunDir))
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := e.recover(ns); err != nil {
		return err
	}
	return fn(ns)
}

// Agent returns the registration of the agent serving the namespace, nil
// when none runs: the front door talks to it through Holder.Socket.
func (e *Engine) Agent() *state.Holder {
	ns, err := e.namespace()
	if err != nil {
		return nil
	}
	return ns.Agent()
}

// RegisterAgent marks the namespace as served by this process, the agent
// listening on socket, until the returned lock is released; a second
// agent on the namespace is refused with the first one named.
func (e *Engine) RegisterAgent(socket string) (*state.Lock, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	h := state.NewHolder(e.o.RunDir)
	h.Socket = socket
	return ns.RegisterAgent(h)
}

// Untouched answers Options.Untouched for this engine's namespace: false
// for another namespace (a name reused for a new one), or when the engine
// cannot tell.
func (e *Engine) Untouched(ctx context.Context, cookie uint64, since, now uint32) bool {
	ns, err := e.namespace()
	return err == nil && ns.Cookie == cookie && e.o.Untouched != nil && e.o.Untouched(ctx, cookie, since, now)
}

// SocketPath is where an agent of this run directory listens.
func (e *Engine) SocketPath() string { return e.run.SocketPath(e.o.NetNS) }

// GuardLog is where a guard started for this run directory logs.
func (e *Engine) GuardLog() (*os.File, error) {
	if err := os.MkdirAll(e.o.RunDir, 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(e.run.Dir+"/guard.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// lockedWaiting is locked, waiting at least wait for the lock.
func (e *Engine) lockedWaiting(wait time.Duration, fn func(ns state.Namespace) error) error {
	saved := e.o.LockTimeout
	if saved >= 0 && saved < wait {
		e.o.LockTimeout = wait
		defer func() { e.o.LockTimeout = saved }()
	}
	return e.locked(fn)
}
