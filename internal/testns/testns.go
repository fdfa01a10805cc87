// Package testns gives tests throwaway network namespaces, veth pairs
// between them, and a way to run code inside one. The host's own namespace
// and ruleset are never changed.
package testns

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/netif"
)

// RequireRoot skips the test when not root, unless HOSTWALL_REQUIRE_ROOT_TESTS
// is set, in which case it fails: CI must never skip kernel tests silently.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("HOSTWALL_REQUIRE_ROOT_TESTS") != "" {
		t.Fatal("this test needs root (CAP_NET_ADMIN) and HOSTWALL_REQUIRE_ROOT_TESTS is set")
	}
	t.Skip("this test needs root (CAP_NET_ADMIN) to create network namespaces")
}

// Tool fails the test when a command the test needs is missing.
func Tool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (make test installs it: apt-get install -y nftables iproute2 conntrack)", name)
	}
}

// New creates a network namespace named after the test (as `ip netns add`,
// under /run/netns) with loopback up, and removes it when the test ends.
func New(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Tool(t, "ip")
	Tool(t, "conntrack")
	b := make([]byte, 4)
	rand.Read(b)
	name := "hwtest-" + hex.EncodeToString(b)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and fails the test if it fails; it returns stdout.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NFT runs the nft command inside ns (tests use it as an independent oracle).
func NFT(t testing.TB, ns string, args ...string) string {
	t.Helper()
	Tool(t, "nft")
	return Run(t, "ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
}

// Veth joins two namespaces with a veth pair: ifA in a with addrA, ifB in b
// with addrB (CIDR notation), both up.
func Veth(t testing.TB, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	Run(t, "ip", "link", "add", ifA, "netns", a, "type", "veth", "peer", "name", ifB, "netns", b)
	Run(t, "ip", "-n", a, "addr", "add", addrA, "dev", ifA)
	Run(t, "ip", "-n", b, "addr", "add", addrB, "dev", ifB)
	Run(t, "ip", "-n", a, "link", "set", ifA, "up")
	Run(t, "ip", "-n", b, "link", "set", ifB, "up")
}

// Do runs f on a thread that has entered namespace ns. Sockets f creates stay
// in ns after it returns.
func Do(ns string, f func() error) error {
	return netif.In("/run/netns/"+ns, f)
}

// ServeClosing listens for TCP on addr inside namespace ns and closes every
// connection it accepts at once, until the listener is closed.
func ServeClosing(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	if err := Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}

// StopStragglers makes the test, when it ends and before its temporary
// directories are removed, kill every process that still names dir in its
// command line or environment — a trial's guard sleeping until its
// deadline, say — and wait until each is gone, so that no test leaves a
// process behind or has one recreate its directory after the removal.
// Call it after making dir with t.TempDir (cleanups run last first).
func StopStragglers(t testing.TB, dir string) {
	t.Cleanup(func() {
		for _, pid := range processesNaming(dir) {
			p, err := os.FindProcess(pid)
			if err != nil || p.Kill() != nil {
				continue
			}
			t.Logf("killed process %d, still running from %s when the test ended", pid, dir)
			deadline := time.Now().Add(10 * time.Second)
			for processAlive(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
}

// processesNaming lists the processes, other than this one, whose command
// line or environment contains s.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			data, _ := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if strings.Contains(string(data), s) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(after, "Z")
}
