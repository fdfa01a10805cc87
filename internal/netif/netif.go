// Package netif answers questions about a network namespace's interfaces,
// entering the namespace on a thread of its own when asked about another.
package netif

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Path is the file of the network namespace name as --netns gives it: a
// name under /run/netns (as `ip netns` makes them) or a path; "" stays ""
// (the current namespace).
func Path(name string) string {
	if name == "" || strings.ContainsRune(name, '/') {
		return name
	}
	return filepath.Join("/run/netns", name)
}

// In runs f with the calling goroutine's thread inside the namespace file
// path ("" for the current one). The thread is discarded afterwards, so no
// other goroutine ever runs in that namespace by accident.
func In(path string, f func() error) error {
	if path == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening network namespace %s: %w", path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// RouteTo returns the name of the interface the namespace at path routes
// packets to dst through — on a host that routes symmetrically, the one
// packets from dst arrive on — or "" when it has no route to dst. It asks
// the kernel (RTM_GETROUTE), as ip route get does.
func RouteTo(path string, dst netip.Addr) (string, error) {
	var name string
	err := In(path, func() error {
		idx, err := routeOIF(dst)
		if err != nil || idx == 0 {
			return err
		}
		ifc, err := net.InterfaceByIndex(idx)
		if err != nil {
			return err
		}
		name = ifc.Name
		return nil
	})
	return name, err
}

// routeOIF asks the kernel for its route to dst and returns the route's
// output interface index (0: no route).
func routeOIF(dst netip.Addr) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	family := unix.AF_INET
	if dst.Is6() {
		family = unix.AF_INET6
	}
	addr := dst.AsSlice()
	attrLen := unix.SizeofRtAttr + len(addr)
	msg := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofRtMsg+attrLen)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_GETROUTE)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], 1) // sequence
	rt := msg[unix.NLMSG_HDRLEN:]
	rt[0], rt[1] = byte(family), byte(len(addr)*8) // rtm_family, rtm_dst_len
	at := rt[unix.SizeofRtMsg:]
	binary.NativeEndian.PutUint16(at[0:], uint16(attrLen))
	binary.NativeEndian.PutUint16(at[2:], unix.RTA_DST)
	copy(at[unix.SizeofRtAttr:], addr)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<16)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					if errno == int32(unix.ENETUNREACH) || errno == int32(unix.EHOSTUNREACH) {
						return 0, nil
					}
					return 0, fmt.Errorf("route to %s: %w", dst, syscall.Errno(errno))
				}
			}
		case unix.RTM_NEWROUTE:
			attrs, err := syscall.ParseNetlinkRouteAttr(&m)
			if err != nil {
				return 0, err
			}
			for _, a := range attrs {
				if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
					return int(binary.NativeEndian.Uint32(a.Value)), nil
				}
			}
			return 0, nil
		}
	}
	return 0, nil
}

// Names returns the names of the interfaces of the namespace at path.
func Names(path string) ([]string, error) {
	var names []string
	err := In(path, func() error {
		ifs, err := net.Interfaces()
		for _, ifc := range ifs {
			names = append(names, ifc.Name)
		}
		return err
	})
	return names, err
}
