package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/internal/netif"
)

// Options configure a connection.
type Options struct {
	// NetNS is the name of a network namespace under /run/netns (as `ip netns`
	// makes them) or a path to a namespace file; empty means the current one.
	NetNS string
	// BufferBytes is the socket send and receive buffer size; 0 means 64 MiB.
	// Default-sized buffers lose the kernel's acknowledgements of a large
	// batch (ENOBUFS after commit) or refuse it (EMSGSIZE): trap 1.
	BufferBytes int
	// Follow starts following the kernel's events at once (Watch, reporting
	// nothing): from then on a read or a batch can tell other programs'
	// transactions from changes to table inet hostwall, and a busy host's
	// other tables do not make them stale (Read, Apply). Without it, a
	// read follows them while it reads, and a batch does not.
	Follow bool
}

// Conn is a connection to the nftables of one network namespace.
type Conn struct {
	nl   *nftables.Conn // for reads; every batch has a socket of its own (commit.go)
	ns   *os.File       // nil for the current namespace
	nsFD int
	bufs int
	// watch is Watch's subscription (watch.go).
	watch watchState
	// stopFollow ends the subscription of Options.Follow (follow); nil
	// without one.
	stopFollow context.CancelFunc
	followMu   sync.Mutex
}

// Open connects to nftables in the namespace of opts.
func Open(opts Options) (*Conn, error) {
	c := &Conn{bufs: opts.BufferBytes}
	if c.bufs == 0 {
		c.bufs = 64 << 20
	}
	if opts.NetNS != "" {
		f, err := os.Open(netif.Path(opts.NetNS))
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %q: %w", opts.NetNS, err)
		}
		c.ns, c.nsFD = f, int(f.Fd())
	}
	nl, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(c.nsFD), nftables.WithSockOptions(func(nc *netlink.Conn) error {
		if err := c.sizeBuffers(nc); err != nil {
			return err
		}
		if !primeDumpsOn {
			return nil
		}
		return primeDumps(nc)
	}))
	if err != nil {
		c.closeNS()
		return nil, wrapPerm(fmt.Errorf("opening netlink socket: %w", err))
	}
	c.nl = nl
	if opts.Follow {
		if err := c.follow(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// primeDumpsOn is off only in the test that shows trap 11.
var primeDumpsOn = true

// primeDumps makes the kernel send this socket's dumps in 32 KiB messages
// instead of ~4 KiB ones (trap 11). The kernel sizes a dump's messages by
// the largest buffer a recvmsg on the socket has offered, capped at 32 KiB;
// mdlayher/netlink peeks with a page-sized buffer first, so the kernel
// never sees more. Dumping a big interval set restarts the set walk for
// every message, so four times fewer messages is far less kernel work.
// One request (the generation) answered into a 64 KiB buffer raises the
// mark for the socket's lifetime.
func primeDumps(nc *netlink.Conn) error {
	if _, err := nc.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}); err != nil {
		return err
	}
	raw, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		_, _, _, _, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return rerr
}

// sizeBuffers forces large socket buffers, above the rmem_max/wmem_max
// sysctls (CAP_NET_ADMIN); without the capability it takes what it may.
func (c *Conn) sizeBuffers(nc *netlink.Conn) error {
	raw, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], c.bufs); e != nil {
				if e2 := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], c.bufs); e2 != nil {
					serr = e2
				}
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Close releases the connection.
func (c *Conn) Close() error {
	c.followMu.Lock()
	if c.stopFollow != nil {
		c.stopFollow()
	}
	c.followMu.Unlock()
	err := c.nl.CloseLasting()
	c.closeNS()
	return err
}

func (c *Conn) closeNS() {
	if c.ns != nil {
		c.ns.Close()
	}
}

func (c *Conn) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName}
}

// wrapPerm adds the hint every operator needs when netlink says EPERM.
func wrapPerm(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (hostwall needs root, or CAP_NET_ADMIN, to read and change nftables)", err)
	}
	return err
}
