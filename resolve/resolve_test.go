package resolve_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/resolve"
)

// dnsmasq starts a dnsmasq serving args in a namespace of its own.
func dnsmasq(t *testing.T, args ...string) string {
	t.Helper()
	testns.RequireRoot(t)
	ns := testns.New(t)
	testns.DNSMasq(t, ns, args...)
	return ns
}

func lookup(t *testing.T, ns string, r *resolve.Resolver, name string) (resolve.Answer, error) {
	t.Helper()
	var a resolve.Answer
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
	r := &resolve.Resolver{Servers: []string{"127.0.0.1:53"}}
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	for name, want := range map[string]resolve.Answer{
		"api.example.com":    {Name: "api.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"API.Example.com.":   {Name: "api.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"alias.example.com":  {Name: "alias.example.com", Addrs: addrs("192.0.2.10", "2001:db8::10"), TTL: 37 * time.Second},
		"v4only.example.com": {Name: "v4only.example.com", Addrs: addrs("192.0.2.20"), TTL: 37 * time.Second}, // no SOA for the AAAA's absence
	} {
		got, err := lookup(t, ns, r, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.Name != want.Name || !slices.Equal(got.Addrs, want.Addrs) || got.TTL != want.TTL || got.NXDomain {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	if got, err := lookup(t, ns, r, "missing.example.com"); err != nil || !got.NXDomain || len(got.Addrs) != 0 {
		t.Errorf("missing.example.com: %+v, %v; want no such name", got, err)
	}
	dead := &resolve.Resolver{Servers: []string{"127.0.0.1:54"}, Timeout: 200 * time.Millisecond}
	if _, err := lookup(t, ns, dead, "api.example.com"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:54") {
		t.Errorf("a server that does not answer: %v, want an error naming it", err)
	}
	failover := &resolve.Resolver{Servers: []string{"127.0.0.1:54", "127.0.0.1:53"}, Timeout: 200 * time.Millisecond}
	if got, err := lookup(t, ns, failover, "api.example.com"); err != nil || len(got.Addrs) != 2 {
		t.Errorf("after a server that does not answer: %+v, %v", got, err)
	}
}

func TestFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# a comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions timeout:3\n"), 0o644)
	r, err := resolve.FromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Servers, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) || r.Timeout != 2*time.Second {
		t.Errorf("%+v", r)
	}
	os.WriteFile(path, []byte("search example.com\n"), 0o644)
	if _, err := resolve.FromResolvConf(path); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("a resolv.conf without servers: %v", err)
	}
}
