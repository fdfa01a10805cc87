package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/observe"
)

// The control socket speaks one JSON request and one JSON response per
// connection.

// Request is a command to the agent: "status", "confirm", "reload",
// "drops", "metrics", "sample" (AskSample), or "untouched" (AskUntouched).
type Request struct {
	Command string `json:"command"`
	// Follow, with "drops", streams each new drop after the recent ones.
	Follow bool `json:"follow,omitempty"`
	// Cookie, Since and Now are an "untouched" question.
	Cookie uint64 `json:"cookie,omitempty"`
	Since  uint32 `json:"since,omitempty"`
	Now    uint32 `json:"now,omitempty"`
}

// Response is the agent's answer: a status, or a message, or an error.
type Response struct {
	Status  *engine.Status `json:"status,omitempty"`
	Message string         `json:"message,omitempty"`
	Error   string         `json:"error,omitempty"`
	// RolledBack marks a confirm refused because the trial was rolled back.
	RolledBack bool `json:"rolled_back,omitempty"`
	// Untouched answers an "untouched" question.
	Untouched bool `json:"untouched,omitempty"`
	// Drops answers "drops"; Metrics "metrics" (Prometheus's text format).
	Drops   []observe.Drop `json:"drops,omitempty"`
	Metrics string         `json:"metrics,omitempty"`
	// Skipped, in a "drops" stream, counts the drops left out before
	// these because the follower fell behind; Lost says that the kernel
	// could not hand the agent some (it fell behind). NotListening says
	// why the agent does not listen to the drop log.
	Skipped      int    `json:"skipped,omitempty"`
	Lost         bool   `json:"lost,omitempty"`
	NotListening string `json:"not_listening,omitempty"`
}

// AskUntouched asks the agent listening on path whether, by the kernel's
// events it follows, no nftables transaction after generation since, up to
// now, touched table inet hostwall of the namespace with SO_NETNS_COOKIE
// cookie (engine.Options.Untouched). Any doubt is false: the caller then
// reads the kernel. err says that no agent answered (none runs, or it
// hangs): the caller need not ask again.
func AskUntouched(path string, cookie uint64, since, now uint32) (bool, error) {
	conn, err := net.DialTimeout("unix", path, untouchedTimeout)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(untouchedTimeout))
	if err := json.NewEncoder(conn).Encode(Request{Command: "untouched", Cookie: cookie, Since: since, Now: now}); err != nil {
		return false, err
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return false, err
	}
	return resp.Error == "" && resp.Untouched, nil
}

// AskSample asks the agent listening on path to read the rule counters
// now, before the caller changes the rules (what a replaced rule counted
// would be lost otherwise). Any failure is ignored: no agent runs, or it
// does not answer in time.
func AskSample(path string) {
	conn, err := net.DialTimeout("unix", path, untouchedTimeout)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(sampleTimeout))
	if json.NewEncoder(conn).Encode(Request{Command: "sample"}) == nil {
		var resp Response
		json.NewDecoder(conn).Decode(&resp)
	}
}

// sampleTimeout bounds a "sample" request: a read of the table's rules.
const sampleTimeout = 2 * time.Second

// untouchedTimeout bounds an "untouched" question: the agent answers it
// beside its loop, after nft's own wait for the events (at most 200 ms,
// milliseconds as a rule); a stopped agent costs a command no more.
const untouchedTimeout = 300 * time.Millisecond

// ErrNoAgent is returned by Call when no agent listens.
var ErrNoAgent = errors.New("no agent is running")

// Call sends a request to the agent listening on path, and waits for its
// answer up to callTimeout.
func Call(path string, req Request) (*Response, error) { return CallWithin(path, req, callTimeout) }

// ErrNoAnswer is returned by CallWithin when the agent takes longer than
// asked (it may be stopped, or busy applying a large configuration).
var ErrNoAnswer = errors.New("the agent did not answer in time")

// CallWithin is Call waiting up to limit.
func CallWithin(path string, req Request, limit time.Duration) (*Response, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (nothing listens on %s)", ErrNoAgent, path)
		}
		return nil, fmt.Errorf("connecting to the agent: %w", err)
	}
	defer conn.Close()
	// A reload applies; give it time. Status and confirm answer at once
	// unless the agent waits for the namespace's lock.
	conn.SetDeadline(time.Now().Add(limit))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("talking to the agent: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%w (%s, on %s)", ErrNoAnswer, limit, path)
		}
		return nil, fmt.Errorf("reading the agent's answer: %w", err)
	}
	return &resp, nil
}

// callTimeout bounds a request to the agent: a reload applies the files
// (and may wait for the namespace's lock), a confirm waits for a guard
// rolling back.
const callTimeout = 3 * time.Minute

// call is a request waiting for the daemon's loop.
type call struct {
	req   Request
	reply chan Response
}

// listenControl opens the control socket: mode 0600 in the run directory
// (0700), and only root or our own user is served (SO_PEERCRED). A socket
// left by a dead agent is replaced; a live one is an error.
func listenControl(path string) (*net.UnixListener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is serving %s; one agent per network namespace", path)
	}
	os.Remove(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Until the chmod, the umask's mode lacks write for others, which
	// connecting needs.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveControl accepts connections until ln closes, passing requests to
// calls.
func (d *Daemon) serveControl(ctx context.Context, ln *net.UnixListener, calls chan<- call) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go d.serveConn(ctx, conn, calls)
	}
}

func (d *Daemon) serveConn(ctx context.Context, conn *net.UnixConn, calls chan<- call) {
	defer conn.Close()
	enc := json.NewEncoder(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var req Request
	err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req)
	if perr := allowedPeer(conn); perr != nil { // after reading: the client's write must not fail
		d.o.Log.Warn("control socket: refused", zap.Error(perr))
		enc.Encode(Response{Error: perr.Error()})
		return
	}
	if err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Command {
	case "untouched":
		// Answered here, not in the loop, which may be busy applying: the
		// answer comes from the kernel's events alone.
		enc.Encode(Response{Untouched: d.e.Untouched(ctx, req.Cookie, req.Since, req.Now)})
		return
	case "drops": // from the drop log, beside the loop
		d.serveDrops(ctx, conn, enc, req)
		return
	case "metrics": // the registry reads the kernel on a connection of its own
		enc.Encode(d.metricsText())
		return
	case "sample": // a command is about to change the rules: keep their counts
		if d.o.Counters != nil && d.index.Load() != nil {
			d.sampleNow()
		}
		enc.Encode(Response{})
		return
	}
	c := call{req: req, reply: make(chan Response, 1)}
	select {
	case calls <- c:
	case <-ctx.Done():
		enc.Encode(Response{Error: "the agent is stopping"})
		return
	}
	select {
	case r := <-c.reply:
		enc.Encode(r)
	case <-ctx.Done():
		enc.Encode(Response{Error: "the agent is stopping"})
	}
}

// allowedPeer lets root and the agent's own user in.
func allowedPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d may not control the firewall", cred.Uid)
	}
	return nil
}

// handle runs a control request in the daemon's loop.
func (d *Daemon) handle(ctx context.Context, req Request) Response {
	switch req.Command {
	case "status":
		return Response{Status: d.snapshot(ctx)}
	case "confirm":
		t, err := d.e.Confirm("confirmed by hostwall confirm, through the agent")
		if err != nil {
			var rb *engine.RolledBackError
			return Response{Error: err.Error(), RolledBack: errors.As(err, &rb)}
		}
		d.o.Log.Info("trial confirmed", zap.Int("generation", t.Generation))
		return Response{Message: fmt.Sprintf("Generation %d confirmed; it stays.", t.Generation)}
	case "reload":
		d.o.Notify.Reloading()
		d.o.Log.Info("reloading (hostwall reload)")
		err := d.reconcile(ctx, "reload", true)
		d.o.Notify.Ready()
		d.status()
		if err != nil {
			d.o.Log.Error("not applied; the running ruleset stays", zap.Error(err))
			return Response{Error: fmt.Sprintf("not applied; generation %d stays: %s", d.current, err)}
		}
		return Response{Message: fmt.Sprintf("Reloaded: generation %d is in force.", d.current)}
	}
	return Response{Error: fmt.Sprintf("unknown command %q (status, confirm, reload, drops, metrics, untouched)", req.Command)}
}

// snapshot is the agent's status: the engine's, with what the agent knows.
func (d *Daemon) snapshot(ctx context.Context) *engine.Status {
	s, err := d.e.Status(ctx)
	if err != nil {
		s = &engine.Status{Generation: d.current, CountersError: err.Error()}
	}
	s.Agent, s.ConfigDir, s.DriftRepairs, s.LastApply, s.LastDrift = os.Getpid(), d.o.ConfigDir, d.repairs, d.lastApply, d.lastDrift
	s.LastVerified = d.lastVerified
	s.RecentDrops = d.drops.recentDrops()
	if f := d.o.Datastore; f != nil {
		st := f.State()
		if s.Datastore == nil {
			s.Datastore = &engine.DatastoreStatus{Type: datastore.Type}
		}
		s.Datastore.Endpoints = f.Config().Endpoints // what it follows now, whatever the generation read
		s.Datastore.Applied, s.Datastore.Synced, s.Datastore.SyncedAt, s.Datastore.Relists = d.revisionInForce(s.Generation), st.Revision, st.Synced, st.Relists
		if st.Err != nil {
			s.Datastore.Error = st.Err.Error()
		}
	}
	if d.o.Counters != nil {
		if top, since, err := d.o.Counters.TopDrops(ctx, engine.TopDrops); err == nil {
			s.TopDrops, s.DropsSince = top, since
		}
	}
	return s
}
