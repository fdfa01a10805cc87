package netif_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/internal/testns"
)

// TestRoutes: RouteTo asks the kernel as ip route get does — policy
// routing chooses by the source address, an unusable route (blackhole,
// prohibit, unreachable) is no route — and DefaultRouteInterfaces finds
// every uplink: each table's default routes, each nexthop of a multipath
// one.
func TestRoutes(t *testing.T) {
	testns.RequireRoot(t)
	ns, peer := testns.New(t), testns.New(t)
	testns.Veth(t, peer, "p0", "10.10.0.254/24", ns, "eth0", "10.10.0.1/24")
	testns.Veth(t, peer, "p1", "10.20.0.254/24", ns, "eth1", "10.20.0.1/24")
	testns.Veth(t, peer, "p2", "10.30.0.254/24", ns, "ens2", "10.30.0.1/24")
	for _, args := range [][]string{
		{"route", "add", "default", "via", "10.10.0.254"},
		{"route", "add", "default", "via", "10.20.0.254", "table", "100"},
		{"rule", "add", "from", "10.20.0.1", "table", "100"},
		{"route", "add", "blackhole", "198.18.0.0/24"},
		{"route", "add", "prohibit", "198.18.1.0/24"},
		{"route", "add", "unreachable", "198.18.2.0/24"},
		{"route", "add", "default", "table", "200", "nexthop", "via", "10.10.0.254", "nexthop", "via", "10.30.0.254"},
	} {
		testns.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	path := "/run/netns/" + ns
	client := netip.MustParseAddr("203.0.113.7")
	for _, c := range []struct {
		dst, src netip.Addr
		want     string
	}{
		{client, netip.Addr{}, "eth0"},
		{client, netip.MustParseAddr("10.10.0.1"), "eth0"},
		{client, netip.MustParseAddr("10.20.0.1"), "eth1"}, // ip rule from 10.20.0.1
		{netip.MustParseAddr("10.30.0.9"), netip.Addr{}, "ens2"},
		{netip.MustParseAddr("198.18.0.5"), netip.Addr{}, ""},
		{netip.MustParseAddr("198.18.1.5"), netip.Addr{}, ""},
		{netip.MustParseAddr("198.18.2.5"), netip.Addr{}, ""},
	} {
		got, err := netif.RouteTo(path, c.dst, c.src)
		if err != nil || got != c.want {
			t.Errorf("RouteTo(%s from %s) = %q, %v; want %q", c.dst, c.src, got, err, c.want)
		}
	}
	got, err := netif.DefaultRouteInterfaces(path)
	if want := []string{"ens2", "eth0", "eth1"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("DefaultRouteInterfaces = %q, %v; want %q", got, err, want)
	}
}
