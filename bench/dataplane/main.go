// Command dataplane measures W5 (make bench runs it): what a firewall costs
// per packet. Two network namespaces joined by a veth pair; the receiver
// also has 63 more interfaces. Through
//
//	(a) no ruleset,
//	(b) hostwall's compiled policy: 64 host endpoints, a policy letting
//	    10,000 CIDRs reach 1,000 ports (interval sets, a verdict map),
//	(c) the same policy as a linear rule list (one rule per CIDR, as
//	    iptables-style firewalls have it), the sender's address last,
//	(d) (b) without the drop log (settings { drop_log = false }),
//	(e) (b) with a staged policy for each endpoint (before bench's,
//	    denying a port nothing uses): every new connection also walks the
//	    staged view (docs/kernel.md, "Staged policies"),
//
// it measures the rate of 64-byte UDP packets (iperf3, one flow: after its
// first packet, connection tracking's fast path) and the rate of new TCP
// connections (each one walks the policy), medians of -runs.
//
// With -cidrs above 10,000 (bench/million.sh: 1,000,000), (c) is instead
// hostwall's policy with the networks' set kept whole (--shard-min above
// its size), against (b) where it is sharded (ruleset.Sharding): the cost
// of the dispatch map and slot sets against one large set.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

const (
	sndAddr, rcvAddr = "10.99.0.1", "10.99.0.2"
	tcpPort          = 7000
	iperfPort        = 5201
)

func main() {
	bin := flag.String("bin", "bin/hostwall", "the hostwall binary")
	runs := flag.Int("runs", 3, "runs per measurement")
	dur := flag.Duration("time", 3*time.Second, "length of each run")
	keep := flag.Bool("keep", false, "keep the work directory (configuration, rulesets) and print its name")
	n := flag.Int("cidrs", 10000, "networks the policy lets in")
	flag.Parse()
	if err := run(*bin, *runs, *dur, *keep, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dataplane:", err)
		os.Exit(1)
	}
}

func sh(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func run(bin string, runs int, dur time.Duration, keep bool, n int) error {
	work, err := os.MkdirTemp("", "hostwall-bench-dataplane")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	snd, rcv := fmt.Sprintf("hwdp-snd-%d", os.Getpid()), fmt.Sprintf("hwdp-rcv-%d", os.Getpid())
	for _, ns := range []string{snd, rcv} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return err
		}
		defer exec.Command("ip", "netns", "del", ns).Run()
		sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	steps := [][]string{
		{"ip", "link", "add", "veth-snd", "netns", snd, "type", "veth", "peer", "name", "eth0", "netns", rcv},
		{"ip", "-n", snd, "addr", "add", sndAddr + "/24", "dev", "veth-snd"},
		{"ip", "-n", rcv, "addr", "add", rcvAddr + "/24", "dev", "eth0"},
		{"ip", "-n", snd, "link", "set", "veth-snd", "up"},
		{"ip", "-n", rcv, "link", "set", "eth0", "up"},
	}
	for i := 0; i < 32; i++ { // (this kernel has no dummy interfaces: veth pairs, unused)
		steps = append(steps, []string{"ip", "-n", rcv, "link", "add", fmt.Sprintf("if%d", 2*i), "type", "veth", "peer", "name", fmt.Sprintf("if%d", 2*i+1)})
	}
	for _, s := range steps {
		if err := sh(s[0], s[1:]...); err != nil {
			return err
		}
	}

	// The policy: n networks (the sender's last) may reach 1,000 ports
	// (the two measured among them), on 64 host endpoints.
	var cidrs []string
	for i := 0; len(cidrs) < n-1; i++ {
		cidrs = append(cidrs, fmt.Sprintf("172.%d.%d.%d/30", 16+i/8192, (i/32)%256, (i%32)*8)) // with gaps: 10,000 intervals
	}
	cidrs = append(cidrs, sndAddr+"/32")
	var ports []string
	for p := 20000; len(ports) < 998; p++ {
		ports = append(ports, fmt.Sprint(p))
	}
	ports = append(ports, fmt.Sprint(tcpPort), fmt.Sprint(iperfPort))
	cfg := filepath.Join(work, "cfg")
	os.Mkdir(cfg, 0o755)
	var hcl strings.Builder
	hcl.WriteString("host {\n  labels = { role = \"bench\" }\n}\nhost_endpoint \"eth0\" {\n  interface = \"eth0\"\n  labels = { ep = \"eth0\" }\n}\n")
	for i := 0; i < 63; i++ {
		fmt.Fprintf(&hcl, "host_endpoint \"if%d\" {\n  interface = \"if%d\"\n  labels = { ep = \"if%d\" }\n}\n", i, i, i)
	}
	fmt.Fprintf(&hcl, "network_set \"clients\" {\n  labels = { clients = \"yes\" }\n  nets_file = \"clients.txt\"\n}\n")
	fmt.Fprintf(&hcl, "policy \"bench\" {\n  selector = \"role == 'bench'\"\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n"+
		"    source { selector = \"clients == 'yes'\" }\n    destination { ports = [%s] }\n  }\n", strings.Join(ports, ", "))
	fmt.Fprintf(&hcl, "  ingress {\n    action = \"allow\"\n    protocol = \"udp\"\n    source { selector = \"clients == 'yes'\" }\n"+
		"    destination { ports = [%s] }\n  }\n  egress {\n    action = \"allow\"\n  }\n}\n", strings.Join(ports, ", "))
	os.WriteFile(filepath.Join(cfg, "bench.hcl"), []byte(hcl.String()), 0o644)
	os.WriteFile(filepath.Join(cfg, "clients.txt"), []byte(strings.Join(cidrs, "\n")+"\n"), 0o644)
	// (d): (b) without the drop log, which (b) has as every configuration
	// does by default.
	quiet := filepath.Join(work, "cfg-quiet")
	os.Mkdir(quiet, 0o755)
	os.WriteFile(filepath.Join(quiet, "bench.hcl"), []byte(hcl.String()+"settings {\n  drop_log = false\n}\n"), 0o644)
	os.WriteFile(filepath.Join(quiet, "clients.txt"), []byte(strings.Join(cidrs, "\n")+"\n"), 0o644)

	// (e): (b) with a staged policy for each endpoint.
	staged := filepath.Join(work, "cfg-staged")
	os.Mkdir(staged, 0o755)
	var st strings.Builder
	for _, ep := range append([]string{"eth0"}, func() (eps []string) {
		for i := 0; i < 63; i++ {
			eps = append(eps, fmt.Sprintf("if%d", i))
		}
		return eps
	}()...) {
		fmt.Fprintf(&st, "policy \"staged-%s\" {\n  staged = true\n  order = 10\n  selector = \"ep == '%s'\"\n  ingress {\n    action = \"deny\"\n    protocol = \"tcp\"\n    destination { ports = [9999] }\n  }\n}\n", ep, ep)
	}
	os.WriteFile(filepath.Join(staged, "bench.hcl"), []byte(hcl.String()+st.String()), 0o644)
	os.WriteFile(filepath.Join(staged, "clients.txt"), []byte(strings.Join(cidrs, "\n")+"\n"), 0o644)

	var linear strings.Builder
	fmt.Fprintf(&linear, "table inet linear {\n  set ports { type inet_service; elements = { %s } }\n", strings.Join(ports, ", "))
	linear.WriteString("  chain input {\n    type filter hook input priority filter; policy accept;\n    iifname != \"eth0\" accept\n" +
		"    ct state established,related accept\n    ct state invalid drop\n    tcp dport 22 accept\n")
	for _, c := range cidrs[:min(len(cidrs), 10000)] { // (c) of more is hostwall's (below)
		fmt.Fprintf(&linear, "    ip saddr %s meta l4proto { tcp, udp } th dport @ports accept\n", c)
	}
	linear.WriteString("    drop\n  }\n}\n")
	linearFile := filepath.Join(work, "linear.nft")
	os.WriteFile(linearFile, []byte(linear.String()), 0o644)

	// The servers, in the receiver: iperf3, and a TCP server that closes
	// every connection at once.
	iperf := exec.Command("ip", "netns", "exec", rcv, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))
	if err := iperf.Start(); err != nil {
		return err
	}
	defer func() { iperf.Process.Kill(); iperf.Wait() }()
	ln, err := testns.ServeClosing(rcv, fmt.Sprintf(":%d", tcpPort))
	if err != nil {
		return err
	}
	defer ln.Close()
	if !waitPort(snd, fmt.Sprintf("%s:%d", rcvAddr, iperfPort)) {
		return errors.New("iperf3 -s does not answer")
	}

	type result struct{ pps, cps []float64 }
	// hostwall applies the configuration dir in the receiver, alone.
	hostwall := func(dir string, more ...string) func() error {
		return func() error {
			sh("ip", "netns", "exec", rcv, "nft", "flush", "ruleset")
			return sh(bin, append([]string{"apply", "-c", dir, "--netns", rcv, "--auto-approve", "--confirm-timeout", "0",
				"--state-dir", filepath.Join(work, "state"), "--run-dir", filepath.Join(work, "run")}, more...)...)
		}
	}
	modes := []struct {
		name  string
		setup func() error
	}{
		{"(a) no ruleset", func() error { return sh("ip", "netns", "exec", rcv, "nft", "flush", "ruleset") }},
		{"(b) hostwall: sets and a verdict map", hostwall(cfg)},
		{"(c) the same policy as 10,000 linear rules", func() error {
			sh("ip", "netns", "exec", rcv, "nft", "flush", "ruleset")
			return sh("ip", "netns", "exec", rcv, "nft", "-f", linearFile)
		}},
	}
	if n <= 10000 {
		modes = append(modes, struct {
			name  string
			setup func() error
		}{"(d) hostwall without the drop log", hostwall(quiet)}, struct {
			name  string
			setup func() error
		}{"(e) hostwall with a staged policy per endpoint", hostwall(staged)})
	}
	if n > 10000 {
		modes[1].name = fmt.Sprintf("(b) hostwall, %d networks sharded", n)
		modes[2] = struct {
			name  string
			setup func() error
		}{fmt.Sprintf("(c) hostwall, %d networks in one set", n), hostwall(cfg, "--shard-min", fmt.Sprint(2*n))}
	}
	results := make([]result, len(modes))
	for r := 0; r < runs; r++ { // interleaved, so that drift in the machine's speed hits all modes alike
		for i, m := range modes {
			if err := m.setup(); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			pps, err := udpRate(snd, dur)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			cps, err := connRate(snd, dur)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			results[i].pps = append(results[i].pps, pps)
			results[i].cps = append(results[i].cps, cps)
		}
	}
	base := results[0]
	fmt.Printf("| W5 data plane (median of %d × %s) | UDP 64 B packets/s | ratio to (a) | new TCP connections/s | ratio to (a) |\n|---|---|---|---|---|\n", runs, dur)
	for i, m := range modes {
		p, c := median(results[i].pps), median(results[i].cps)
		fmt.Printf("| %s | %.0f | %.2f× | %.0f | %.2f× |\n", m.name, p, p/median(base.pps), c, c/median(base.cps))
	}
	for i, m := range modes {
		fmt.Printf("runs %s: UDP %v; TCP %v\n", m.name, rounded(results[i].pps), rounded(results[i].cps))
	}
	return nil
}

// udpRate sends 64-byte UDP datagrams with iperf3 for d and returns the
// datagrams per second the receiver got.
func udpRate(snd string, d time.Duration) (float64, error) {
	out, err := exec.Command("ip", "netns", "exec", snd, "iperf3", "-c", rcvAddr, "-p", fmt.Sprint(iperfPort), "-u", "-b", "0",
		"-l", "64", "-t", fmt.Sprint(int(d.Seconds())), "-J").Output()
	if err != nil {
		return 0, fmt.Errorf("iperf3: %v %s", err, out)
	}
	var r struct {
		End struct {
			Sum struct {
				Seconds     float64 `json:"seconds"`
				Packets     float64 `json:"packets"`
				LostPackets float64 `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	s := r.End.Sum
	if s.Seconds == 0 {
		return 0, fmt.Errorf("iperf3 reported nothing: %s", out)
	}
	return (s.Packets - s.LostPackets) / s.Seconds, nil
}

// connRate opens TCP connections to the receiver from 4 goroutines for d
// and returns the completed connections per second. Each closes with a
// reset (SO_LINGER 0), so no TIME_WAIT runs the sender out of ports.
func connRate(snd string, d time.Duration) (float64, error) {
	var n atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	addr := &net.TCPAddr{IP: net.ParseIP(rcvAddr), Port: tcpPort}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			testns.Do(snd, func() error {
				for time.Now().Before(end) {
					c, err := net.DialTCP("tcp", nil, addr)
					if err != nil {
						failed.Store(err)
						return err
					}
					if raw, err := c.SyscallConn(); err == nil {
						raw.Control(func(fd uintptr) {
							syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
						})
					}
					c.Close()
					n.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / d.Seconds(), nil
}

func waitPort(ns, addr string) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if testns.Do(ns, func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil {
			return true
		}
	}
	return false
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func rounded(xs []float64) []int {
	var out []int
	for _, x := range xs {
		out = append(out, int(x+0.5))
	}
	return out
}
