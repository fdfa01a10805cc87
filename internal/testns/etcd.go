package testns

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EtcdCluster is a real etcd cluster (Debian's etcd-server) of members on
// loopback, its data in the test's temporary directory, stopped when the
// test ends.
type EtcdCluster struct {
	t       testing.TB
	members []*etcdMember
	cluster string
}

type etcdMember struct {
	name, client, peer, dir string
	cmd                     *exec.Cmd
	log                     *strings.Builder
}

// Etcd starts an etcd cluster of n members and returns it once it is
// healthy.
func Etcd(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatal("etcd is not installed (scripts/deps.sh test installs etcd-server and etcd-client)")
	}
	c := &EtcdCluster{t: t}
	base := t.TempDir()
	var peers []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), client: "http://" + freePort(t), peer: "http://" + freePort(t),
			dir: filepath.Join(base, fmt.Sprintf("m%d", i))}
		c.members = append(c.members, m)
		peers = append(peers, m.name+"="+m.peer)
	}
	c.cluster = strings.Join(peers, ",")
	for i := range c.members {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Kill(i)
		}
	})
	c.AwaitHealthy()
	return c
}

// freePort is a loopback address with a port free now.
func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client)
	}
	return out
}

// Start starts member i (again: with its data, as it was).
func (c *EtcdCluster) Start(i int) {
	c.t.Helper()
	m := c.members[i]
	m.log = &strings.Builder{}
	m.cmd = exec.Command("etcd", "--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.cluster, "--initial-cluster-state", "new", "--initial-cluster-token", filepath.Base(filepath.Dir(m.dir)),
		"--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn")
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// Kill kills member i at once (SIGKILL), as a crash would.
func (c *EtcdCluster) Kill(i int) {
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
}

// AwaitHealthy waits until every running member answers with a leader.
func (c *EtcdCluster) AwaitHealthy() {
	c.t.Helper()
	var eps []string
	for _, m := range c.members {
		if m.cmd != nil {
			eps = append(eps, m.client)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("etcdctl", "--endpoints", strings.Join(eps, ","), "endpoint", "health").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd is not healthy: %v\n%s\n%s", err, out, c.logs())
		}
		time.Sleep(100 * time.Millisecond) // until the members elect a leader
	}
}

func (c *EtcdCluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		if m.log != nil {
			fmt.Fprintf(&b, "--- %s:\n%s\n", m.name, m.log.String())
		}
	}
	return b.String()
}

// Ctl runs etcdctl against the running members and returns its output.
func (c *EtcdCluster) Ctl(args ...string) string {
	c.t.Helper()
	var eps []string
	for _, m := range c.members {
		if m.cmd != nil {
			eps = append(eps, m.client)
		}
	}
	out, err := exec.Command("etcdctl", append([]string{"--endpoints", strings.Join(eps, ",")}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Revision is the cluster's current revision.
func (c *EtcdCluster) Revision() int64 {
	c.t.Helper()
	out := c.Ctl("endpoint", "status", "--write-out", "fields")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, `"Revision" : `); ok {
			var r int64
			fmt.Sscan(v, &r)
			return r
		}
	}
	c.t.Fatalf("no revision in etcdctl endpoint status:\n%s", out)
	return 0
}
