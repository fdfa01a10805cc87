package nft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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
}

// Conn is a connection to the nftables of one network namespace.
type Conn struct {
	nl   *nftables.Conn // for reads; every batch gets a connection of its own
	ns   *os.File       // nil for the current namespace
	nsFD int
	bufs int
}

// NetNSPath resolves a namespace name to its file.
func NetNSPath(name string) string {
	if strings.ContainsRune(name, '/') {
		return name
	}
	return filepath.Join("/run/netns", name)
}

// Open connects to nftables in the namespace of opts.
func Open(opts Options) (*Conn, error) {
	c := &Conn{bufs: opts.BufferBytes}
	if c.bufs == 0 {
		c.bufs = 64 << 20
	}
	if opts.NetNS != "" {
		f, err := os.Open(NetNSPath(opts.NetNS))
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %q: %w", opts.NetNS, err)
		}
		c.ns, c.nsFD = f, int(f.Fd())
	}
	nl, err := c.dial()
	if err != nil {
		c.closeNS()
		return nil, err
	}
	c.nl = nl
	return c, nil
}

// dial opens a library connection with large buffers in our namespace.
func (c *Conn) dial() (*nftables.Conn, error) {
	nl, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(c.nsFD), nftables.WithSockOptions(c.sizeBuffers))
	if err != nil {
		return nil, wrapPerm(fmt.Errorf("opening netlink socket: %w", err))
	}
	return nl, nil
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
