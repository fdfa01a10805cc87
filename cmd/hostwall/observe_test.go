package main_test

import (
	"bufio"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/observe"
)

// observedPolicy allows TCP 8080, denies TCP 8081 and UDP 5353 by rule;
// anything else on eth0 meets the end of the default tier.
const observedPolicy = `
host_endpoint "eth0" { interface = "eth0" }
policy "web" {
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [8080] }
  }
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [8081] }
  }
  ingress {
    action = "deny"
    protocol = "udp"
    destination { ports = [5353] }
  }
  egress { action = "allow" }
}
`

// quietLab is a server namespace whose eth0 (10.201.0.2) faces a client
// namespace (10.201.0.1), IPv4 alone: no IPv6 neighbour or multicast
// messages reach eth0, so every packet its counters count is one the
// test sent.
func quietLab(t *testing.T) lab {
	t.Helper()
	l := lab{srv: testns.New(t), cli: testns.New(t)}
	for _, ns := range []string{l.srv, l.cli} {
		for _, k := range []string{"all", "default"} {
			testns.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1")
		}
	}
	testns.Veth(t, l.cli, "c0", "10.201.0.1/24", l.srv, "eth0", "10.201.0.2/24")
	return l
}

// inside runs a command inside namespace ns and returns its stdout.
func inside(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).Output()
	return string(out), err
}

// scrape fetches url from inside ns.
func scrape(t *testing.T, ns, url string) string {
	t.Helper()
	out, err := inside(t, ns, "curl", "-sf", "--max-time", "5", url)
	if err != nil {
		t.Fatalf("curl %s in %s: %v", url, ns, err)
	}
	return out
}

// sample is the value of the series of text (Prometheus's format) whose
// name and labels start as series does; -1 when none.
func sample(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
			return v
		}
	}
	return -1
}

// sendUDP sends n datagrams from ns to addr.
func sendUDP(t *testing.T, ns, addr string, n int) {
	t.Helper()
	var c net.Conn
	if err := testns.Do(ns, func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		c.Write([]byte("x")) // refused ports answer ICMP errors: ignore them
	}
}

// sendPing sends one ICMP echo request from ns to addr.
func sendPing(t *testing.T, ns, addr string) {
	t.Helper()
	var c net.Conn
	if err := testns.Do(ns, func() (err error) { c, err = net.Dial("ip4:icmp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'h', 'w'}
	var sum uint32
	for i := 0; i < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	bin.BigEndian.PutUint16(msg[2:4], ^uint16(sum))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsPrometheus: a real Prometheus scrapes the agent's listener
// inside the namespace; promtool finds the exposition clean; the policy's
// and the endpoint's counters rise by exactly the packets sent; an apply
// counts as a success; a broken file sets hostwall_config_valid to 0.
func TestMetricsPrometheus(t *testing.T) {
	testns.Tool(t, "prometheus")
	testns.Tool(t, "promtool")
	testns.Tool(t, "curl")
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	a := startAgentInside(t, l.srv, dir, "--metrics-listen", "127.0.0.1:9631", "--debounce", "50ms")
	a.expect(t, "READY=1")
	const metricsURL = "http://127.0.0.1:9631/metrics"
	text := scrape(t, l.srv, metricsURL)
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// OpenMetrics when asked.
	if om, err := inside(t, l.srv, "curl", "-sf", "-H", "Accept: application/openmetrics-text; version=1.0.0", metricsURL); err != nil || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("no OpenMetrics exposition when asked (%v): %.200q", err, om)
	}

	const policyIn = `hostwall_policy_packets_total{direction="ingress",policy="web",tier="default"}`
	const endOfTier = `hostwall_endpoint_dropped_packets_total{direction="ingress",endpoint="eth0",reason="end_of_tier",tier="default"}`
	before := scrape(t, l.srv, metricsURL)
	sendUDP(t, l.cli, "10.201.0.2:5353", 7) // denied by web's rule 3
	sendUDP(t, l.cli, "10.201.0.2:9999", 5) // no rule: the end of the tier
	wantPolicy, wantEnd := sample(before, policyIn)+7, sample(before, endOfTier)+5
	var after string
	await(t, 5*time.Second, "the counters count the packets sent", func() bool {
		after = scrape(t, l.srv, metricsURL)
		return sample(after, policyIn) >= wantPolicy && sample(after, endOfTier) >= wantEnd
	})
	if got := sample(after, policyIn); got != wantPolicy {
		t.Errorf("%s = %v, want %v", policyIn, got, wantPolicy)
	}
	if got := sample(after, endOfTier); got != wantEnd {
		t.Errorf("%s = %v, want %v", endOfTier, got, wantEnd)
	}

	// A real Prometheus, scraping every second.
	prom := t.TempDir()
	cfg := filepath.Join(prom, "prometheus.yml")
	os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hostwall\n    static_configs:\n      - targets: ['127.0.0.1:9631']\n"), 0o644)
	p := exec.Command("ip", "netns", "exec", l.srv, "prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(prom, "data"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	var plog syncBuffer
	p.Stderr = &plog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	query := func(q string) float64 {
		out, err := inside(t, l.srv, "curl", "-sf", "--max-time", "5", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode", "query="+q)
		if err != nil {
			return -1
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(out), &r) != nil || len(r.Data.Result) != 1 {
			return -1
		}
		v, _ := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
		return v
	}
	await(t, 60*time.Second, "Prometheus scrapes the agent", func() bool { return query(`up{job="hostwall"}`) == 1 })
	await(t, 10*time.Second, "Prometheus sees the policy's count", func() bool { return query(policyIn) == wantPolicy })
	if got := query(`hostwall_config_valid`); got != 1 {
		t.Errorf("hostwall_config_valid = %v before any edit, want 1", got)
	}

	// An apply of a change counts as a success; a broken file makes the
	// configuration invalid.
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(strings.Replace(observedPolicy, "8080", "8090", 1)), 0o644)
	await(t, 10*time.Second, "Prometheus sees the apply", func() bool {
		return query(`hostwall_applies_total{result="success",trigger="change"}`) == 1
	})
	if got := query(`hostwall_generation`); got != 2 {
		t.Errorf("hostwall_generation = %v after the change, want 2", got)
	}
	os.WriteFile(filepath.Join(dir, "broken.hcl"), []byte("policy \"x\" {\n"), 0o644)
	await(t, 10*time.Second, "Prometheus sees the configuration invalid", func() bool { return query(`hostwall_config_valid`) == 0 })
	if got := query(`hostwall_applies_total{result="invalid",trigger="change"}`); got != 1 {
		t.Errorf(`hostwall_applies_total{result="invalid"} = %v, want 1`, got)
	}

	// status --format prometheus prints what the listener serves.
	r := hostwall(t, "", "status", "--format", "prometheus", "--netns", l.srv, "-c", dir)
	if r.code != 0 || sample(r.stdout, "hostwall_config_valid") != 0 || sample(r.stdout, policyIn) != wantPolicy {
		t.Errorf("status --format prometheus exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestMetricsTextfileNodeExporter: a real node_exporter's textfile
// collector serves the metrics file the agent writes, and the file is
// written again after an apply.
func TestMetricsTextfileNodeExporter(t *testing.T) {
	testns.Tool(t, "prometheus-node-exporter")
	testns.Tool(t, "curl")
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	textDir := t.TempDir()
	a := startAgent(t, ns, dir, "--metrics-textfile", filepath.Join(textDir, "hostwall.prom"), "--debounce", "50ms")
	a.expect(t, "READY=1")
	ne := exec.Command("ip", "netns", "exec", ns, "prometheus-node-exporter", "--web.listen-address=127.0.0.1:9100",
		"--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory="+textDir)
	if err := ne.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ne.Process.Kill(); ne.Wait() })
	get := func() string {
		out, _ := inside(t, ns, "curl", "-sf", "--max-time", "5", "http://127.0.0.1:9100/metrics")
		return out
	}
	await(t, 30*time.Second, "node_exporter serves generation 1", func() bool { return sample(get(), "hostwall_generation") == 1 })
	if out := get(); sample(out, "node_textfile_scrape_error") != 0 || sample(out, `hostwall_applies_total{result="success",trigger="start"}`) != 1 {
		t.Errorf("node_exporter's textfile metrics:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(policyFor(81)), 0o644)
	await(t, 10*time.Second, "node_exporter serves generation 2", func() bool { return sample(get(), "hostwall_generation") == 2 })
	if entries, _ := os.ReadDir(textDir); len(entries) != 1 {
		t.Errorf("the metrics directory holds %d files, want hostwall.prom alone (no temporary files left)", len(entries))
	}
}

// dropsFollower runs hostwall drops --follow --json and collects what it
// prints.
type dropsFollower struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	mu     sync.Mutex
	drops  []observe.Drop
	lines  int
}

func followDrops(t *testing.T, args ...string) *dropsFollower {
	t.Helper()
	f := &dropsFollower{cmd: exec.Command(binary, append([]string{"drops", "--follow", "--json"}, args...)...)}
	f.cmd.Env = append(baseEnv(), dirsOf(t)...)
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	f.cmd.Stderr = &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.cmd.Process.Kill(); f.cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var d observe.Drop
			err := json.Unmarshal(sc.Bytes(), &d)
			f.mu.Lock()
			f.lines++
			if err == nil {
				f.drops = append(f.drops, d)
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// awaitFollowing waits until the agent logs that a follower subscribed.
func awaitFollowing(t *testing.T, a *runningAgent) {
	t.Helper()
	a.logged(t, 5*time.Second, "drops followed")
}

func (f *dropsFollower) seen() ([]observe.Drop, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]observe.Drop(nil), f.drops...), f.lines
}

// TestDropsMatchExplain: hostwall drops --json shows a denied TCP SYN, an
// ICMP echo and a UDP datagram sent between namespaces, each naming its
// endpoint, interface, direction and 5-tuple, and the decider explain
// gives for that packet — through the agent, and without one (drops
// listens itself).
func TestDropsMatchExplain(t *testing.T) {
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	a := startAgent(t, l.srv, dir)
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "listening to the drop log")
	send := func() {
		reached(t, l.cli, "dialing 10.201.0.2:8081", func() error { // a SYN, denied by web's rule 2
			c, err := net.DialTimeout("tcp", "10.201.0.2:8081", 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		sendPing(t, l.cli, "10.201.0.2")        // no rule: the end of the tier
		sendUDP(t, l.cli, "10.201.0.2:5353", 1) // denied by web's rule 3
	}
	checkDrops := func(f *dropsFollower, how string) {
		t.Helper()
		var drops []observe.Drop
		await(t, 10*time.Second, how+": three kinds of drops shown", func() bool {
			drops, _ = f.seen()
			kinds := map[string]bool{}
			for _, d := range drops {
				kinds[d.Packet.Proto] = true
			}
			return kinds["tcp"] && kinds["icmp"] && kinds["udp"]
		})
		for _, d := range drops {
			p := d.Packet
			if d.Endpoint != "eth0" || d.Iface != "eth0" || d.Direction != "ingress" || p.Src.String() != "10.201.0.1" || p.Dst.String() != "10.201.0.2" {
				t.Errorf("%s: drop %+v: want endpoint eth0, interface eth0, ingress, 10.201.0.1 > 10.201.0.2", how, d)
			}
			args := []string{"explain", "--json", "-c", dir, "--host-name", "srv", "--iface", "eth0", "--in", "--proto", p.Proto,
				"--src", p.Src.String(), "--dst", p.Dst.String()}
			if p.Proto == "icmp" {
				args = append(args, "--icmp-type", strconv.Itoa(int(*p.ICMPType)), "--icmp-code", strconv.Itoa(int(*p.ICMPCode)))
			} else {
				args = append(args, "--sport", strconv.Itoa(int(p.SPort)), "--dport", strconv.Itoa(int(p.DPort)))
			}
			r := hostwall(t, "", args...)
			var ex struct {
				Verdict string
				Decided struct {
					Kind, Tier, Policy, Endpoint string
					Rule                         int
				}
			}
			if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
				t.Fatalf("explain: %v\n%s%s", err, r.stdout, r.stderr)
			}
			o := d.Decided
			if o == nil || ex.Verdict != "deny" || string(o.Kind) != ex.Decided.Kind || o.Tier != ex.Decided.Tier || o.Policy != ex.Decided.Policy || o.Rule != ex.Decided.Rule {
				t.Errorf("%s: %s packet decided by %+v; explain says %s by %+v", how, p.Proto, o, ex.Verdict, ex.Decided)
			}
		}
	}
	f := followDrops(t, "--netns", l.srv, "-c", dir)
	awaitFollowing(t, a)
	send()
	checkDrops(f, "through the agent")
	// status shows the top drops and the last ones.
	st := hostwall(t, "", "status", "--netns", l.srv, "-c", dir).stdout
	if !strings.Contains(st, "Top drops (since the agent started") || !strings.Contains(st, `policy rule: tier "default", policy "web", ingress rule 2 (deny)`) ||
		!regexp.MustCompile(`(?m)^  \d\d:\d\d:\d\d\.\d{3} eth0 ingress eth0 udp 10\.201\.0\.1:\d+ > 10\.201\.0\.2:5353`).MatchString(st) {
		t.Errorf("status does not show the drops:\n%s", st)
	}

	// Without an agent, drops --follow listens itself.
	a.cmd.Process.Kill()
	a.cmd.Wait()
	f = followDrops(t, "--netns", l.srv, "-c", dir)
	await(t, 5*time.Second, "drops --follow listens", func() bool { return strings.Contains(f.stderr.String(), "Listening to the drop log") })
	// Only one program may listen to the group: a second one is refused.
	if r := hostwall(t, "", "drops", "--follow", "--netns", l.srv, "-c", dir); r.code != 1 || !strings.Contains(r.stderr, "another program listens") {
		t.Errorf("a second drops --follow exited %d: %s", r.code, r.stderr)
	}
	send()
	checkDrops(f, "without an agent")
}

// TestDropsFlood: 100,000 denied datagrams are all counted by the kernel,
// while the drop log shows a bounded sample — at most the burst plus the
// rate for each second — and the agent's CPU time is reported.
func TestDropsFlood(t *testing.T) {
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	a := startAgent(t, l.srv, dir)
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "listening to the drop log")
	f := followDrops(t, "--netns", l.srv, "-c", dir)
	awaitFollowing(t, a)
	cpu := func() time.Duration {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.Atoi(fields[11])
		st, _ := strconv.Atoi(fields[12])
		return time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	const n = 100_000
	cpuBefore, start := cpu(), time.Now()
	sendUDP(t, l.cli, "10.201.0.2:5353", n)
	elapsed := time.Since(start)
	r := hostwall(t, "", "status", "--format", "prometheus", "--netns", l.srv, "-c", dir)
	const ruleDrops = `hostwall_policy_packets_total{direction="ingress",policy="web",tier="default"}`
	if got := sample(r.stdout, ruleDrops); got != n {
		t.Errorf("%s = %v after %d datagrams, want all counted", ruleDrops, got, n)
	}
	time.Sleep(500 * time.Millisecond) // the last logged packets reach the follower; nothing is awaited but the kernel's sample
	_, lines := f.seen()
	// settings.drop_log_rate: 5 a second, burst 5, for the one rule.
	if most := 5 + 5*int(elapsed.Seconds()+2); lines == 0 || lines > most {
		t.Errorf("drops showed %d lines for %d datagrams in %s; want between 1 and %d", lines, n, elapsed, most)
	}
	t.Logf("%d denied datagrams in %s: %d drop lines; agent CPU %s", n, elapsed.Round(time.Millisecond), lines, cpu()-cpuBefore)
}

// journaledAgent is the agent under a real journald: in a mount namespace
// of its own (the host's /run/systemd is never touched), journald's
// runtime directory bind-mounted from dir, the agent's stderr its stream
// (systemd-cat, with JOURNAL_STREAM set as systemd sets it). The whole
// process group is killed when the test ends.
func journaledAgent(t *testing.T, ns, config, logDir string, more ...string) *runningAgent {
	t.Helper()
	testns.Tool(t, "unshare")
	testns.Tool(t, "systemd-cat")
	testns.Tool(t, "journalctl")
	const script = `set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/journal /run/log
mount --bind "$LOGDIR" /run/log
mkdir -p /run/log/journal
/lib/systemd/systemd-journald &
while [ ! -S /run/systemd/journal/stdout ]; do sleep 0.05; done
exec systemd-cat -t hostwall sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh "$@"`
	return launchAgent(t, []string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"}, []string{"LOGDIR=" + logDir}, ns, config, more...)
}

// journalEntries are the entries of the journal in logDir matching the
// journalctl arguments, as JSON objects.
func journalEntries(t *testing.T, logDir string, match ...string) []map[string]any {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(logDir, "journal", "*"))
	if len(dirs) == 0 {
		return nil
	}
	out, err := exec.Command("journalctl", append([]string{"-D", dirs[0], "-o", "json", "--no-pager"}, match...)...).Output()
	if err != nil {
		return nil
	}
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

// TestDropsJournal: under a real journald the agent writes each drop as a
// journal entry whose fields name the endpoint, the packet and the
// decider (journalctl HOSTWALL_POLICY=web finds it), and a flood is
// journaled at the journal's rate, saying how many it left out.
func TestDropsJournal(t *testing.T) {
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	logDir := t.TempDir()
	a := journaledAgent(t, l.srv, dir, logDir, "--debounce", "50ms")
	a.expect(t, "READY=1")
	await(t, 10*time.Second, "the agent's log is in the journal", func() bool {
		return len(journalEntries(t, logDir, "MESSAGE=listening to the drop log")) > 0 ||
			len(journalEntries(t, logDir, "-g", "listening to the drop log")) > 0
	})
	sendUDP(t, l.cli, "10.201.0.2:5353", 1)
	var got []map[string]any
	await(t, 10*time.Second, "the drop is journaled", func() bool {
		got = journalEntries(t, logDir, "HOSTWALL_POLICY=web")
		return len(got) > 0
	})
	e := got[0]
	for k, want := range map[string]string{"HOSTWALL_EVENT": "drop", "HOSTWALL_ENDPOINT": "eth0", "HOSTWALL_IFACE": "eth0",
		"HOSTWALL_DIRECTION": "ingress", "HOSTWALL_PROTO": "udp", "HOSTWALL_SRC": "10.201.0.1", "HOSTWALL_DST": "10.201.0.2",
		"HOSTWALL_DPORT": "5353", "HOSTWALL_DECIDED": "policy rule", "HOSTWALL_TIER": "default", "HOSTWALL_RULE": "3", "PRIORITY": "5"} {
		if e[k] != want {
			t.Errorf("journal field %s = %v, want %q (entry %v)", k, e[k], want, e)
		}
	}
	if msg, _ := e["MESSAGE"].(string); !strings.Contains(msg, `policy "web", ingress rule 3 (deny)`) {
		t.Errorf("journal message %q does not name the decider", msg)
	}

	// A flood, the kernel logging up to 1,000 a second: the journal takes
	// its burst and rate, and its next line says how many it left out.
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(observedPolicy+"settings { drop_log_rate = 1000 }\n"), 0o644)
	await(t, 10*time.Second, "the rate is applied", func() bool {
		return strings.Contains(testns.NFT(t, l.srv, "list", "table", "inet", "hostwall"), "limit rate 1000/second")
	})
	start := time.Now()
	sendUDP(t, l.cli, "10.201.0.2:5353", 2000)
	await(t, 10*time.Second, "a line saying how many were left out", func() bool {
		sendUDP(t, l.cli, "10.201.0.2:5353", 1) // once the journal's tokens come back, this one is journaled
		for _, e := range journalEntries(t, logDir, "HOSTWALL_EVENT=drop") {
			if msg, _ := e["MESSAGE"].(string); strings.Contains(msg, "more drops not journaled") {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
		return false
	})
	elapsed := time.Since(start)
	drops := journalEntries(t, logDir, "HOSTWALL_EVENT=drop")
	if most := 1 + 50 + 10*int(elapsed.Seconds()+1); len(drops) > most {
		t.Errorf("%d drop lines in the journal in %s; its limit allows %d", len(drops), elapsed, most)
	}
	t.Logf("%d drop lines journaled in %s", len(drops), elapsed.Round(time.Millisecond))
}

// TestMetricsSurviveChanges: a policy's counter never goes down and loses
// no packet across what replaces or renumbers its kernel rules — a rule
// inserted above, the deny rule changed (packets sent just before), a
// rollback by the CLI, the table deleted by someone else and repaired —
// and hostwall reload refreshes the metrics at once.
func TestMetricsSurviveChanges(t *testing.T) {
	testns.Tool(t, "curl")
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	a := startAgentInside(t, l.srv, dir, "--metrics-listen", "127.0.0.1:9631", "--debounce", "50ms")
	a.expect(t, "READY=1")
	const url = "http://127.0.0.1:9631/metrics"
	const policyIn = `hostwall_policy_packets_total{direction="ingress",policy="web",tier="default"}`
	sent := 0
	send := func(n int) {
		sendUDP(t, l.cli, "10.201.0.2:5353", n)
		sent += n
	}
	expect := func(what string) {
		t.Helper()
		var got float64
		await(t, 10*time.Second, what, func() bool {
			got = sample(scrape(t, l.srv, url), policyIn)
			return got >= float64(sent)
		})
		if got != float64(sent) {
			t.Errorf("%s: %s = %v, want the %d sent", what, policyIn, got, sent)
		}
	}
	generation := func() float64 { return sample(scrape(t, l.srv, url), "hostwall_generation") }
	edit := func(content string, gen float64) {
		t.Helper()
		os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(content), 0o644)
		await(t, 10*time.Second, fmt.Sprintf("generation %v applied", gen), func() bool { return generation() == gen })
	}
	send(7)
	expect("before any change")

	// A rule inserted above: the deny is rule 4 now, its kernel rule kept.
	inserted := strings.Replace(observedPolicy, "policy \"web\" {\n", "policy \"web\" {\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [81] }\n  }\n", 1)
	edit(inserted, 2)
	send(3)
	expect("after a rule was inserted above")

	// The deny rule replaced, with packets sent just before and no scrape
	// between: the agent samples before it applies.
	send(5)
	edit(strings.Replace(inserted, "ports = [5353]", "ports = [5353, 5354]", 1), 3)
	send(2)
	expect("after the deny rule was replaced")

	// A rollback by the CLI, with packets sent just before (the CLI asks
	// the agent to read the counters first), then the agent's reload
	// (which the metrics show at once).
	send(5)
	if r := hostwall(t, "", "rollback", "1", "--auto-approve", "--confirm-timeout", "0", "--netns", l.srv, "-c", dir); r.code != 0 {
		t.Fatalf("rollback exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	expect("after a rollback")
	r := hostwall(t, "", "reload", "--netns", l.srv, "-c", dir)
	m := regexp.MustCompile(`generation (\d+) is in force`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("reload exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if want, _ := strconv.ParseFloat(m[1], 64); generation() != want {
		t.Errorf("after hostwall reload, hostwall_generation = %v, want %v at once", generation(), want)
	}
	send(4)
	expect("after the reload")

	// Someone deletes the table; the agent repairs it (the same rules,
	// perhaps the same handles, from zero).
	testns.NFT(t, l.srv, "delete", "table", "inet", "hostwall")
	a.logged(t, 10*time.Second, "repaired drift")
	send(6)
	expect("after the table was deleted and repaired")
}

// TestDropsAgentNotListening: an agent that does not listen to the drop
// log says so, and hostwall drops --follow then listens itself.
func TestDropsAgentNotListening(t *testing.T) {
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	a := startAgent(t, l.srv, dir, "--drop-log=false")
	a.expect(t, "READY=1")
	r := hostwall(t, "", "drops", "--netns", l.srv, "-c", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "the agent does not listen to the drop log (the agent runs with --drop-log=false)") {
		t.Errorf("drops exited %d: %s%s", r.code, r.stdout, r.stderr)
	}
	f := followDrops(t, "--netns", l.srv, "-c", dir)
	await(t, 5*time.Second, "drops --follow listens itself", func() bool { return strings.Contains(f.stderr.String(), "Listening to the drop log") })
	if !strings.Contains(f.stderr.String(), "listening here") {
		t.Errorf("no notice that drops listens itself: %s", f.stderr.String())
	}
	sendUDP(t, l.cli, "10.201.0.2:5353", 1)
	await(t, 5*time.Second, "the drop is shown", func() bool { drops, _ := f.seen(); return len(drops) == 1 })
}

// TestDropLogRetried: an agent that finds the drop log's group held by
// another program listens once it is free (it tries again every 10 s, with
// no polling while all is well).
func TestDropLogRetried(t *testing.T) {
	l := quietLab(t)
	dir := writeConfig(t, map[string]string{"p.hcl": observedPolicy})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", l.srv, "--auto-approve", "--host-name", "srv", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("apply exited %d: %s", r.code, r.stderr)
	}
	holder := followDrops(t, "--netns", l.srv, "-c", dir)
	await(t, 5*time.Second, "the holder listens", func() bool { return strings.Contains(holder.stderr.String(), "Listening to the drop log") })
	a := startAgent(t, l.srv, dir)
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "not listening to the drop log")
	holder.cmd.Process.Kill()
	holder.cmd.Wait()
	a.logged(t, 15*time.Second, `"msg":"listening to the drop log"`)
	f := followDrops(t, "--netns", l.srv, "-c", dir)
	awaitFollowing(t, a)
	sendUDP(t, l.cli, "10.201.0.2:5353", 1)
	await(t, 5*time.Second, "the drop is shown through the agent", func() bool { drops, _ := f.seen(); return len(drops) == 1 })
}

// explained is what hostwall explain --json says of a packet.
type explained struct {
	Verdict string
	Audit   bool
	Decided explainedStep
	Staged  struct {
		Verdict string
		Decided explainedStep
	}
}

type explainedStep struct {
	Kind, Tier, Policy string
	Rule               int
}

// explainTCP is what explain says of the TCP packet of d arriving on eth0
// of host srv, by the configuration in dir, and its output.
func explainTCP(t *testing.T, dir string, d observe.Drop) (explained, string) {
	t.Helper()
	r := hostwall(t, "", "explain", "--json", "-c", dir, "--host-name", "srv", "--iface", "eth0", "--in", "--proto", "tcp",
		"--src", d.Packet.Src.String(), "--dst", d.Packet.Dst.String(), "--sport", strconv.Itoa(int(d.Packet.SPort)), "--dport", strconv.Itoa(int(d.Packet.DPort)))
	var ex explained
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
		t.Errorf("explain --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return ex, r.stdout
}

// TestAuditEndpoint: an endpoint in audit mode lets through what its
// policies, the end of its tier and its default deny would drop — each
// shown in hostwall drops --json as audited, with the decider explain
// gives — and, switched to enforce, drops the same packets.
func TestAuditEndpoint(t *testing.T) {
	l := quietLab(t)
	serveTCP(t, l.srv, 8081)
	serveTCP(t, l.srv, 9999)
	audit := strings.Replace(observedPolicy, `host_endpoint "eth0" { interface = "eth0" }`,
		"host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  mode = \"audit\"\n}", 1)
	dir := writeConfig(t, map[string]string{"p.hcl": audit})
	a := startAgent(t, l.srv, dir, "--debounce", "50ms")
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "listening to the drop log")
	f := followDrops(t, "--netns", l.srv, "-c", dir)
	awaitFollowing(t, a)
	dial := func(addr string) bool {
		return reached(t, l.cli, "dialing "+addr, func() error {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	for _, addr := range []string{"10.201.0.2:8081", "10.201.0.2:9999"} {
		if !dial(addr) {
			t.Errorf("audit mode: %s did not connect", addr)
		}
	}
	var drops []observe.Drop
	await(t, 5*time.Second, "both audited", func() bool { drops, _ = f.seen(); return len(drops) >= 2 })
	for _, d := range drops[:2] {
		ex, out := explainTCP(t, dir, d)
		o := d.Decided
		if !d.Audit || o == nil || ex.Verdict != "allow" || !ex.Audit || string(o.Kind) != ex.Decided.Kind || o.Policy != ex.Decided.Policy || o.Rule != ex.Decided.Rule {
			t.Errorf("drop %+v (decided %+v); explain: %s", d, o, out)
		}
	}
	// The plan shows the mode, and enforcing drops the same packets.
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(observedPolicy), 0o644)
	await(t, 10*time.Second, "enforced", func() bool {
		return !strings.Contains(testns.NFT(t, l.srv, "list", "table", "inet", "hostwall"), "pol/web/in/audit")
	})
	for _, addr := range []string{"10.201.0.2:8081", "10.201.0.2:9999"} {
		if dial(addr) {
			t.Errorf("enforced: %s connected", addr)
		}
	}
}
