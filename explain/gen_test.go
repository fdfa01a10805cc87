package explain_test

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// gen builds random configurations for the differential test — two
// interfaces, endpoints with labels, network sets, tiers, policies using
// every rule field, failsafe variants — as a model that renders to HCL and
// from which packets aimed at a rule can be made.
type gen struct {
	r     *rand.Rand
	names []string // given in the configuration being made
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) chance(p float64) bool    { return g.r.Float64() < p }

var (
	netPool = []string{"10.77.0.0/24", "10.77.0.0/29", "10.77.0.4/30", "10.77.0.5", "10.77.0.8/29", "10.78.0.0/24", "10.78.0.2",
		"10.99.0.0/16", "fd77::/64", "fd77::/125", "fd77::4/126", "fd77::5", "fd78::/64", "fd78::3", "fd99::/48",
		"10.79.0.0/24", "10.79.0.4/30", "fd79::/64", "fd79::4/126", "10.80.0.0/24", "10.80.0.4/30", "fd80::/64"}
	portPool = []string{"22", "53", "68", "80", "443", "8080", "9000", "8000:8100", "40000:40009", "40010:49999", "web", "dns", "ssh"}
	// namedPorts are what the generated endpoints may name.
	namedPorts   = `[{ name = "web", protocol = "tcp", port = 80 }, { name = "dns", protocol = "udp", port = 53 }, { name = "ssh", protocol = "tcp", port = 22 }]`
	selectorPool = []string{"all()", "role == 'web'", "role == 'db'", "zone == 'a'", "has(zone)", "role != 'db'", "role in {'web', 'db'}", "!has(role)"}
	setSelectors = []string{"kind == 'x'", "kind == 'y'", "has(kind)", "role == 'peer'", "kind != 'x'"}
)

type gEntity struct {
	nets, notNets   []string
	sel, notSel     string
	ports, notPorts []string
}

type gICMP struct{ typ, code int } // code -1: none

type gRule struct {
	forward       bool // in an apply_on_forward policy
	ingress       bool
	action, proto string
	notProto      string
	src, dst      gEntity
	icmp, notICMP *gICMP
	ipVersion     int
}

type gConfig struct {
	text  string
	rules []gRule
}

// nameTokens make names that joined kernel names used to confuse: an
// endpoint "a" with a tier "x-in" and an endpoint "a-in-t-x", a policy
// "web" on forward and a policy "web-fwd".
var nameTokens = []string{"a", "-", "in", "out", "t", "x", "fwd", "pre", "raw", "hep", "pol", "fwd-in", "t-x", "in-t"}

// name is def, or a name of nameTokens, unused so far (used records it),
// half of the time extending a name given before: endpoint "a-in-t-x"
// after endpoint "a".
func (g *gen) name(def string, used map[string]bool) string {
	name := def
	if g.chance(0.6) {
		var b strings.Builder
		if len(g.names) > 0 && g.chance(0.5) {
			b.WriteString(g.names[g.r.IntN(len(g.names))])
		}
		for range 1 + g.r.IntN(4) {
			if b.Len() > 0 && g.chance(0.7) {
				b.WriteByte('-')
			}
			b.WriteString(g.pick(nameTokens...))
		}
		name = b.String()
	}
	for used[name] {
		name += "-" + def
	}
	used[name] = true
	g.names = append(g.names, name)
	return name
}

func (g *gen) some(pool []string, max int) []string {
	var out []string
	for i := 0; i < 1+g.r.IntN(max); i++ {
		out = append(out, pool[g.r.IntN(len(pool))])
	}
	return out
}

func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		if _, err := strconv.Atoi(x); err == nil {
			q[i] = x
		} else {
			q[i] = strconv.Quote(x)
		}
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (g *gen) config() gConfig {
	var b strings.Builder
	var rules []gRule
	labels := func() string {
		return fmt.Sprintf(`{ role = "%s", zone = "%s" }`, g.pick("web", "db"), g.pick("a", "b"))
	}
	g.names = g.names[:0]
	heps, sets, tierNames, policies := map[string]bool{}, map[string]bool{}, map[string]bool{"default": true}, map[string]bool{}
	b.WriteString("host {\n  name   = \"h\"\n  labels = { site = \"lab\" }\n}\n")
	fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"eth0\"\n  labels = %s\n", g.name("e0", heps), labels())
	if g.chance(0.5) {
		// The host's own addresses, so named ports can bind to them.
		fmt.Fprintf(&b, "  expected_ips = [\"10.77.0.1\", \"fd77::1\"]\n  ports = %s\n", namedPorts)
	}
	if g.chance(0.35) {
		fmt.Fprintf(&b, "  profiles = [%q]\n", g.pick("projectcalico-default-allow", "projectcalico-default-allow", "unknown-profile"))
	}
	b.WriteString("}\n")
	if g.chance(0.1) {
		fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"eth0\"\n  labels = %s\n}\n", g.name("a-e0", heps), labels())
	}
	switch {
	case g.chance(0.5):
		fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"eth1\"\n  labels = %s\n}\n", g.name("e1", heps), labels())
	case g.chance(0.4):
		fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"*\"\n  labels = %s\n}\n", g.name("all", heps), labels())
	}
	if g.chance(0.5) {
		fmt.Fprintf(&b, "host_endpoint %q {\n  interface = \"eth2\"\n  labels = %s\n}\n", g.name("e2", heps), labels())
	}
	if g.chance(0.5) {
		fmt.Fprintf(&b, "host_endpoint %q {\n  node = \"other\"\n  interface = \"eth0\"\n  labels = { role = \"peer\" }\n  expected_ips = [\"10.77.0.3\", \"fd77::3\", \"10.78.0.4\"]\n  ports = %s\n}\n", g.name("peer", heps), namedPorts)
	}
	for i := 0; i < 1+g.r.IntN(3); i++ {
		fmt.Fprintf(&b, "network_set %q {\n  labels = { kind = %q }\n  nets = %s\n}\n", g.name(fmt.Sprintf("ns%d", i), sets), g.pick("x", "y"), quoteAll(g.some(netPool, 3)))
	}
	tiers := []string{""}
	nTiers := 0
	if g.chance(0.7) {
		nTiers = 1 + g.r.IntN(2)
	}
	for i := 0; i < nTiers; i++ {
		name := g.name(fmt.Sprintf("t%d", i), tierNames)
		tiers = append(tiers, name)
		fmt.Fprintf(&b, "tier %q {\n  order = %d\n  default_action = %q\n}\n", name, []int{100, 500, 2000000}[g.r.IntN(3)], g.pick("deny", "pass"))
	}
	for i := 0; i < 1+g.r.IntN(4); i++ {
		fmt.Fprintf(&b, "policy %q {\n", g.name(fmt.Sprintf("p%d", i), policies))
		g.placement(&b, tiers)
		forward := g.chance(0.35)
		nIn, nOut := g.r.IntN(5), g.r.IntN(4)
		switch {
		case g.chance(0.12):
			b.WriteString("  apply_on_forward = true\n  do_not_track = true\n")
			forward = true
		case g.chance(0.12):
			b.WriteString("  apply_on_forward = true\n  pre_dnat = true\n")
			forward, nOut = true, 0 // ingress only
		case forward:
			b.WriteString("  apply_on_forward = true\n")
		}
		if g.chance(0.15) && !strings.Contains(b.String()[strings.LastIndex(b.String(), "policy "):], "pre_dnat") {
			fmt.Fprintf(&b, "  types = [%s]\n", g.pick(`"ingress"`, `"egress"`, `"ingress", "egress"`))
			nIn, nOut = 0, 0 // no rules for a direction not in types
		}
		for j := 0; j < nIn+nOut; j++ {
			r := g.rule(j < nIn)
			r.forward = forward
			rules = append(rules, r)
			b.WriteString(r.render())
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
	if g.chance(0.5) {
		// Workload interfaces: the lab's cali0, or none of its interfaces
		// ("tap").
		fmt.Fprintf(&b, "workloads {\n  interface_prefixes = %s\n", quoteAll(g.some([]string{"cali", "cal", "cali0", "c", "tap"}, 2)))
		if act := g.pick("", "drop", "accept", "return", "return"); act != "" {
			fmt.Fprintf(&b, "  to_host_action = %q\n", act)
		}
		b.WriteString("}\n")
	}
	text := b.String()
	// The first endpoint in audit mode in half of the configurations,
	// chosen by the text: drawing from the random source would change
	// every seed's configurations.
	if crc32.ChecksumIEEE([]byte(text))%2 == 0 {
		text = strings.Replace(text, "  interface = \"eth0\"\n", "  interface = \"eth0\"\n  mode = \"audit\"\n", 1)
	}
	// Staged policies in a third of the configurations (chosen as above),
	// one of three kinds: a replacement of the first policy that denies
	// everything, the first policy's deletion, or a new policy of random
	// rules (drawn from a source of its own, seeded by the text). Which
	// must change no packet's fate, and whose disagreements the kernel
	// must count as explain finds them.
	if m := firstPolicy.FindStringSubmatch(text); m != nil && crc32.ChecksumIEEE([]byte(text))%3 == 1 {
		h := crc32.ChecksumIEEE([]byte(text))
		switch h / 3 % 3 {
		case 0:
			text += fmt.Sprintf("policy %s {\n  staged = true\n  ingress { action = \"deny\" }\n  egress { action = \"deny\" }\n}\n", m[1])
		case 1:
			text += fmt.Sprintf("policy %s {\n  staged = \"delete\"\n}\n", m[1])
		default:
			sg := &gen{r: rand.New(rand.NewPCG(uint64(h), 1))}
			var p strings.Builder
			name := m[1]
			if sg.chance(0.5) {
				name = `"staged-new"`
			}
			fmt.Fprintf(&p, "policy %s {\n  staged = true\n", name)
			sg.placement(&p, tiers)
			nIn, nOut := 1+sg.r.IntN(4), sg.r.IntN(3)
			for j := 0; j < nIn+nOut; j++ {
				r := sg.rule(j < nIn)
				rules = append(rules, r)
				p.WriteString(r.render())
			}
			p.WriteString("}\n")
			text += p.String()
		}
	}
	return gConfig{text: text, rules: rules}
}

// placement writes a policy's tier (one of tiers; "" for the default),
// selector and order, each now and then.
func (g *gen) placement(b *strings.Builder, tiers []string) {
	if t := tiers[g.r.IntN(len(tiers))]; t != "" {
		fmt.Fprintf(b, "  tier = %q\n", t)
	}
	if g.chance(0.7) {
		fmt.Fprintf(b, "  selector = %q\n", g.pick(selectorPool...))
	}
	if g.chance(0.6) {
		fmt.Fprintf(b, "  order = %d\n", g.r.IntN(4)*10)
	}
}

var firstPolicy = regexp.MustCompile(`(?m)^policy ("[^"]*") \{`)

func (g *gen) rule(ingress bool) gRule {
	r := gRule{ingress: ingress, action: g.pick("allow", "allow", "deny", "deny", "log", "pass", "pass")}
	r.proto = g.pick("", "", "tcp", "tcp", "udp", "icmp", "icmpv6")
	if r.proto == "" && g.chance(0.2) {
		r.notProto = g.pick("tcp", "udp", "icmp")
	}
	entity := func() gEntity {
		var e gEntity
		if g.chance(0.3) {
			e.nets = g.some(netPool, 2)
		}
		if g.chance(0.2) {
			e.notNets = g.some(netPool, 2)
		}
		if g.chance(0.2) {
			e.sel = g.pick(setSelectors...)
		}
		if g.chance(0.1) {
			e.notSel = g.pick(setSelectors...)
		}
		pool := []string{"web", "dns", "ssh"} // names need no protocol
		if r.proto == "tcp" || r.proto == "udp" {
			pool = portPool
		}
		if (r.proto == "tcp" || r.proto == "udp" || r.proto == "") && g.chance(0.4) {
			e.ports = g.some(pool, 3)
		}
		if (r.proto == "tcp" || r.proto == "udp" || r.proto == "") && g.chance(0.2) {
			e.notPorts = g.some(pool, 2)
		}
		return e
	}
	r.src, r.dst = entity(), entity()
	if r.proto == "icmp" || r.proto == "icmpv6" {
		types := map[string][]int{"icmp": {8, 13}, "icmpv6": {128, 139}}[r.proto]
		mk := func() *gICMP {
			if !g.chance(0.35) {
				return nil
			}
			m := &gICMP{typ: types[g.r.IntN(2)], code: -1}
			if g.chance(0.5) {
				m.code = g.r.IntN(2)
			}
			return m
		}
		r.icmp, r.notICMP = mk(), mk()
	}
	noNets := len(r.src.nets)+len(r.src.notNets)+len(r.dst.nets)+len(r.dst.notNets) == 0
	if r.proto == "" && noNets && g.chance(0.2) {
		r.ipVersion = 4 + 2*g.r.IntN(2)
	}
	return r
}

func (r gRule) render() string {
	var b strings.Builder
	dir := "egress"
	if r.ingress {
		dir = "ingress"
	}
	fmt.Fprintf(&b, "  %s {\n    action = %q\n", dir, r.action)
	if r.proto != "" {
		fmt.Fprintf(&b, "    protocol = %q\n", r.proto)
	}
	if r.notProto != "" {
		fmt.Fprintf(&b, "    not_protocol = %q\n", r.notProto)
	}
	if r.ipVersion != 0 {
		fmt.Fprintf(&b, "    ip_version = %d\n", r.ipVersion)
	}
	for _, side := range []struct {
		name string
		e    gEntity
	}{{"source", r.src}, {"destination", r.dst}} {
		var lines []string
		e := side.e
		if len(e.nets) > 0 {
			lines = append(lines, "nets = "+quoteAll(e.nets))
		}
		if len(e.notNets) > 0 {
			lines = append(lines, "not_nets = "+quoteAll(e.notNets))
		}
		if e.sel != "" {
			lines = append(lines, fmt.Sprintf("selector = %q", e.sel))
		}
		if e.notSel != "" {
			lines = append(lines, fmt.Sprintf("not_selector = %q", e.notSel))
		}
		if len(e.ports) > 0 {
			lines = append(lines, "ports = "+quoteAll(e.ports))
		}
		if len(e.notPorts) > 0 {
			lines = append(lines, "not_ports = "+quoteAll(e.notPorts))
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "    %s {\n      %s\n    }\n", side.name, strings.Join(lines, "\n      "))
		}
	}
	for _, m := range []struct {
		name string
		m    *gICMP
	}{{"icmp", r.icmp}, {"not_icmp", r.notICMP}} {
		if m.m == nil {
			continue
		}
		fmt.Fprintf(&b, "    %s {\n      type = %d\n", m.name, m.m.typ)
		if m.m.code >= 0 {
			fmt.Fprintf(&b, "      code = %d\n", m.m.code)
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  }\n")
	return b.String()
}

// validICMP keeps a case's ICMP type one of randomCase's for its family
// (after aimed may have changed the family).
func validICMP(r *rand.Rand, c tcase) tcase {
	pool := []int{8, 13}
	if c.V6 {
		pool = icmpv6Types
	}
	if !slices.Contains(pool, c.ICMPType) {
		c.ICMPType = pool[r.IntN(len(pool))]
	}
	return c
}

// aimed makes a packet meant to meet rule r's positive conditions:
// direction, protocol, ICMP type, an address in its networks, a port in its
// ports. Negative conditions and selectors are left to chance.
func (g *gen) aimed(r gRule, id uint16) tcase {
	return validICMP(g.r, g.aim(r, id))
}

func (g *gen) aim(r gRule, id uint16) tcase {
	c := randomCase(g.r, id)
	c.Out = !r.ingress
	c.Fwd = r.forward && g.chance(0.5)
	if c.Fwd {
		c.Link = 0
	}
	switch r.proto {
	case "tcp", "udp":
		c.Proto = r.proto
	case "icmp":
		c.Proto, c.V6 = "icmp", false
	case "icmpv6":
		c.Proto, c.V6 = "icmp", true
	}
	if r.ipVersion != 0 {
		c.V6 = r.ipVersion == 6
	}
	if r.icmp != nil {
		c.ICMPType = r.icmp.typ
		if r.icmp.code >= 0 {
			c.ICMPCode = r.icmp.code
		}
	}
	remote, local := r.src, r.dst
	if c.Out {
		remote, local = r.dst, r.src
	}
	if ports := local.ports; !c.Out && len(ports) > 0 {
		c.DPort = portIn(g.r, ports[g.r.IntN(len(ports))])
	}
	if ports := remote.ports; c.Out && len(ports) > 0 {
		c.DPort = portIn(g.r, ports[g.r.IntN(len(ports))])
	}
	// Choose a remote address inside one of the remote networks, if any.
	if len(remote.nets) > 0 && !c.Fwd {
		n := netip.MustParsePrefix(withBits(remote.nets[g.r.IntN(len(remote.nets))]))
		if r.proto == "icmp" && n.Addr().Is6() || r.proto == "icmpv6" && n.Addr().Is4() {
			return c
		}
		for _, link := range g.r.Perm(len(links)) {
			for _, idx := range g.r.Perm(8) {
				cand := c
				cand.Link, cand.Remote, cand.V6 = link, idx+2, n.Addr().Is6()
				if _, a := cand.addrs(); n.Contains(a) {
					return cand
				}
			}
		}
	}
	return c
}

func withBits(s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	if strings.Contains(s, ":") {
		return s + "/128"
	}
	return s + "/32"
}

func portIn(r *rand.Rand, spec string) uint16 {
	if n, ok := map[string]uint16{"web": 80, "dns": 53, "ssh": 22}[spec]; ok {
		return n
	}
	lo, hi, ok := strings.Cut(spec, ":")
	a, _ := strconv.Atoi(lo)
	if !ok {
		return uint16(a)
	}
	b, _ := strconv.Atoi(hi)
	return uint16(a + r.IntN(b-a+1))
}
