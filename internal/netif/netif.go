// Package netif answers questions about a network namespace's interfaces,
// entering the namespace on a thread of its own when asked about another.
package netif

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"

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

// InterfaceOf returns the name of the interface holding address a in the
// namespace at path, or "" when none does.
func InterfaceOf(path string, a netip.Addr) (string, error) {
	var name string
	err := In(path, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, ad := range addrs {
				if ipn, ok := ad.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == a {
						name = ifc.Name
						return nil
					}
				}
			}
		}
		return nil
	})
	return name, err
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
