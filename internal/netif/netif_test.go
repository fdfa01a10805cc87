package netif_test

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/internal/testns"
)

// TestRoutes: RouteTo asks the kernel as ip route get does — policy
// routing chooses by the source address, an unusable route (blackhole,
// prohibit, unreachable) is no route — and Uplinks finds
// every uplink: each table's default routes, each nexthop of a multipath
// one.
func TestRoutes(t *testing.T) {
	testns.RequireRoot(t)
	ns, peer := testns.New(t), testns.New(t)
	testns.Veth(t, peer, "p0", "10.10.0.254/24", ns, "eth0", "10.10.0.1/24")
	testns.Veth(t, peer, "p1", "10.20.0.254/24", ns, "eth1", "10.20.0.1/24")
	testns.Veth(t, peer, "p2", "10.30.0.254/24", ns, "ens2", "10.30.0.1/24")
	testns.Veth(t, peer, "p3", "10.40.0.254/24", ns, "eth3", "10.40.0.1/24")
	testns.Veth(t, peer, "p5", "10.50.0.254/24", ns, "ens5", "10.50.0.1/24")
	// Nexthop objects only, as with net.ipv4.nexthop_compat_mode=0 (a
	// route names its nexthop's id, and no device).
	testns.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.nexthop_compat_mode=0")
	for _, args := range [][]string{
		{"route", "add", "default", "via", "10.10.0.254"},
		{"route", "add", "default", "via", "10.20.0.254", "table", "100"},
		{"rule", "add", "from", "10.20.0.1", "table", "100"},
		{"rule", "add", "ipproto", "tcp", "sport", "2222", "table", "100"},
		{"route", "add", "blackhole", "198.18.0.0/24"},
		{"route", "add", "prohibit", "198.18.1.0/24"},
		{"route", "add", "unreachable", "198.18.2.0/24"},
		{"route", "add", "default", "table", "200", "nexthop", "via", "10.10.0.254", "nexthop", "via", "10.30.0.254"},
		{"nexthop", "add", "id", "1", "via", "10.30.0.254", "dev", "ens2"},
		{"nexthop", "add", "id", "2", "via", "10.40.0.254", "dev", "eth3"},
		{"nexthop", "add", "id", "10", "group", "1/2"},
		{"route", "add", "default", "nhid", "10", "table", "300"},
		{"route", "add", "0.0.0.0/1", "via", "10.50.0.254", "dev", "ens5", "table", "400"},
	} {
		testns.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	path := "/run/netns/" + ns
	client := netip.MustParseAddr("203.0.113.7")
	for _, c := range []struct {
		f    netif.Flow
		want string
	}{
		{netif.Flow{Dst: client}, "eth0"},
		{netif.Flow{Dst: client, Src: netip.MustParseAddr("10.10.0.1")}, "eth0"},
		{netif.Flow{Dst: client, Src: netip.MustParseAddr("10.20.0.1")}, "eth1"},                                      // ip rule from 10.20.0.1
		{netif.Flow{Dst: client, Src: netip.MustParseAddr("10.10.0.1"), Proto: 6, SPort: 2222, DPort: 50000}, "eth1"}, // ip rule ipproto tcp sport 2222
		{netif.Flow{Dst: client, Src: netip.MustParseAddr("10.10.0.1"), Proto: 6, SPort: 22, DPort: 50000}, "eth0"},
		{netif.Flow{Dst: netip.MustParseAddr("10.30.0.9")}, "ens2"},
		{netif.Flow{Dst: netip.MustParseAddr("198.18.0.5")}, ""},
		{netif.Flow{Dst: netip.MustParseAddr("198.18.1.5")}, ""},
		{netif.Flow{Dst: netip.MustParseAddr("198.18.2.5")}, ""},
	} {
		got, err := netif.RouteTo(path, c.f)
		if err != nil || got != c.want {
			t.Errorf("RouteTo(%+v) = %q, %v; want %q", c.f, got, err, c.want)
		}
	}
	for zone, want := range map[string]string{"eth1": "eth1", "nosuch": ""} {
		if got, err := netif.ZoneInterface(path, zone); err != nil || got != want {
			t.Errorf("ZoneInterface(%q) = %q, %v; want %q", zone, got, err, want)
		}
	}
	var idx string
	testns.Do(ns, func() error {
		ifc, err := net.InterfaceByName("ens2")
		if err == nil {
			idx = strconv.Itoa(ifc.Index)
		}
		return err
	})
	if got, err := netif.ZoneInterface(path, idx); err != nil || got != "ens2" {
		t.Errorf("ZoneInterface(%q, ens2's index) = %q, %v", idx, got, err)
	}
	got, err := netif.Uplinks(path)
	var names []string
	for _, u := range got {
		names = append(names, u.Name)
		if !u.V4 || u.V6 {
			t.Errorf("uplink %+v: IPv4 only", u)
		}
	}
	if want := []string{"ens2", "ens5", "eth0", "eth1", "eth3"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("Uplinks = %q, %v; want %q", names, err, want)
	}
}
