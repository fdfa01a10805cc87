package explain_test

import (
	"net/netip"
	"testing"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/explain"
	"github.com/hostwall/hostwall/loader"
)

const steps = `
host {
  name   = "h"
  labels = { role = "web" }
}
host_endpoint "eth0" {
  interface = "eth0"
  profiles  = ["projectcalico-default-allow"]
}
host_endpoint "eth1" {
  interface = "eth1"
  labels    = { zone = "b" }
}
tier "security" { order = 10 }
policy "guard" {
  tier = "security"
  ingress {
    action = "log"
  }
  ingress {
    action   = "pass"
    protocol = "tcp"
    destination { ports = [80] }
  }
  ingress {
    action   = "deny"
    protocol = "tcp"
    source { nets = ["192.0.2.0/24"] }
  }
  ingress {
    action   = "pass"
    protocol = "udp"
  }
}
policy "web" {
  selector = "zone == 'b'"
  ingress {
    action   = "allow"
    protocol = "udp"
    destination { ports = [53] }
  }
}
`

func TestSteps(t *testing.T) {
	res, diags := loader.Load([]loader.Source{{Path: "s.hcl", Data: []byte(steps)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a := netip.MustParseAddr
	pkt := func(iface string, d explain.Direction, proto uint8, src string, dport uint16) explain.Packet {
		return explain.Packet{Iface: iface, Direction: d, Proto: proto, Src: a(src), Dst: a("198.51.100.1"), SPort: 40000, DPort: dport, ICMPType: -1, ICMPCode: -1, State: explain.New}
	}
	for _, tc := range []struct {
		name    string
		p       explain.Packet
		verdict explain.Verdict
		kind    explain.StepKind
		policy  string
		trace   int
	}{
		{"no endpoint", pkt("eth9", explain.In, 6, "192.0.2.1", 80), explain.Allow, explain.Untouched, "", 1},
		{"failsafe beats deny", pkt("eth0", explain.In, 6, "192.0.2.1", 22), explain.Allow, explain.FailsafeEntry, "", 1},
		{"deny rule", pkt("eth0", explain.In, 6, "192.0.2.1", 8080), explain.Deny, explain.PolicyRule, "guard", 2},
		{"pass, then the profile", pkt("eth0", explain.In, 6, "192.0.2.1", 80), explain.Allow, explain.Profile, "", 4},
		{"pass, end of the default tier", pkt("eth1", explain.In, 6, "192.0.2.1", 80), explain.Deny, explain.EndOfTier, "", 4},
		{"second tier allows", pkt("eth1", explain.In, 17, "203.0.113.9", 53), explain.Allow, explain.PolicyRule, "web", 4},
		{"end of the second tier", pkt("eth1", explain.In, 17, "203.0.113.9", 54), explain.Deny, explain.EndOfTier, "", 4},
		{"end of the first tier", pkt("eth1", explain.In, 1, "203.0.113.9", 0), explain.Deny, explain.EndOfTier, "", 2},
		{"egress: no policy, default deny", pkt("eth1", explain.Out, 17, "203.0.113.9", 5353), explain.Deny, explain.DefaultDeny, "", 1},
		{"forward is not policed", pkt("eth1", explain.Forward, 6, "192.0.2.1", 8080), explain.Allow, explain.ForwardUnpoliced, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := explain.Explain(res.Config, "h", tc.p)
			if r.Verdict != tc.verdict || r.Decided.Kind != tc.kind || r.Decided.Policy != tc.policy || len(r.Trace) != tc.trace {
				t.Errorf("got %s by %q (policy %q), %d steps %v; want %s by %q (policy %q), %d steps",
					r.Verdict, r.Decided.Kind, r.Decided.Policy, len(r.Trace), r.Trace, tc.verdict, tc.kind, tc.policy, tc.trace)
			}
		})
	}
	est := pkt("eth1", explain.In, 6, "192.0.2.1", 8080)
	est.State = explain.Established
	if r := explain.Explain(res.Config, "h", est); r.Decided.Kind != explain.ConnTracked {
		t.Errorf("established: %v", r.Decided)
	}
	nd := explain.Packet{Iface: "eth1", Direction: explain.In, Proto: config.ProtoICMPv6, Src: a("fe80::1"), Dst: a("fe80::2"), ICMPType: 135, ICMPCode: 0, State: explain.New}
	if r := explain.Explain(res.Config, "h", nd); r.Decided.Kind != explain.NeighborDisc {
		t.Errorf("neighbour solicitation: %v", r.Decided)
	}
}
