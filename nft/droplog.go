package nft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"

	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/observe"
)

// dropCopy is how much of each dropped packet the kernel copies to us:
// the network and transport headers (an IPv6 header with up to 200 bytes
// of extension headers, then TCP's first 14), never much of the data.
const dropCopy = 256

// ErrDropLogBusy means another program listens to the drop log's NFLOG
// group in this namespace (the kernel gives a group one listener). Not
// root is refused alike: CAP_NET_ADMIN is needed to listen.
var ErrDropLogBusy = errors.New("another program listens to the drop log's NFLOG group")

// ListenDrops listens to NFLOG group group of the namespace o names and
// calls f with each packet logged there, until ctx ends; it returns once
// listening, and lost(n) says when the kernel dropped n messages because
// f kept up too slowly (the socket's buffer filled). done is closed when
// listening ends.
func ListenDrops(ctx context.Context, o Options, group uint16, f func(observe.Logged), lost func(error)) (done <-chan struct{}, err error) {
	// Each packet at once (the kernel batches 100, or a second, by
	// default): the rate limit keeps them few.
	cfg := &nflog.Config{Group: group, Copymode: nflog.CopyPacket, Bufsize: dropCopy, QThresh: 1}
	path := netif.Path(o.NetNS)
	if path != "" {
		ns, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %q: %w", o.NetNS, err)
		}
		defer ns.Close() // the socket keeps its namespace once made
		cfg.NetNS = int(ns.Fd())
	}
	nl, err := nflog.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the drop log (NFLOG): %w", err)
	}
	// Losing a burst is better than stopping: the kernel reports ENOBUFS
	// (lost) and we read on.
	_ = nl.SetOption(netlink.NoENOBUFS, false)
	names := &ifNames{path: path}
	ctx, cancel := context.WithCancel(ctx)
	err = nl.RegisterWithErrorFunc(ctx, func(a nflog.Attribute) int {
		l := observe.Logged{Time: time.Now()}
		if a.Timestamp != nil {
			l.Time = *a.Timestamp
		}
		if a.Prefix != nil {
			l.Prefix = strings.TrimRight(*a.Prefix, "\x00")
		}
		if a.InDev != nil {
			l.In = names.name(*a.InDev)
		}
		if a.OutDev != nil {
			l.Out = names.name(*a.OutDev)
		}
		if a.Payload != nil {
			l.Payload = *a.Payload
		}
		f(l)
		return 0
	}, func(err error) int {
		var op *netlink.OpError
		switch {
		case ctx.Err() != nil:
			return 1
		case errors.As(err, &op) && (op.Timeout() || errors.Is(op.Err, syscall.ENOBUFS)):
			if lost != nil && !op.Timeout() {
				lost(err)
			}
			return 0
		case errors.Is(err, syscall.ENOBUFS):
			if lost != nil {
				lost(err)
			}
			return 0
		}
		if lost != nil {
			lost(err)
		}
		cancel() // the reader ends: so does listening
		return 1
	})
	if err != nil {
		cancel()
		nl.Close()
		// The kernel refuses a group bound by another socket with EPERM;
		// the library wraps it with %v, so the text tells.
		if errors.Is(err, syscall.EPERM) || strings.Contains(err.Error(), "operation not permitted") {
			return nil, fmt.Errorf("listening to NFLOG group %d: %w (is the agent running, or another hostwall drops?)", group, ErrDropLogBusy)
		}
		return nil, fmt.Errorf("listening to NFLOG group %d: %w", group, err)
	}
	out := make(chan struct{})
	go func() {
		defer cancel()
		<-ctx.Done()
		nl.Close() // waits for the reader to end; the group is unbound
		close(out)
	}()
	return out, nil
}

// ifNames maps interface indexes of a namespace to names, asking the
// kernel again for an index it does not know (an interface made since).
type ifNames struct {
	path  string
	mu    sync.Mutex
	names map[uint32]string
}

func (n *ifNames) name(idx uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := n.names[idx]; ok {
		return name
	}
	n.names = map[uint32]string{}
	_ = netif.In(n.path, func() error {
		ifs, err := net.Interfaces()
		for _, ifc := range ifs {
			n.names[uint32(ifc.Index)] = ifc.Name
		}
		return err
	})
	if name, ok := n.names[idx]; ok {
		return name
	}
	name := fmt.Sprintf("if%d", idx) // gone already
	n.names[idx] = name
	return name
}
