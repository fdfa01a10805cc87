// Command names measures the agent following domain names (issue 21):
// 1,000 names of 10 addresses each, served by a real dnsmasq in the
// benchmark's namespace with a TTL of -ttl, in 100 rules of 10 names. It
// reports the agent's first apply, its resident memory, its CPU over
// -watch, and when it asked the names again: how many applies the names
// took, how many names each resolved, spread over time (one line per
// tenth of the TTL).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hostwall/hostwall/bench/internal/benchns"
	"github.com/hostwall/hostwall/state"
)

func main() {
	bin := flag.String("bin", "bin/hostwall", "the hostwall binary")
	ttl := flag.Int("ttl", 30, "the records' TTL, seconds")
	watch := flag.Duration("watch", 90*time.Second, "how long to watch the agent after its first apply")
	flag.Parse()
	if err := run(*bin, *ttl, *watch); err != nil {
		fmt.Fprintln(os.Stderr, "bench/names:", err)
		os.Exit(1)
	}
}

func run(bin string, ttl int, watch time.Duration) error {
	work, err := os.MkdirTemp("", "hostwall-bench-names")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ns, del, err := benchns.New("hwbench-names")
	if err != nil {
		return err
	}
	defer del()
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()

	// 1,000 names of 10 addresses each.
	var hosts, rules strings.Builder
	for i := range 1000 {
		for j := range 10 {
			fmt.Fprintf(&hosts, "10.%d.%d.%d n%04d.example.com\n", 100+i/250, i%250, j+1, i)
		}
	}
	for r := range 100 {
		var names []string
		for k := range 10 {
			names = append(names, fmt.Sprintf("%q", fmt.Sprintf("n%04d.example.com", r*10+k)))
		}
		fmt.Fprintf(&rules, "  egress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination {\n      domains = [%s]\n      ports = [443]\n    }\n  }\n", strings.Join(names, ", "))
	}
	hostsFile := filepath.Join(work, "hosts")
	os.WriteFile(hostsFile, []byte(hosts.String()), 0o644)
	cfg := filepath.Join(work, "cfg")
	os.Mkdir(cfg, 0o700)
	os.WriteFile(filepath.Join(cfg, "names.hcl"), []byte("host {\n  dns_servers = [\"127.0.0.1\"]\n}\n"+
		"host_endpoint \"eth0\" { interface = \"eth0\" }\npolicy \"names\" {\n"+rules.String()+"}\n"), 0o600)

	dns := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--port=53", "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--local=/example.com/", fmt.Sprintf("--local-ttl=%d", ttl), "--addn-hosts="+hostsFile)
	if err := dns.Start(); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	defer func() { dns.Process.Kill(); dns.Wait() }()
	time.Sleep(500 * time.Millisecond) // dnsmasq reading 10,000 records; the agent asks again if it was early

	stateDir, runDir := filepath.Join(work, "state"), filepath.Join(work, "run")
	logPath := filepath.Join(work, "agent.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	agent := exec.Command(bin, "agent", "-c", cfg, "--netns", ns, "--state-dir", stateDir, "--run-dir", runDir, "--log-format", "json")
	agent.Stdout, agent.Stderr = log, log
	start := time.Now()
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }()
	store := &state.Store{Dir: stateDir}
	for end := time.Now().Add(120 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cur, err := store.Current(); err == nil && cur >= 1 {
			break
		}
		if time.Now().After(end) {
			return fmt.Errorf("no first apply within 2 minutes (log %s)", logPath)
		}
	}
	fmt.Printf("first apply (1,000 names resolved, 100 sets of 100 addresses): %d ms after start\n", time.Since(start).Milliseconds())
	cpu0, _, err := benchns.CPUAndSwitches(agent.Process.Pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	time.Sleep(watch) // watching the agent work on its own
	cpu1, _, err := benchns.CPUAndSwitches(agent.Process.Pid)
	if err != nil {
		return err
	}
	rss, err := benchns.ProcField(agent.Process.Pid, "status", "VmRSS:")
	if err != nil {
		return err
	}
	fmt.Printf("over %s: agent CPU %.2f s (%.1f%% of one core); RSS %d MB\n", watch, float64(cpu1-cpu0)/100, float64(cpu1-cpu0)/watch.Seconds(), rss/1024)

	// The applies the names asked for, by tenth of the TTL.
	data, _ := os.ReadFile(logPath)
	slot := time.Duration(ttl) * time.Second / 10
	counts := map[int]int{}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		var e struct {
			TS  float64 `json:"ts"`
			Msg string  `json:"msg"`
			Why string  `json:"why"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "applied" || !strings.HasPrefix(e.Why, "domain names") {
			continue
		}
		at := time.Unix(0, int64(e.TS*1e9))
		if at.Before(t0) {
			continue
		}
		n++
		counts[int(at.Sub(t0)/slot)]++
	}
	fmt.Printf("applies for names due over %s: %d\n", watch, n)
	var line []string
	for i := 0; i < int(watch/slot); i++ {
		line = append(line, strconv.Itoa(counts[i]))
	}
	fmt.Printf("by tenth of the TTL (%s each): %s\n", slot, strings.Join(line, " "))
	return nil
}
