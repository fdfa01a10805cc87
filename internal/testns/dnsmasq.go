package testns

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/resolve"
)

// DNSMasq starts Debian's dnsmasq inside namespace ns (its lo up), serving
// the records its args give on 127.0.0.1:53 — names under example.com it
// does not hold do not exist — and returns it once it answers; it is
// stopped when the test ends.
func DNSMasq(t testing.TB, ns string, args ...string) *DNSServer {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		bin = "/usr/sbin/dnsmasq"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("dnsmasq is not installed (scripts/deps.sh test installs dnsmasq-base)")
	}
	Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin, "--keep-in-foreground", "--port=53", "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--local=/example.com/"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &DNSServer{cmd: cmd}
	t.Cleanup(d.Stop)
	r := &resolve.Resolver{Servers: []string{"127.0.0.1:53"}, Timeout: 100 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := Do(ns, func() error { _, err := r.Lookup(context.Background(), "up.example.com"); return err })
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // until dnsmasq answers
	}
}

// DNSServer is a dnsmasq DNSMasq started.
type DNSServer struct {
	cmd  *exec.Cmd
	once sync.Once
}

// Stop stops it.
func (d *DNSServer) Stop() { d.once.Do(func() { d.cmd.Process.Kill(); d.cmd.Wait() }) }

// Reload makes it read its hosts files again (SIGHUP).
func (d *DNSServer) Reload() { d.cmd.Process.Signal(syscall.SIGHUP) }
