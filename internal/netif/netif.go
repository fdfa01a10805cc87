// Package netif answers questions about a network namespace's interfaces,
// entering the namespace on a thread of its own when asked about another.
package netif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

// Flow is a packet as a route lookup sees it: its destination, and, when
// set, its source address, IP protocol and ports (policy routing may
// choose by each).
type Flow struct {
	Dst, Src     netip.Addr
	Proto        uint8
	SPort, DPort uint16
}

// RouteTo returns the name of the interface the namespace at path routes
// flow f through — on a host that routes symmetrically, the one the
// packets of the other way arrive on — or "" when it has no usable route
// (none, or a blackhole, prohibit or unreachable one). It asks the kernel
// (RTM_GETROUTE), as ip route get DST from SRC ipproto P sport S dport D
// does.
func RouteTo(path string, f Flow) (string, error) {
	var name string
	err := In(path, func() error {
		idx, err := routeOIF(f)
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

// routeOIF asks the kernel for its route for f and returns the route's
// output interface index (0: no usable route).
func routeOIF(f Flow) (int, error) {
	dst, src := f.Dst, f.Src
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	family := unix.AF_INET
	if dst.Is6() {
		family = unix.AF_INET6
	}
	addr := dst.WithZone("").AsSlice()
	attrs := [][]byte{rtattr(unix.RTA_DST, addr)}
	withSrc := src.IsValid() && src.Is6() == dst.Is6() && !src.IsUnspecified()
	if withSrc {
		attrs = append(attrs, rtattr(unix.RTA_SRC, src.WithZone("").AsSlice()))
	}
	if f.Proto != 0 {
		attrs = append(attrs, rtattr(unix.RTA_IP_PROTO, []byte{f.Proto}),
			rtattr(unix.RTA_SPORT, binary.BigEndian.AppendUint16(nil, f.SPort)),
			rtattr(unix.RTA_DPORT, binary.BigEndian.AppendUint16(nil, f.DPort)))
	}
	body := make([]byte, unix.SizeofRtMsg)
	body[0], body[1] = byte(family), byte(len(addr)*8) // rtm_family, rtm_dst_len
	if withSrc {
		body[2] = byte(len(addr) * 8) // rtm_src_len
	}
	for _, a := range attrs {
		body = append(body, a...)
	}
	oif := 0
	err = exchange(fd, unix.RTM_GETROUTE, 0, body, func(m syscall.NetlinkMessage) (bool, error) {
		if m.Header.Type != unix.RTM_NEWROUTE {
			return false, nil
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return true, err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
				oif = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
		return true, nil
	})
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.ENETUNREACH, unix.EHOSTUNREACH, unix.EINVAL, unix.EACCES, unix.EPERM, unix.EAGAIN:
			// No route, or an unreachable, blackhole, prohibit or throw
			// one: nothing is sent to dst at all.
			return 0, nil
		}
		return 0, fmt.Errorf("route to %s: %w", dst, errno)
	}
	return oif, err
}

// ZoneInterface returns the name of the interface an IPv6 zone names in the
// namespace at path — a name, or an index — or "" when it has none such.
func ZoneInterface(path, zone string) (string, error) {
	var name string
	err := In(path, func() error {
		ifc, err := net.InterfaceByName(zone)
		if err != nil {
			if i, aerr := strconv.Atoi(zone); aerr == nil {
				ifc, err = net.InterfaceByIndex(i)
			}
		}
		if err == nil {
			name = ifc.Name
		}
		return nil
	})
	return name, err
}

// rtattr is a route attribute, padded to 4 bytes.
func rtattr(typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], val)
	return b
}

// Uplink is an interface a default route goes out by, and the families
// of those routes.
type Uplink struct {
	Name   string
	V4, V6 bool
}

// Uplinks returns the interfaces the default routes of the namespace at
// path go out by — every table's, IPv4 and IPv6, every nexthop of a
// multipath one or of a nexthop object (or group), and the halves of a
// split default (0.0.0.0/1 and 128.0.0.0/1, as VPN clients install) —
// sorted by name: a host's uplinks.
func Uplinks(path string) ([]Uplink, error) {
	var out []Uplink
	err := In(path, func() error {
		oifs, err := defaultRouteOIFs()
		if err != nil {
			return err
		}
		for _, o := range oifs {
			ifc, err := net.InterfaceByIndex(o.index)
			if err != nil {
				continue
			}
			i := slices.IndexFunc(out, func(u Uplink) bool { return u.Name == ifc.Name })
			if i < 0 {
				out = append(out, Uplink{Name: ifc.Name})
				i = len(out) - 1
			}
			out[i].V4 = out[i].V4 || !o.v6
			out[i].V6 = out[i].V6 || o.v6
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Uplink) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// rtaNHID is RTA_NH_ID, a route's nexthop object (x/sys does not name it).
const rtaNHID = 30

// oif is a route's output interface and the route's family.
type oif struct {
	index int
	v6    bool
}

// defaultRouteOIFs dumps the nexthop objects and the routes, and returns
// the output interfaces of the unicast routes to 0/0 and ::/0 (and their
// halves).
func defaultRouteOIFs() ([]oif, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// Nexthop objects: id → output interfaces (a group, its members').
	devs, groups := map[uint32][]int{}, map[uint32][]uint32{}
	err = dump(fd, unix.RTM_GETNEXTHOP, 8, func(m syscall.NetlinkMessage) error { // struct nhmsg
		var id uint32
		var dev int
		var members []uint32
		for b := m.Data[8:]; len(b) >= unix.SizeofRtAttr; {
			l, typ := int(binary.NativeEndian.Uint16(b)), binary.NativeEndian.Uint16(b[2:])&^unix.NLA_F_NESTED
			if l < unix.SizeofRtAttr || l > len(b) {
				break
			}
			v := b[unix.SizeofRtAttr:l]
			switch {
			case typ == unix.NHA_ID && len(v) >= 4:
				id = binary.NativeEndian.Uint32(v)
			case typ == unix.NHA_OIF && len(v) >= 4:
				dev = int(binary.NativeEndian.Uint32(v))
			case typ == unix.NHA_GROUP: // struct nexthop_grp: id, weight, …: 8 bytes each
				for g := v; len(g) >= 8; g = g[8:] {
					members = append(members, binary.NativeEndian.Uint32(g))
				}
			}
			b = b[min(len(b), (l+3)&^3):]
		}
		if dev != 0 {
			devs[id] = append(devs[id], dev)
		}
		groups[id] = members
		return nil
	})
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		return nil, err
	}
	nexthop := func(id uint32) []int {
		out := devs[id]
		for _, m := range groups[id] {
			out = append(out, devs[m]...)
		}
		return out
	}
	var out []oif
	err = dump(fd, unix.RTM_GETROUTE, unix.SizeofRtMsg, func(m syscall.NetlinkMessage) error {
		// rtm_family, rtm_dst_len, …, rtm_type: a unicast route to all of
		// a family's addresses, or one half of them.
		if m.Data[1] > 1 || m.Data[7] != unix.RTN_UNICAST {
			return nil
		}
		v6 := m.Data[0] == unix.AF_INET6
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return err
		}
		for _, a := range attrs {
			switch {
			case a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4:
				out = append(out, oif{int(binary.NativeEndian.Uint32(a.Value)), v6})
			case a.Attr.Type == rtaNHID && len(a.Value) >= 4:
				for _, d := range nexthop(binary.NativeEndian.Uint32(a.Value)) {
					out = append(out, oif{d, v6})
				}
			case a.Attr.Type == unix.RTA_MULTIPATH: // struct rtnexthop, each with its attributes
				for b := a.Value; len(b) >= 8; {
					l := int(binary.NativeEndian.Uint16(b))
					out = append(out, oif{int(int32(binary.NativeEndian.Uint32(b[4:]))), v6})
					next := (l + 3) &^ 3
					if l < 8 || next > len(b) {
						break
					}
					b = b[next:]
				}
			}
		}
		return nil
	})
	return out, err
}

// dump sends a dump request of typ with a zeroed header of hdr bytes on
// the NETLINK_ROUTE socket fd and calls f with each message answering it
// that holds at least the header.
func dump(fd int, typ uint16, hdr int, f func(syscall.NetlinkMessage) error) error {
	return exchange(fd, typ, unix.NLM_F_DUMP, make([]byte, hdr), func(m syscall.NetlinkMessage) (bool, error) {
		if len(m.Data) < hdr {
			return false, nil
		}
		return false, f(m)
	})
}

// exchange sends a request of typ (with flags and body) on the
// NETLINK_ROUTE socket fd, and calls f with each message answering it
// until f says it is done or fails, the kernel ends a dump (NLMSG_DONE),
// or it refuses the request (the errno is the error).
func exchange(fd int, typ, flags uint16, body []byte, f func(syscall.NetlinkMessage) (done bool, err error)) error {
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(msg[8:], uint32(typ)) // sequence
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		got, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:got])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data))); errno != 0 {
						return errno
					}
				}
				return nil
			}
			if done, err := f(m); done || err != nil {
				return err
			}
		}
	}
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
