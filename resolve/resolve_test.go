package resolve

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// dnsmasq starts Debian's dnsmasq in a namespace of its own, serving the
// records of args on 127.0.0.1:53 (names under example.com it does not
// hold do not exist), and returns the namespace once it answers.
func dnsmasq(t *testing.T, args ...string) string {
	t.Helper()
	testns.RequireRoot(t)
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		bin = "/usr/sbin/dnsmasq"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("dnsmasq is not installed (scripts/deps.sh test installs dnsmasq-base)")
	}
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin, "--keep-in-foreground", "--port=53", "--listen-address=127.0.0.1",
		"--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--local=/example.com/"}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := &Resolver{Servers: []string{"127.0.0.1:53"}, Timeout: 100 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testns.Do(ns, func() error { _, err := r.Lookup(context.Background(), "up.example.com"); return err })
		if err == nil {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond) // until dnsmasq answers
	}
}

func lookup(t *testing.T, ns string, r *Resolver, name string) (Answer, error) {
	t.Helper()
	var a Answer
	err := testns.Do(ns, func() (err error) { a, err = r.Lookup(context.Background(), name); return err })
	return a, err
}

// TestLookup: a real dnsmasq's answers — both families and their TTL, an
// alias followed, a name with IPv4 alone, a name that does not exist — and
// a server that does not answer, alone (an error) or before one that
// does (the next is asked).
func TestLookup(t *testing.T) {
	ns := dnsmasq(t, "--local-ttl=37", "--host-record=api.example.com,192.0.2.10,2001:db8::10",
		"--host-record=v4only.example.com,192.0.2.20", "--cname=alias.example.com,api.example.com")
	r := &Resolver{Servers: []string{"127.0.0.1:53"}}
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	for name, want := range map[string]Answer{
		"api.example.com":    {Name: "api.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"API.Example.com.":   {Name: "api.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"alias.example.com":  {Name: "alias.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"v4only.example.com": {Name: "v4only.example.com", Addrs: addrs("192.0.2.20")},
	} {
		got, err := lookup(t, ns, r, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if want.TTL == 0 {
			want.TTL = got.TTL // the negative answer's, for AAAA: dnsmasq's to give
		}
		if got.Name != want.Name || !slices.Equal(got.Addrs, want.Addrs) || got.TTL != want.TTL || got.NXDomain {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	if got, err := lookup(t, ns, r, "missing.example.com"); err != nil || !got.NXDomain || len(got.Addrs) != 0 {
		t.Errorf("missing.example.com: %+v, %v; want no such name", got, err)
	}
	dead := &Resolver{Servers: []string{"127.0.0.1:54"}, Timeout: 200 * time.Millisecond}
	if _, err := lookup(t, ns, dead, "api.example.com"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:54") {
		t.Errorf("a server that does not answer: %v, want an error naming it", err)
	}
	failover := &Resolver{Servers: []string{"127.0.0.1:54", "127.0.0.1:53"}, Timeout: 200 * time.Millisecond}
	if got, err := lookup(t, ns, failover, "api.example.com"); err != nil || len(got.Addrs) != 2 {
		t.Errorf("after a server that does not answer: %+v, %v", got, err)
	}
}

func TestFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# a comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions timeout:3\n"), 0o644)
	r, err := FromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Servers, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) || r.Timeout != 3*time.Second {
		t.Errorf("%+v", r)
	}
	os.WriteFile(path, []byte("search example.com\n"), 0o644)
	if _, err := FromResolvConf(path); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("a resolv.conf without servers: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]string{
		"api.example.com":                "",
		"API.example.com.":               "",
		"_svc.example.com":               "",
		"*.example.com":                  "needs DNS snooping",
		"api":                            "not a fully qualified name",
		"192.0.2.1":                      "is an address",
		"a..example.com":                 "empty label",
		"-a.example.com":                 "cannot",
		"a b.example.com":                "cannot",
		strings.Repeat("a", 64) + ".com": "longer than 63",
		"":                               "empty domain name",
	} {
		err := ValidName(name)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}
