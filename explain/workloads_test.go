package explain_test

import (
	"net/netip"
	"testing"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/explain"
	"github.com/hostwall/hostwall/loader"
)

// TestWorkloadSteps: what decides traffic on a workload interface, for
// each action, with a wildcard endpoint whose policy allows tcp/8080 and
// pre-DNAT policy that denies everything.
func TestWorkloadSteps(t *testing.T) {
	base := `
host_endpoint "all" { interface = "*" }
policy "web" {
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
policy "early" {
  apply_on_forward = true
  pre_dnat         = true
  ingress { action = "deny" }
}
`
	pkt := func(dir explain.Direction, proto uint8, dport uint16, icmp int, st explain.State) explain.Packet {
		return explain.Packet{Iface: "cali1", Direction: dir, Proto: proto, Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("fd00::1"),
			SPort: 40000, DPort: dport, ICMPType: icmp, ICMPCode: -1, State: st}
	}
	tcp := func(dport uint16) explain.Packet { return pkt(explain.In, config.ProtoTCP, dport, -1, explain.New) }
	type want struct {
		v    explain.Verdict
		kind explain.StepKind
	}
	for act, cases := range map[string]map[string]struct {
		p explain.Packet
		w want
	}{
		"drop": {
			"new tcp/8080":         {tcp(8080), want{explain.Deny, explain.WorkloadToHost}},
			"failsafe tcp/22":      {tcp(22), want{explain.Deny, explain.WorkloadToHost}}, // failsafe is host endpoints'
			"established":          {pkt(explain.In, config.ProtoTCP, 8080, -1, explain.Established), want{explain.Allow, explain.ConnTracked}},
			"neighbour solicit":    {pkt(explain.In, config.ProtoICMPv6, 0, 135, explain.New), want{explain.Allow, explain.WorkloadToHost}},
			"router advertisement": {pkt(explain.In, config.ProtoICMPv6, 0, 134, explain.New), want{explain.Deny, explain.WorkloadToHost}},
			"invalid":              {pkt(explain.In, config.ProtoTCP, 8080, -1, explain.Invalid), want{explain.Deny, explain.InvalidState}},
			"host to workload":     {pkt(explain.Out, config.ProtoTCP, 9090, -1, explain.New), want{explain.Allow, explain.HostToWorkload}},
		},
		"accept": {
			"new tcp/9999": {tcp(9999), want{explain.Allow, explain.WorkloadToHost}},
		},
		"return": {
			"new tcp/8080":    {tcp(8080), want{explain.Allow, explain.PolicyRule}},
			"new tcp/9999":    {tcp(9999), want{explain.Deny, explain.EndOfTier}},
			"failsafe tcp/22": {tcp(22), want{explain.Allow, explain.FailsafeEntry}},
		},
	} {
		res, diags := loader.Load([]loader.Source{{Path: "w.hcl", Data: []byte(base + "workloads {\n  interface_prefixes = [\"cali\"]\n  to_host_action = \"" + act + "\"\n}\n")}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		for name, c := range cases {
			r := explain.Explain(res.Config, "h", c.p)
			if r.Verdict != c.w.v || r.Decided.Kind != c.w.kind {
				t.Errorf("%s, %s: %s by %s, want %s by %s (trace %v)", act, name, r.Verdict, r.Decided, c.w.v, c.w.kind, r.Trace)
			}
		}
	}
	// Without workload interfaces, the wildcard endpoint (and its pre-DNAT
	// policy) decides for cali1 as for any interface.
	res, diags := loader.Load([]loader.Source{{Path: "w.hcl", Data: []byte(base)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if r := explain.Explain(res.Config, "h", tcp(8080)); r.Verdict != explain.Deny || r.Decided.Kind != explain.PreDNATRule {
		t.Errorf("without workloads: %s by %s, want the pre-DNAT deny", r.Verdict, r.Decided)
	}
}
