package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// opsPolicy allows TCP 9100 (after web).
const opsPolicy = `
policy "ops" {
  order = 200
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [9100] }
  }
}
`

// stagedChanges stage web's replacement, which denies TCP 8080 as well
// (what observedPolicy denies, plus 8080), and ops's deletion.
const stagedChanges = `
policy "web" {
  staged = true
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [8080, 8081] }
  }
  ingress {
    action = "deny"
    protocol = "udp"
    destination { ports = [5353] }
  }
  egress { action = "allow" }
}
policy "ops" {
  staged = "delete"
}
`

// TestStagedRollout walks the README's "Rolling out a change safely" with
// real packets between namespaces: a staged deny of 8080 and a staged
// deletion of ops's allow of 9100 leave both open; the kernel counts
// exactly the connections opened as would newly be dropped, per endpoint
// and per staged policy; hostwall drops --staged shows each with the
// staged decider explain names; status shows the counts; promoting the
// change closes both ports.
func TestStagedRollout(t *testing.T) {
	testns.Tool(t, "curl")
	l := quietLab(t)
	serveTCP(t, l.srv, 8080)
	serveTCP(t, l.srv, 9100)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy + opsPolicy, "staged.hcl": stagedChanges})
	a := startAgentInside(t, l.srv, dir, "--metrics-listen", "127.0.0.1:9631", "--debounce", "50ms")
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "listening to the drop log")
	f := followDrops(t, "--staged", "--netns", l.srv, "-c", dir)
	awaitFollowing(t, a)

	const metricsURL = "http://127.0.0.1:9631/metrics"
	const wouldDrop = `hostwall_staged_changed_packets_total{change="would_drop",direction="ingress",endpoint="eth0"}`
	const wouldAllow = `hostwall_staged_changed_packets_total{change="would_allow",direction="ingress",endpoint="eth0"}`
	const webDecides = `hostwall_staged_policy_packets_total{direction="ingress",policy="web",tier="default"}`
	const webDrops = `hostwall_staged_policy_changed_packets_total{change="would_drop",direction="ingress",policy="web",tier="default"}`
	before := scrape(t, l.srv, metricsURL)
	for _, s := range []string{wouldDrop, wouldAllow, webDecides, webDrops} {
		if v := sample(before, s); v != 0 {
			t.Errorf("%s = %v before any packet, want 0", s, v)
		}
	}

	// Staged, the ports stay open: 3 connections to 8080, 2 to 9100.
	for _, addr := range []string{"10.201.0.2:8080", "10.201.0.2:8080", "10.201.0.2:8080", "10.201.0.2:9100", "10.201.0.2:9100"} {
		if !connects(t, l.cli, addr) {
			t.Fatalf("staged: %s did not connect", addr)
		}
	}
	// Denied now and by the staged view alike: not a change.
	sendUDP(t, l.cli, "10.201.0.2:5353", 4)
	var after string
	await(t, 5*time.Second, "the staged counters count the connections", func() bool {
		after = scrape(t, l.srv, metricsURL)
		return sample(after, wouldDrop) >= 5
	})
	for s, want := range map[string]float64{wouldDrop: 5, wouldAllow: 0, webDecides: 3 + 4, webDrops: 3} {
		if got := sample(after, s); got != want {
			t.Errorf("%s = %v, want %v", s, got, want)
		}
	}
	// The enforced counters count what was enforced: web's allow, 3
	// packets and its deny 4; the staged view adds nothing to them.
	if got := sample(after, `hostwall_policy_packets_total{direction="ingress",policy="web",tier="default"}`); got != 7 {
		t.Errorf("web's enforced count %v, want 7", got)
	}

	// hostwall drops --staged: the would-be drops, each with the staged
	// view's decider, which explain names too. One more connection to
	// 9100 marks the end: nothing else may show before it.
	if !connects(t, l.cli, "10.201.0.2:9100") {
		t.Fatal("staged: 9100 did not connect")
	}
	await(t, 5*time.Second, "drops --staged shows the would-be drops", func() bool {
		d, _ := f.seen()
		return len(d) > 0 && d[len(d)-1].Packet.DPort == 9100 && len(d) >= 6
	})
	drops, _ := f.seen()
	ports := map[uint16]int{}
	for _, d := range drops {
		ports[d.Packet.DPort]++
	}
	if len(drops) != 6 || ports[8080] != 3 || ports[9100] != 3 {
		t.Errorf("drops --staged showed %d packets (by port %v), want 3 to 8080 and 3 to 9100: %+v", len(drops), ports, drops)
	}
	for _, d := range drops {
		ex, out := explainTCP(t, dir, d)
		o := d.Decided
		if !d.Staged || o == nil || ex.Verdict != "allow" || ex.Staged.Verdict != "deny" || string(o.Kind) != ex.Staged.Decided.Kind ||
			o.Policy != ex.Staged.Decided.Policy || o.Rule != ex.Staged.Decided.Rule || o.Tier != ex.Staged.Decided.Tier {
			t.Errorf("staged drop %+v (decided %+v); explain: %s", d, o, out)
		}
	}
	if st := hostwall(t, "", "status", "--netns", l.srv, "-c", dir); !strings.Contains(st.stdout, `host endpoint "eth0", ingress: 6 would newly be dropped, 0 newly allowed`) ||
		!strings.Contains(st.stdout, `staged policy "web" (tier "default"), ingress: decides 7 packets; 3 would newly be dropped`) {
		t.Errorf("status does not show the staged counts:\n%s", st.stdout)
	}

	// Another program's mark on the walk's bits: kept, and the packet not
	// counted. A table before hostwall's marks 8080's packets, one after it
	// drops those that lost the mark.
	testns.NFT(t, l.srv, "table inet other { chain before { type filter hook input priority -10; policy accept; tcp dport 8080 meta mark set meta mark | 0xe0000000; };"+
		" chain after { type filter hook input priority 10; policy accept; tcp dport 8080 meta mark & 0xe0000000 != 0xe0000000 counter drop; }; }")
	before = scrape(t, l.srv, metricsURL)
	if !connects(t, l.cli, "10.201.0.2:8080") {
		t.Error("a packet marked by another program lost its mark in the staged view")
	}
	if after := scrape(t, l.srv, metricsURL); sample(after, wouldDrop) != sample(before, wouldDrop) {
		t.Errorf("a packet marked by another program was counted: %v → %v", sample(before, wouldDrop), sample(after, wouldDrop))
	}
	testns.NFT(t, l.srv, "delete", "table", "inet", "other")

	// Promoting: web's replacement enforced, ops gone. Its plan shows it
	// as the change it is: web's chain made, its tallying copy's, ops's and the staged
	// view's chains destroyed.
	promoted := `host_endpoint "eth0" { interface = "eth0" }` + strings.Replace(stagedChanges[:strings.Index(stagedChanges, `policy "ops"`)], "  staged = true\n", "", 1)
	next := writeConfig(t, map[string]string{"p.hcl": promoted})
	plan := hostwall(t, "", "plan", "--netns", l.srv, "-c", next)
	for _, want := range []string{"chain pol/web/in will be created", "chain pol/web/in/tally will be destroyed", "chain pol/ops/in/tally will be destroyed", "chain hep/eth0/in/staged will be destroyed"} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("the promotion's plan lacks %q:\n%s%s", want, plan.stdout, plan.stderr)
		}
	}
	os.Remove(filepath.Join(dir, "staged.hcl"))
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(promoted), 0o644)
	await(t, 10*time.Second, "the promotion applied", func() bool {
		return !strings.Contains(testns.NFT(t, l.srv, "list", "table", "inet", "hostwall"), "/staged")
	})
	for _, addr := range []string{"10.201.0.2:8080", "10.201.0.2:9100"} {
		if connects(t, l.cli, addr) {
			t.Errorf("promoted: %s connected", addr)
		}
	}
	if text := scrape(t, l.srv, metricsURL); strings.Contains(text, "hostwall_staged_") {
		t.Errorf("staged series after the promotion:\n%s", text)
	}
}
