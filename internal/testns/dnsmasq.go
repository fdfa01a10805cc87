package testns

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostwall/hostwall/resolve"
)

// DNSMasq starts Debian's dnsmasq inside namespace ns (its lo up), serving
// the records its args give on 127.0.0.1:53 — names under example.com it
// does not hold do not exist — and returns once it answers, with what
// stops it (as the end of the test does).
func DNSMasq(t testing.TB, ns string, args ...string) (stop func()) {
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
	var once sync.Once
	stop = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(stop)
	r := &resolve.Resolver{Servers: []string{"127.0.0.1:53"}, Timeout: 100 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := Do(ns, func() error { _, err := r.Lookup(context.Background(), "up.example.com"); return err })
		if err == nil {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // until dnsmasq answers
	}
}
