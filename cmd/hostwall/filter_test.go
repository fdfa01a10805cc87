package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// TestDropFilter: hostwall drops' filters keep exactly the drops they
// name, and refuse values that name nothing.
func TestDropFilter(t *testing.T) {
	d := observe.Drop{Iface: "eth0", Packet: observe.PacketInfo{Proto: "tcp",
		Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("192.0.2.10"), SPort: 40000, DPort: 22},
		Decided: &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Policy: "web", Rule: 2}}
	for _, c := range []struct {
		f    dropFilter
		keep bool
	}{
		{dropFilter{}, true},
		{dropFilter{iface: "eth0"}, true},
		{dropFilter{iface: "eth1"}, false},
		{dropFilter{src: "198.51.100.0/24"}, true},
		{dropFilter{src: "198.51.100.8"}, false},
		{dropFilter{dst: "192.0.2.10"}, true},
		{dropFilter{dst: "2001:db8::/32"}, false},
		{dropFilter{port: 22}, true},
		{dropFilter{port: 40000}, true},
		{dropFilter{port: 80}, false},
		{dropFilter{policy: "web"}, true},
		{dropFilter{policy: "db"}, false},
		{dropFilter{iface: "eth0", src: "198.51.100.7", port: 22, policy: "web"}, true},
	} {
		if err := c.f.parse(); err != nil {
			t.Fatalf("%+v: %v", c.f, err)
		}
		if got := c.f.keep(d); got != c.keep {
			t.Errorf("%+v keeps %v, want %v", c.f, got, c.keep)
		}
	}
	if (&dropFilter{policy: "web"}).keep(observe.Drop{}) {
		t.Error("--policy web keeps a drop nothing in the generation decided")
	}
	for f, want := range map[*dropFilter]string{
		{src: "10.0.0.300"}: `--src "10.0.0.300": an address or a network`,
		{dst: "host"}:       `--dst "host"`,
		{port: 70000}:       "--port 70000: a port is 0 to 65535",
	} {
		if err := f.parse(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", f, err, want)
		}
	}
}
