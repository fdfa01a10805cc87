package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/explain"
	"github.com/hostwall/hostwall/internal/netif"
)

// ErrLockout is the error (wrapped) of a change the lockout check refuses.
var ErrLockout = errors.New("REFUSED")

// lockoutCheck refuses a configuration that would cut the operator off:
// a new connection like ssh's ($SSH_CONNECTION: "client port server port")
// would be dropped; or no failsafe port covers SSH and nothing else lets
// SSH in on any protected interface — unless the configuration opts out
// of that second check (settings { lockout_check = false }). It returns
// what it could not check, for the front door to show.
func (e *Engine) lockoutCheck(cfg *config.Config, host, ssh string) (notes []string, err error) {
	path := netif.Path(e.o.NetNS)
	if ssh != "" {
		p, err := sshPacket(ssh)
		if err != nil {
			notes = append(notes, fmt.Sprintf("warning: SSH_CONNECTION %q not understood (%v); skipping the lockout check of your connection", ssh, err))
		} else {
			// The interface the client's packets come in by: a link-local
			// client's zone names it; otherwise the one the host routes back
			// to it through, from the address it connected to (not the one
			// holding that address: a host may answer on any of its
			// addresses on any interface; and policy routing may choose by
			// source).
			zone := p.Src.Zone()
			p.Src, p.Dst = p.Src.WithZone(""), p.Dst.WithZone("")
			if zone != "" {
				p.Iface, err = netif.ZoneInterface(path, zone)
			} else {
				// The replies' flow: server to client, as policy routing
				// sees it (by source address, protocol and ports too).
				p.Iface, err = netif.RouteTo(path, netif.Flow{Dst: p.Src, Src: p.Dst, Proto: config.ProtoTCP, SPort: p.DPort, DPort: p.SPort})
			}
			if err != nil {
				return notes, fmt.Errorf("lockout check: %w", err)
			}
			if p.Iface == "" {
				notes = append(notes, fmt.Sprintf("warning: no usable route back to %s%s (from SSH_CONNECTION); skipping the lockout check of your connection", p.Src, zoneText(zone)))
			} else if r := explain.Explain(cfg, host, p); r.Verdict == explain.Deny {
				return notes, fmt.Errorf(`%w: this configuration would drop a new SSH connection from %s to %s port %d on %s, which is how you are connected now.
  Decided by: %s
%s,
check with: hostwall explain --iface %s --in --proto tcp --src %s --dst %s --dport %d
or pass --force if you know what you are doing`,
					ErrLockout, p.Src, p.Dst, p.DPort, p.Iface, r.Decided, lockoutAdvice(cfg.ForHost(host), r, p), p.Iface, p.Src, p.Dst, p.DPort)
			}
		}
	}
	if cfg.Settings.SkipLockoutCheck {
		return notes, nil
	}
	if err := workloadUplink(cfg, host, path); err != nil {
		return notes, err
	}
	return notes, noWayIn(cfg, host)
}

func zoneText(zone string) string {
	if zone == "" {
		return ""
	}
	return " (no interface " + strconv.Quote(zone) + " here)"
}

// lockoutAdvice says what would keep the connection p that r drops.
func lockoutAdvice(cfg *config.Config, r explain.Result, p explain.Packet) string {
	if r.Decided.Kind == explain.WorkloadToHost {
		prefix, _ := cfg.Workloads.Match(p.Iface)
		return fmt.Sprintf(`%s is a workload interface (prefix %q), where failsafe ports do not apply:
set the workload action to accept (or return, with the * host endpoint allowing SSH), or take %q out of the workload prefixes`, p.Iface, prefix, prefix)
	}
	return fmt.Sprintf("Allow it (a rule with source nets %s and destination port %d, or keep tcp:%d in failsafe inbound)", p.Src, p.DPort, p.DPort)
}

// workloadUplink refuses a configuration whose workload prefixes take in
// an interface a default route goes out by (an uplink: eth0, or br0 on a
// KVM host whose address sits on the bridge; netif.Uplinks) when no
// source the configuration names, of a family routed by default through
// it, could open an SSH connection in by it: under drop no
// failsafe port applies to a workload interface, so noWayIn's trust in
// them would be misplaced. Without a default route there is no uplink to
// tell, and nothing is refused.
func workloadUplink(cfg *config.Config, host, path string) error {
	w := cfg.ForHost(host).Workloads
	if len(w.Prefixes) == 0 {
		return nil
	}
	uplinks, err := netif.Uplinks(path)
	if err != nil {
		return fmt.Errorf("lockout check: %w", err)
	}
	for _, up := range uplinks {
		iface := up.Name
		prefix, ok := w.Match(iface)
		if !ok {
			continue
		}
		var denied explain.Result
		open := false
		for _, a := range candidateSources(cfg, host) {
			if a.Is4() && !up.V4 || a.Is6() && !up.V6 {
				continue // no default route of that family goes out by it
			}
			if r := explain.Explain(cfg, host, sshProbe(iface, a)); r.Verdict == explain.Allow {
				open = true
				break
			} else if denied.Verdict == "" {
				denied = r
			}
		}
		if open {
			continue
		}
		why := fmt.Sprintf("decided by: %s", denied.Decided)
		if denied.Decided.Kind == explain.WorkloadToHost {
			why = w.ActionField() + " " + string(w.Action()) + "; failsafe ports do not apply to workload interfaces"
		}
		return fmt.Errorf(`%w: workload prefix %q makes %s, an interface this host's default route goes out by, a workload interface:
new SSH connections to this host coming in by it would be dropped (%s).
Take %q out of the workload prefixes (name the workload interfaces more closely: "cali", "docker", "vnet"),
or pass --force (or set lockout_check = false in the settings block) if %s is meant for workloads alone`,
			ErrLockout, prefix, iface, why, prefix, iface)
	}
	return nil
}

// wildcardStandIn is an interface name that stands for the ones the "*"
// endpoint covers when noWayIn asks explain: one no workload prefix takes
// in (with prefix "eth", eth0 would meet the workload action instead).
func wildcardStandIn(w config.Workloads) string {
	for _, name := range []string{"eth0", "ens3", "enp1s0", "wan0", "hostif0"} {
		if _, ok := w.Match(name); !ok {
			return name
		}
	}
	return "hostif0" // a prefix takes in every name above: none of the host's is likelier
}

// candidateSources are the addresses a rule or failsafe entry could single
// out as SSH clients: the first address of the networks a rule, a network
// set, an endpoint or a failsafe entry names, and two documentation
// addresses for "anyone" — each once, and at most candidatesPerList of
// any one list, and the addresses of one endpoint of each set of labels
// (a 60,000-network blocklist set made each check explain 60,000 packets
// against it, over a minute, with the agent's loop waiting). Leaving
// candidates out can only make the check refuse what it would have let
// through (a way in is found by a candidate that is let in), never the
// other way; the networks of every rule and failsafe entry stay
// candidates, so a rule letting in a part of a large set still offers
// its own.
func candidateSources(cfg *config.Config, host string) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	addNets := func(nets []netip.Prefix) {
		for _, n := range nets[:min(len(nets), candidatesPerList)] {
			add(n.Addr())
		}
	}
	add(netip.MustParseAddr("192.0.2.1"))
	add(netip.MustParseAddr("2001:db8::1"))
	for _, e := range cfg.ForHost(host).Failsafe.Inbound {
		if e.Net.IsValid() {
			add(e.Net.Addr())
		}
	}
	for _, p := range cfg.Policies {
		for _, r := range p.Ingress {
			addNets(r.Source.Nets)
		}
	}
	for _, ns := range cfg.NetworkSets {
		addNets(ns.Nets)
	}
	labels := map[string]bool{}
	for _, h := range cfg.Endpoints {
		key := fmt.Sprint(h.Labels) // maps print sorted
		if labels[key] {
			continue
		}
		labels[key] = true
		for _, a := range h.ExpectedIPs[:min(len(h.ExpectedIPs), candidatesPerList)] {
			add(a)
		}
	}
	return out
}

// candidatesPerList bounds the candidates taken from one list of networks
// (candidateSources).
const candidatesPerList = 16

// sshProbe is the SYN of a new SSH connection from src arriving on iface,
// to any address of the host.
func sshProbe(iface string, src netip.Addr) explain.Packet {
	dst := netip.IPv4Unspecified()
	if src.Is6() {
		dst = netip.IPv6Unspecified()
	}
	return explain.Packet{Iface: iface, Direction: explain.In, Proto: config.ProtoTCP, Src: src, Dst: dst, SPort: 40000, DPort: 22,
		ICMPType: -1, ICMPCode: -1, State: explain.New}
}

// sshPacket is the SYN of a new connection like $SSH_CONNECTION's:
// "client_ip client_port server_ip server_port".
func sshPacket(sc string) (explain.Packet, error) {
	f := strings.Fields(sc)
	if len(f) != 4 {
		return explain.Packet{}, fmt.Errorf("want four fields")
	}
	src, err1 := netip.ParseAddr(f[0])
	sport, err2 := strconv.ParseUint(f[1], 10, 16)
	dst, err3 := netip.ParseAddr(f[2])
	dport, err4 := strconv.ParseUint(f[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return explain.Packet{}, fmt.Errorf("want addresses and ports")
	}
	return explain.Packet{Direction: explain.In, Proto: config.ProtoTCP, Src: src.Unmap(), Dst: dst.Unmap(),
		SPort: uint16(sport), DPort: uint16(dport), ICMPType: -1, ICMPCode: -1, State: explain.New}, nil
}

// noWayIn refuses when failsafe does not keep tcp/22 open and on every
// enforced interface a new SSH connection would be dropped from every source
// the configuration names (and from a documentation address).
func noWayIn(cfg *config.Config, host string) error {
	if sshFailsafe(cfg, host) {
		return nil
	}
	var ifaces []string
	for _, h := range cfg.Endpoints {
		if (h.Node == "" || h.Node == host) && h.Interface != "" {
			ifaces = append(ifaces, h.Interface)
		}
	}
	if len(ifaces) == 0 {
		return nil
	}
	// An endpoint in audit mode lets SSH in only while it audits: it is a
	// way in when every endpoint of this host audits (enforcing none can
	// lock anyone out), not beside an enforcing one, which may be the way
	// SSH comes in.
	allAudit := true
	for _, h := range cfg.Endpoints {
		if (h.Node == "" || h.Node == host) && !h.Audit {
			allAudit = false
		}
	}
	sources := candidateSources(cfg, host)
	for _, iface := range ifaces {
		if iface == "*" {
			iface = wildcardStandIn(cfg.ForHost(host).Workloads)
		}
		for _, a := range sources {
			if r := explain.Explain(cfg, host, sshProbe(iface, a)); r.Verdict == explain.Allow && (!r.Audit || allAudit) {
				return nil
			}
		}
	}
	return fmt.Errorf(`%w: failsafe does not keep tcp:22 open and nothing lets a new SSH connection in on %s.
Keep "tcp:22" in failsafe inbound, add a policy that allows SSH, or pass --force
(or, for a host nobody reaches over SSH, set lockout_check = false in the settings block)`, ErrLockout, strings.Join(ifaces, ", "))
}
