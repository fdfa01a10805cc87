package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/explain"
)

func newExplainCmd(g *globals) *cobra.Command {
	var (
		f                  explainFlags
		in, out, forward   bool
		asJSON             bool
		icmpType, icmpCode int
	)
	cmd := &cobra.Command{
		Use:   "explain --iface IF (--in|--out|--forward --out-iface IF) --proto P [--src A] [--dst A] [--sport N] [--dport N] [--icmp-type T]",
		Short: "Say what the configuration does with one packet, and why",
		Long: `explain evaluates one packet against the configuration — not against the
kernel — and prints the verdict and the step that decided it: an untouched
interface, an established connection, a failsafe entry, a policy rule, the
end of a tier, a profile, the default deny, or, on a workload interface,
the workload-to-host action or the host's right to reach its workloads. It
never touches the kernel.

Addresses not given default to 0.0.0.0 (or :: when the other one is IPv6).
--src or --dst may be a domain name: it is resolved as the policies' names
are, and each of its addresses explained in turn. The connection state
defaults to new.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e := g.loader()
			l, err := e.Load()
			if err != nil {
				return failed(err)
			}
			warn(l.Warnings)
			// A name for --src or --dst: each of its addresses (of the
			// other side's IP version, if given), in turn.
			for _, side := range []*string{&f.src, &f.dst} {
				if *side == "" || config.ValidDomain(*side) != nil {
					continue
				}
				a, err := e.ResolveName(l.Result.Config, *side)
				if err != nil {
					return err
				}
				if len(a.Addrs) == 0 {
					return fmt.Errorf("%s has no address now: rules naming it match nothing", a.Name)
				}
				name, other := *side, f.dst
				if side == &f.dst {
					other = f.src
				}
				shown := 0
				for _, addr := range a.Addrs {
					if o, err := netip.ParseAddr(other); err == nil && o.Unmap().Is4() != addr.Is4() {
						continue
					}
					i := shown
					shown++
					*side = addr.String()
					if !asJSON {
						if i > 0 {
							fmt.Fprintln(cmd.OutOrStdout())
						}
						fmt.Fprintf(cmd.OutOrStdout(), "%s → %s:\n", name, addr)
					}
					if err := explainOne(cmd, &f, l, in, out, forward, icmpType, icmpCode, asJSON); err != nil {
						return err
					}
				}
				if shown == 0 {
					return fmt.Errorf("%s has no address of the other side's IP version (%s)", a.Name, other)
				}
				return nil
			}
			return explainOne(cmd, &f, l, in, out, forward, icmpType, icmpCode, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.iface, "iface", "", "the interface the packet crosses, or arrives on when forwarded (required)")
	fl.StringVar(&f.outIface, "out-iface", "", "the interface a forwarded packet leaves by (with --forward)")
	fl.BoolVar(&in, "in", false, "the packet comes in to this host")
	fl.BoolVar(&out, "out", false, "the packet leaves this host")
	fl.BoolVar(&forward, "forward", false, "the packet is routed through this host")
	fl.StringVar(&f.proto, "proto", "", "protocol: tcp, udp, icmp, icmpv6, sctp, udplite or a number (required)")
	fl.StringVar(&f.src, "src", "", "source address")
	fl.StringVar(&f.dst, "dst", "", "destination address")
	fl.Var((*portFlag)(&f.sport), "sport", "source `PORT` (0-65535)")
	fl.Var((*portFlag)(&f.dport), "dport", "destination `PORT` (0-65535)")
	fl.IntVar(&icmpType, "icmp-type", -1, "ICMP or ICMPv6 type")
	fl.IntVar(&icmpCode, "icmp-code", -1, "ICMP or ICMPv6 code")
	fl.StringVar(&f.state, "state", "new", "connection state: new, established, related or invalid")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// portFlag is a port number given on the command line, refused with a
// message that says what a port is.
type portFlag uint16

func (p *portFlag) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}

func (p *portFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not a port: a port is a number 0-65535", s)
	}
	*p = portFlag(n)
	return nil
}

func (p *portFlag) Type() string { return "port" }

type explainFlags struct {
	iface, outIface, proto, src, dst, state string
	sport, dport                            uint16
}

func (f explainFlags) packet(in, out, forward bool, icmpType, icmpCode int) (explain.Packet, error) {
	p := explain.Packet{Iface: f.iface, OutIface: f.outIface, SPort: f.sport, DPort: f.dport, ICMPType: icmpType, ICMPCode: icmpCode, State: explain.State(f.state)}
	switch {
	case f.iface == "":
		return p, fmt.Errorf("--iface is required")
	case f.proto == "":
		return p, fmt.Errorf("--proto is required")
	}
	n := 0
	for _, b := range []bool{in, out, forward} {
		if b {
			n++
		}
	}
	switch {
	case n != 1:
		return p, fmt.Errorf("give exactly one of --in, --out, --forward")
	case in:
		p.Direction = explain.In
	case out:
		p.Direction = explain.Out
	default:
		p.Direction = explain.Forward
		if f.outIface == "" {
			return p, fmt.Errorf("--forward needs --out-iface, the interface the packet leaves by")
		}
	}
	if num, ok := config.ProtocolNumbers[strings.ToLower(f.proto)]; ok {
		p.Proto = num
	} else if v, err := strconv.ParseUint(f.proto, 10, 8); err == nil {
		p.Proto = uint8(v)
	} else {
		return p, fmt.Errorf("--proto %q: use tcp, udp, icmp, icmpv6, sctp, udplite or a number 0-255", f.proto)
	}
	icmp := p.Proto == config.ProtoICMP || p.Proto == config.ProtoICMPv6
	for _, v := range []struct {
		flag  string
		value int
	}{{"--icmp-type", icmpType}, {"--icmp-code", icmpCode}} {
		switch {
		case v.value == -1:
		case !icmp:
			return p, fmt.Errorf("%s is for --proto icmp or icmpv6, not %s", v.flag, f.proto)
		case v.value < 0 || v.value > 255:
			return p, fmt.Errorf("%s %d: an ICMP type or code is a number 0-255", v.flag, v.value)
		}
	}
	if (f.sport != 0 || f.dport != 0) && icmp {
		return p, fmt.Errorf("--sport and --dport are for protocols with ports, not %s", f.proto)
	}
	switch p.State {
	case explain.New, explain.Established, explain.Related, explain.Invalid:
	default:
		return p, fmt.Errorf("--state %q: use new, established, related or invalid", f.state)
	}
	var err error
	if p.Src, err = addrFlag("--src", f.src); err != nil {
		return p, err
	}
	if p.Dst, err = addrFlag("--dst", f.dst); err != nil {
		return p, err
	}
	zero := netip.IPv4Unspecified()
	if p.Src.Is6() || p.Dst.Is6() {
		zero = netip.IPv6Unspecified()
	}
	if !p.Src.IsValid() {
		p.Src = zero
	}
	if !p.Dst.IsValid() {
		p.Dst = zero
	}
	if p.Src.Is4() != p.Dst.Is4() {
		return p, fmt.Errorf("--src and --dst must be of one IP version")
	}
	return p, nil
}

func addrFlag(name, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%s %q is not an IP address", name, s)
	}
	return a.Unmap(), nil
}

type jsonStep struct {
	Kind     string `json:"kind"`
	Text     string `json:"text"`
	Endpoint string `json:"endpoint,omitempty"`
	Tier     string `json:"tier,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Rule     int    `json:"rule,omitempty"`
	Action   string `json:"action,omitempty"`
}

func explainJSON(r explain.Result) any {
	step := func(s explain.Step) jsonStep {
		return jsonStep{Kind: string(s.Kind), Text: s.String(), Endpoint: s.Endpoint, Tier: s.Tier, Policy: s.Policy, Rule: s.Rule, Action: string(s.Action)}
	}
	trace := []jsonStep{}
	for _, s := range r.Trace {
		trace = append(trace, step(s))
	}
	out := map[string]any{"verdict": r.Verdict, "decided": step(r.Decided), "trace": trace}
	if r.Audit {
		out["audit"] = true // allowed by an endpoint in audit mode; decided would have denied it
	}
	if st := r.Staged; st != nil {
		staged := map[string]any{"verdict": st.Verdict, "decided": step(st.Decided)}
		if st.Audit {
			staged["audit"] = true
		}
		out["staged"] = staged // what the staged policies' view decides, when it differs
	}
	return out
}

// explainOne explains the packet the flags f describe, by the loaded
// configuration l.
func explainOne(cmd *cobra.Command, f *explainFlags, l *engine.Loaded, in, out, forward bool, icmpType, icmpCode int, asJSON bool) error {
	p, err := f.packet(in, out, forward, icmpType, icmpCode)
	if err != nil {
		return err
	}
	r := explain.Explain(l.Result.Config, l.Host, p)
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(explainJSON(r))
	}
	w := cmd.OutOrStdout()
	if r.Audit {
		fmt.Fprintf(w, "%s (audit mode; enforced, it would be deny): %s\n", r.Verdict, r.Decided)
	} else {
		fmt.Fprintf(w, "%s: %s\n", r.Verdict, r.Decided)
	}
	if st := r.Staged; st != nil {
		audit := ""
		if st.Audit {
			audit = " (audit mode)"
		}
		fmt.Fprintf(w, "staged: %s%s: %s (the staged policies would change this; the kernel enforces the verdict above)\n", st.Verdict, audit, st.Decided)
	}
	// The steps other than the one above: in audit mode that one is
	// the deny gone past, and what let the packet by is among them.
	var way []explain.Step
	for _, s := range r.Trace {
		if s != r.Decided {
			way = append(way, s)
		}
	}
	if len(way) > 0 {
		fmt.Fprintln(w, "on the way:")
		for _, s := range way {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	return nil
}
