package observe

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/hostwall/hostwall/ruleset"
)

// ipv4 builds an IPv4 header (20 bytes) for proto, followed by l4.
func ipv4(proto uint8, src, dst string, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(20+len(l4)))
	b[8], b[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	return append(b, l4...)
}

// ipv6 builds an IPv6 header with next header nh, followed by rest.
func ipv6(nh uint8, src, dst string, rest []byte) []byte {
	b := make([]byte, 40, 40+len(rest))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(rest)))
	b[6], b[7] = nh, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, rest...)
}

func ports(sp, dp uint16, more ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	return append(b, more...)
}

func TestParsePacket(t *testing.T) {
	syn := ports(40000, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02) // seq, ack, offset, flags SYN
	hopByHop := []byte{17, 0, 0, 0, 0, 0, 0, 0}                 // next: UDP, 8 bytes
	fragFirst := []byte{6, 0, 0, 0, 0, 0, 0, 1}                 // next: TCP, offset 0
	fragLater := []byte{6, 0, 0x05, 0xa8, 0, 0, 0, 1}           // next: TCP, offset 181
	for name, c := range map[string]struct {
		pkt  []byte
		want string
	}{
		"tcp syn":               {ipv4(6, "10.0.0.1", "10.0.0.2", syn), "ip tcp 10.0.0.1:40000 > 10.0.0.2:22 [S]"},
		"udp":                   {ipv4(17, "10.0.0.1", "10.0.0.2", ports(5000, 53)), "ip udp 10.0.0.1:5000 > 10.0.0.2:53"},
		"icmp echo":             {ipv4(1, "10.0.0.1", "10.0.0.2", []byte{8, 0, 0, 0}), "ip icmp 10.0.0.1 > 10.0.0.2 type 8 code 0"},
		"icmpv6":                {ipv6(58, "fd00::1", "fd00::2", []byte{128, 0, 0, 0}), "ip6 icmpv6 fd00::1 > fd00::2 type 128 code 0"},
		"ipv6 hop-by-hop":       {ipv6(0, "fd00::1", "fd00::2", append(hopByHop, ports(1, 2)...)), "ip6 udp [fd00::1]:1 > [fd00::2]:2"},
		"ipv6 first frag":       {ipv6(44, "fd00::1", "fd00::2", append(fragFirst, syn...)), "ip6 tcp [fd00::1]:40000 > [fd00::2]:22 [S]"},
		"ipv6 later frag":       {ipv6(44, "fd00::1", "fd00::2", append(fragLater, 1, 2, 3, 4)), "ip6 tcp [fd00::1]:0 > [fd00::2]:0 fragment"},
		"truncated ports":       {ipv4(17, "10.0.0.1", "10.0.0.2", []byte{1}), "ip udp 10.0.0.1:0 > 10.0.0.2:0 truncated"},
		"headers past the copy": {ipv6(60, "fd00::1", "fd00::2", []byte{17, 30, 0, 0, 0, 0, 0, 0}), "ip6 udp [fd00::1]:0 > [fd00::2]:0 truncated"},
		"truncated header":      {[]byte{0x45, 0, 0}, "ip  invalid > invalid"},
		"not ip":                {[]byte{0x10, 1, 2}, "  invalid > invalid"},
		"empty":                 {nil, "  invalid > invalid"},
	} {
		if got := describe(ParsePacket(c.pkt)); got != c.want {
			t.Errorf("%s: got %q, want %q", name, got, c.want)
		}
	}
}

func describe(p PacketInfo) string {
	s := p.Family + " " + p.Proto + " " + endpoint(p.Src, p.SPort, p.Proto, false) + " > " + endpoint(p.Dst, p.DPort, p.Proto, false)
	if p.ICMPType != nil {
		s += " type " + itoa(int(*p.ICMPType)) + " code " + itoa(int(*p.ICMPCode))
	}
	if p.TCPFlags != "" {
		s += " [" + p.TCPFlags + "]"
	}
	if p.Fragment {
		s += " fragment"
	}
	if p.Truncated {
		s += " truncated"
	}
	if !p.Src.IsValid() {
		s = p.Family + " " + p.Proto + " invalid > invalid"
	}
	return s
}

func itoa(i int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(i)).String()[len("0.0.0.0:"):]
}

// FuzzParsePacket: any bytes parse without a panic, and what is read
// lies inside them.
func FuzzParsePacket(f *testing.F) {
	f.Add(ipv4(6, "10.0.0.1", "10.0.0.2", ports(1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12)))
	f.Add(ipv6(0, "fd00::1", "fd00::2", []byte{44, 255, 0, 0, 0, 0, 0, 0}))
	f.Add(ipv6(43, "fd00::1", "fd00::2", []byte{60, 0, 0, 0, 0, 0, 0, 0, 17, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := ParsePacket(b)
		if p.Src.IsValid() && len(b) < 20 {
			t.Fatalf("an address from %d bytes", len(b))
		}
	})
}

// TestTotalsOnlyGrow: for random sequences of kernel reads — counters
// growing, rules added and removed, a kept rule given another origin (its
// ID indexed anew), the table made again (handles reused) — the totals of
// every origin still indexed never decrease, and grow by exactly what
// the kernel's counters of its rules grew by (fixed seeds).
func TestTotalsOnlyGrow(t *testing.T) {
	origins := []*ruleset.Origin{
		{Kind: ruleset.OriginPolicyRule, Policy: "web", Direction: "ingress", Rule: 1, Action: "deny"},
		{Kind: ruleset.OriginPolicyRule, Policy: "web", Direction: "ingress", Rule: 2, Action: "deny"},
		{Kind: ruleset.OriginPolicyRule, Policy: "web", Direction: "ingress", Rule: 3, Action: "allow"},
		{Kind: ruleset.OriginPolicyRule, Policy: "web", Direction: "ingress", Rule: 1, Action: "deny", Audit: true}, // its audit copy's
		{Kind: ruleset.OriginDefaultDeny, Endpoint: "eth0", Direction: "ingress", Action: "deny"},
	}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 19))
		x := &Index{rules: map[ruleKey]*ruleset.Origin{}}
		type liveRule struct {
			chain, id string
			handle    uint64
			origin    *ruleset.Origin
			count     uint64
		}
		var rules []*liveRule
		next := uint64(1)
		var totals Totals
		prev := map[ruleset.Origin]Count{}
		for step := range 50 {
			var grown = map[ruleset.Origin]uint64{}
			switch r.IntN(5) {
			case 0: // a rule added
				o := origins[r.IntN(len(origins))]
				id := string(rune('a' + r.IntN(6)))
				x.rules[ruleKey{"c", id}] = o
				rules = append(rules, &liveRule{chain: "c", id: id, handle: next, origin: o})
				next++
			case 1: // a rule replaced or removed
				if len(rules) > 0 {
					i := r.IntN(len(rules))
					rules = append(rules[:i], rules[i+1:]...)
				}
			case 2: // the table made again: handles start over
				for _, lr := range rules {
					lr.count = 0
				}
				next = 1
				for _, lr := range rules {
					lr.handle = next
					next++
				}
				if len(rules) > 0 { // a new rule in an old handle
					rules[0].count = 0
				}
			default: // traffic
				for _, lr := range rules {
					n := uint64(r.IntN(100))
					lr.count += n
					grown[*x.rules[ruleKey{lr.chain, lr.id}]] += n
				}
			}
			var live []*ruleset.Chain
			ch := &ruleset.Chain{Name: "c"}
			for _, lr := range rules {
				if x.rules[ruleKey{lr.chain, lr.id}] == nil {
					continue
				}
				ch.Rules = append(ch.Rules, &ruleset.Rule{Counter: true, StoredID: lr.id, Handle: lr.handle, Packets: lr.count, Bytes: 10 * lr.count})
			}
			live = append(live, ch)
			got := totals.Update(x, live)
			current := map[ruleset.Origin]bool{}
			for _, o := range x.rules {
				current[*o] = true
			}
			for o, c := range prev {
				if !current[o] {
					continue // no rule has it any more: forgotten
				}
				if g := got[o]; g.Packets < c.Packets || g.Bytes < c.Bytes {
					t.Fatalf("seed %d step %d: %v went down %v → %v", seed, step, o, c, g)
				}
			}
			// A family's sum (a policy's direction) never goes down while
			// the family is indexed, whatever its rules' positions do.
			// A policy's series sums its rules of both modes (metrics).
			series := func(o ruleset.Origin) ruleset.Origin {
				if o.Kind == ruleset.OriginPolicyRule {
					o.Rule, o.Action, o.Audit = 0, "", false
				}
				return o
			}
			fam := func(m map[ruleset.Origin]Count) map[ruleset.Origin]uint64 {
				out := map[ruleset.Origin]uint64{}
				for o, c := range m {
					out[series(o)] += c.Packets
				}
				return out
			}
			families := map[ruleset.Origin]bool{}
			for _, o := range x.rules {
				families[series(*o)] = true
			}
			now := fam(got)
			for f, n := range fam(prev) {
				if families[f] && now[f] < n {
					t.Fatalf("seed %d step %d: family %v went down %d → %d", seed, step, f, n, now[f])
				}
			}
			for o, n := range grown {
				if g := got[o].Packets - prev[o].Packets; g != n {
					t.Fatalf("seed %d step %d: %v grew by %d, the kernel's counters by %d", seed, step, o, g, n)
				}
			}
			prev = got
		}
	}
}
