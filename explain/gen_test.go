package explain_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// gen writes random configurations for the differential test: two
// interfaces, endpoints with labels, network sets, tiers, policies with every
// rule field, failsafe variants. It stays within what the loader accepts.
type gen struct{ r *rand.Rand }

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) chance(p float64) bool    { return g.r.Float64() < p }

var (
	netPool = []string{"10.77.0.0/24", "10.77.0.0/29", "10.77.0.4/30", "10.77.0.5", "10.77.0.8/29", "10.78.0.0/24", "10.78.0.2",
		"10.99.0.0/16", "fd77::/64", "fd77::/125", "fd77::4/126", "fd77::5", "fd78::/64", "fd78::3", "fd99::/48"}
	portPool     = []string{"22", "53", "68", "80", "443", "8080", "9000", `"8000:8100"`, `"40000:40999"`, `"41000:49999"`}
	selectorPool = []string{"all()", "role == 'web'", "role == 'db'", "zone == 'a'", "has(zone)", "role != 'db'", "role in {'web', 'db'}", "!has(role)"}
	setSelectors = []string{"kind == 'x'", "kind == 'y'", "has(kind)", "role == 'peer'", "kind != 'x'"}
)

func (g *gen) list(pool []string, max int) string {
	n := 1 + g.r.IntN(max)
	var out []string
	for i := 0; i < n; i++ {
		v := pool[g.r.IntN(len(pool))]
		if !strings.HasPrefix(v, `"`) && strings.ContainsAny(v, ".:/") {
			v = `"` + v + `"`
		}
		out = append(out, v)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func (g *gen) config() string {
	var b strings.Builder
	labels := func() string {
		return fmt.Sprintf(`{ role = "%s", zone = "%s" }`, g.pick("web", "db"), g.pick("a", "b"))
	}
	fmt.Fprintf(&b, "host {\n  name   = \"h\"\n  labels = { site = \"lab\" }\n}\n")
	fmt.Fprintf(&b, "host_endpoint \"e0\" {\n  interface = \"eth0\"\n  labels = %s\n", labels())
	if g.chance(0.2) {
		fmt.Fprintf(&b, "  profiles = [%q]\n", g.pick("projectcalico-default-allow", "projectcalico-default-allow", "unknown-profile"))
	}
	b.WriteString("}\n")
	if g.chance(0.1) {
		fmt.Fprintf(&b, "host_endpoint \"a-e0\" {\n  interface = \"eth0\"\n  labels = %s\n}\n", labels())
	}
	switch {
	case g.chance(0.45):
		fmt.Fprintf(&b, "host_endpoint \"e1\" {\n  interface = \"eth1\"\n  labels = %s\n}\n", labels())
	case g.chance(0.3):
		fmt.Fprintf(&b, "host_endpoint \"all\" {\n  interface = \"*\"\n  labels = %s\n}\n", labels())
	}
	if g.chance(0.5) {
		b.WriteString("host_endpoint \"peer\" {\n  node = \"other\"\n  interface = \"eth0\"\n  labels = { role = \"peer\" }\n  expected_ips = [\"10.77.0.3\", \"fd77::3\", \"10.78.0.4\"]\n}\n")
	}
	for i := 0; i < 1+g.r.IntN(3); i++ {
		fmt.Fprintf(&b, "network_set \"ns%d\" {\n  labels = { kind = %q }\n  nets = %s\n}\n", i, g.pick("x", "y"), g.list(netPool, 3))
	}
	tiers := []string{""}
	for i := 0; i < g.r.IntN(3); i++ {
		name := fmt.Sprintf("t%d", i)
		tiers = append(tiers, name)
		fmt.Fprintf(&b, "tier %q {\n  order = %d\n  default_action = %q\n}\n", name, []int{100, 500, 2000000}[g.r.IntN(3)], g.pick("deny", "pass"))
	}
	for i := 0; i < 1+g.r.IntN(4); i++ {
		fmt.Fprintf(&b, "policy \"p%d\" {\n", i)
		if t := tiers[g.r.IntN(len(tiers))]; t != "" {
			fmt.Fprintf(&b, "  tier = %q\n", t)
		}
		if g.chance(0.8) {
			fmt.Fprintf(&b, "  selector = %q\n", g.pick(selectorPool...))
		}
		if g.chance(0.6) {
			fmt.Fprintf(&b, "  order = %d\n", g.r.IntN(4)*10)
		}
		nIn, nOut := g.r.IntN(4), g.r.IntN(3)
		if g.chance(0.2) {
			fmt.Fprintf(&b, "  types = [%s]\n", g.pick(`"ingress"`, `"egress"`, `"ingress", "egress"`))
			// keep the loader happy: no rules for a direction not in types
			nIn, nOut = 0, 0
		}
		for j := 0; j < nIn; j++ {
			b.WriteString(g.rule("ingress"))
		}
		for j := 0; j < nOut; j++ {
			b.WriteString(g.rule("egress"))
		}
		b.WriteString("}\n")
	}
	if g.chance(0.4) {
		in := []string{`"udp:68"`} // the test's barrier port: always open inbound
		for _, e := range []string{`"tcp:22"`, `"tcp:10.77.0.0/29:8080"`, `"udp:[fd77::/125]:53"`, `"tcp:80"`} {
			if g.chance(0.4) {
				in = append(in, e)
			}
		}
		var out []string
		for _, e := range []string{`"udp:53"`, `"tcp:[fd77::/64]:443"`, `"tcp:10.78.0.0/24:80"`} {
			if g.chance(0.4) {
				out = append(out, e)
			}
		}
		fmt.Fprintf(&b, "failsafe {\n  inbound = [%s]\n  outbound = [%s]\n}\n", strings.Join(in, ", "), strings.Join(out, ", "))
	}
	if g.chance(0.2) {
		b.WriteString("settings {\n  allow_ipv6_neighbor_discovery = false\n}\n")
	}
	return b.String()
}

func (g *gen) rule(dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s {\n    action = %q\n", dir, g.pick("allow", "allow", "deny", "deny", "log", "pass"))
	proto := g.pick("", "", "tcp", "udp", "icmp", "icmpv6")
	if proto != "" {
		fmt.Fprintf(&b, "    protocol = %q\n", proto)
	} else if g.chance(0.2) {
		fmt.Fprintf(&b, "    not_protocol = %q\n", g.pick("tcp", "udp", "icmp"))
	}
	entity := func(name string) {
		var lines []string
		if g.chance(0.35) {
			lines = append(lines, "nets = "+g.list(netPool, 2))
		}
		if g.chance(0.15) {
			lines = append(lines, "not_nets = "+g.list(netPool, 2))
		}
		if g.chance(0.25) {
			lines = append(lines, fmt.Sprintf("selector = %q", g.pick(setSelectors...)))
		}
		if g.chance(0.1) {
			lines = append(lines, fmt.Sprintf("not_selector = %q", g.pick(setSelectors...)))
		}
		if proto == "tcp" || proto == "udp" {
			if g.chance(0.4) {
				lines = append(lines, "ports = "+g.list(portPool, 3))
			}
			if g.chance(0.15) {
				lines = append(lines, "not_ports = "+g.list(portPool, 2))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "    %s {\n      %s\n    }\n", name, strings.Join(lines, "\n      "))
		}
	}
	entity("source")
	entity("destination")
	if proto == "icmp" || proto == "icmpv6" {
		types := map[string][]int{"icmp": {8, 13}, "icmpv6": {128, 139}}[proto]
		for _, blk := range []string{"icmp", "not_icmp"} {
			if g.chance(0.3) {
				fmt.Fprintf(&b, "    %s {\n      type = %d\n", blk, types[g.r.IntN(2)])
				if g.chance(0.5) {
					fmt.Fprintf(&b, "      code = %d\n", g.r.IntN(2))
				}
				b.WriteString("    }\n")
			}
		}
	}
	if proto == "" && !strings.Contains(b.String(), "nets") && g.chance(0.2) {
		fmt.Fprintf(&b, "    ip_version = %d\n", 4+2*g.r.IntN(2))
	}
	b.WriteString("  }\n")
	return b.String()
}
