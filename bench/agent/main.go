// Command agent measures the hostwall agent (make bench runs it):
//
//	W4: a policy file saved → the agent's transaction committed in the
//	    kernel, minus the debounce (p50, p99 over -runs saves); and, when
//	    the configuration has bench/gen's blocklist.txt, that list saved
//	    with one network changed → committed, and → the generation
//	    recorded (the agent free for the next change);
//	W6: the agent's resident memory with the configuration loaded, and its
//	    CPU time and context switches over -idle of doing nothing;
//	busy host (-churn N: another program changes a table of its own N
//	    times a second, as Docker, fail2ban or kube-proxy do): W4 again, a
//	    no-op hostwall plan and apply while the agent runs, the same plan
//	    with the agent stopped, and drift of hostwall's set elements and
//	    rules (made with nft) until the agent's repair is committed.
//
// It starts `hostwall agent` on -config inside a network namespace of its
// own, learns of commits from the kernel's nftables events (nft.Watch),
// and reads the agent's /proc entries.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hostwall/hostwall/bench/internal/benchns"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/state"
)

func main() {
	bin := flag.String("bin", "bin/hostwall", "the hostwall binary")
	config := flag.String("config", "", "the configuration directory (bench/gen's)")
	runs := flag.Int("runs", 20, "saves to time")
	debounce := flag.Duration("debounce", 200*time.Millisecond, "the agent's --debounce")
	idle := flag.Duration("idle", 10*time.Second, "how long to watch the idle agent")
	settle := flag.Duration("settle", 10*time.Second, "how long to leave the agent alone after its first apply before watching it idle")
	churn := flag.Int("churn", 0, "after W4 and W6, measure a busy host: another table changed this many times a second (0: not)")
	drift := flag.String("drift", "", "(internal) make a drift from this process: NS,element,SET,ADDR or NS,rule,CHAIN,PORT")
	flag.Parse()
	if *drift != "" {
		if err := makeDrift(*drift); err != nil {
			fmt.Fprintln(os.Stderr, "bench/agent:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *config, *runs, *debounce, *settle, *idle, *churn); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

func run(bin, config string, runs int, debounce, settle, idle time.Duration, churn int) error {
	work, err := os.MkdirTemp("", "hostwall-bench-agent")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ns, del, err := benchns.New("hwbench-agent")
	if err != nil {
		return err
	}
	defer del()

	stateDir, runDir := filepath.Join(work, "state"), filepath.Join(work, "run")
	log, err := os.Create(filepath.Join(work, "agent.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	agent := exec.Command(bin, "agent", "-c", config, "--netns", ns, "--state-dir", stateDir, "--run-dir", runDir,
		"--debounce", debounce.String(), "--log-format", "json")
	agent.Stdout, agent.Stderr = log, log
	if err := agent.Start(); err != nil {
		return err
	}
	defer stop(agent)

	store := &state.Store{Dir: stateDir}
	start := time.Now()
	if err := waitGeneration(store, 1, 60*time.Second); err != nil {
		return fmt.Errorf("%w (agent log: %s)", err, log.Name())
	}
	fmt.Printf("agent up: first apply done %d ms after start\n", time.Since(start).Milliseconds())

	conn, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	commits := make(chan time.Time, 64)
	byAgent := make(chan time.Time, 64) // commits of hostwall processes
	byNft := make(chan time.Time, 64)   // and of other processes' (drifts)
	if err := conn.Watch(ctx, func(c nft.Change) {
		select {
		case commits <- time.Now():
		default:
		}
		to := map[bool]chan time.Time{true: byAgent, false: byNft}[strings.HasPrefix(c.By, "hostwall ")]
		if c.Certain { // hostwall's, or the drifts' (another process)
			select {
			case to <- time.Now():
			default:
			}
		}
	}); err != nil {
		return err
	}

	// W6 first, on the configuration as loaded: memory, and an idle agent
	// (after settle: the Go runtime returns memory in the background for a
	// while after a large apply).
	time.Sleep(settle) // measuring idleness: nothing to wait for
	rss, err := benchns.ProcField(agent.Process.Pid, "status", "VmRSS:")
	if err != nil {
		return err
	}
	cpu0, sw0, err := benchns.CPUAndSwitches(agent.Process.Pid)
	if err != nil {
		return err
	}
	time.Sleep(idle) // measuring idleness: nothing to wait for
	cpu1, sw1, err := benchns.CPUAndSwitches(agent.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("W6 RSS %d MB %s after the first apply; then idle %s: CPU %d ms, %d context switches\n", rss/1024, settle, idle, (cpu1-cpu0)*10, sw1-sw0)

	// W4: save a policy file (write, then rename over: as editors and
	// configuration management do) and time the commit.
	var lat []time.Duration
	policy := filepath.Join(config, "zz-bench-w4.hcl")
	defer os.Remove(policy)
	for i := 0; i < runs; i++ {
		gen, err := store.Current()
		if err != nil {
			return err
		}
		drain(commits)
		tmp := policy + ".tmp~"
		body := fmt.Sprintf("policy \"bench-w4\" {\n  selector = \"all()\"\n  order = 5\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n}\n", 30000+i)
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			return err
		}
		t0 := time.Now()
		if err := os.Rename(tmp, policy); err != nil {
			return err
		}
		select {
		case t1 := <-commits:
			lat = append(lat, t1.Sub(t0)-debounce)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("save %d: no commit within 30 s (agent log: %s)", i, log.Name())
		}
		if err := waitGeneration(store, gen+1, 30*time.Second); err != nil { // the agent verified and recorded it
			return err
		}
	}
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99) // lat sorted
	fmt.Printf("W4 save → commit beyond the %s debounce, %d saves: p50 %d ms, p99 %d ms (min %d, max %d)\n", debounce, len(lat),
		p50.Milliseconds(), p99.Milliseconds(), lat[0].Milliseconds(), lat[len(lat)-1].Milliseconds())
	if err := blocklistSaves(filepath.Join(config, "blocklist.txt"), store, commits, runs, debounce, log.Name()); err != nil {
		return err
	}
	if churn == 0 {
		return nil
	}
	b := busy{bin: bin, config: config, ns: ns, dirs: []string{"--state-dir", stateDir, "--run-dir", runDir}, store: store,
		commits: commits, byAgent: byAgent, byNft: byNft, runs: runs, debounce: debounce, log: log.Name(), generation: conn.Generation}
	return b.measure(ctx, agent, churn)
}

// blocklistSaves saves list with its first network changed, runs times,
// and times each save to the agent's commit and to the generation it
// records; the list is as it was at the end. Without the list, nothing.
func blocklistSaves(list string, store *state.Store, commits chan time.Time, runs int, debounce time.Duration, logName string) error {
	orig, err := os.ReadFile(list)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, rest, _ := strings.Cut(string(orig), "\n")
	var toCommit, toRecord []time.Duration
	for i := 0; i <= runs; i++ {
		body := fmt.Sprintf("11.0.%d.%d/30\n%s", i/64, i%64*4, rest)
		if i == runs {
			body = string(orig)
		}
		gen, err := store.Current()
		if err != nil {
			return err
		}
		drain(commits)
		if err := os.WriteFile(list+".tmp~", []byte(body), 0o644); err != nil {
			return err
		}
		t0 := time.Now()
		if err := os.Rename(list+".tmp~", list); err != nil {
			return err
		}
		select {
		case t1 := <-commits:
			toCommit = append(toCommit, t1.Sub(t0)-debounce)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("blocklist save %d: no commit within 30 s (agent log: %s)", i, logName)
		}
		if err := waitGeneration(store, gen+1, 30*time.Second); err != nil {
			return err
		}
		toRecord = append(toRecord, time.Since(t0)-debounce)
	}
	toCommit, toRecord = toCommit[:runs], toRecord[:runs] // not the restoring save
	fmt.Printf("W4 blocklist saved (one network changed) beyond the debounce, %d saves: p50 %d ms to the commit, %d ms to the generation recorded\n",
		runs, percentile(toCommit, 0.5).Milliseconds(), percentile(toRecord, 0.5).Milliseconds())
	return nil
}

// percentile is the p-th of d (0 ≤ p ≤ 1), which it sorts.
func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[int(p*float64(len(d)-1)+0.5)]
}

// waitGeneration polls the state directory (cheap: one small file) until
// the agent has recorded generation n.
func waitGeneration(store *state.Store, n int, limit time.Duration) error {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cur, err := store.Current(); err == nil && cur >= n {
			return nil
		}
	}
	return fmt.Errorf("the agent did not record generation %d within %s", n, limit)
}

// waitLog waits until the agent's log at path has n lines holding what.
func waitLog(path, what string, n int, limit time.Duration) error {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if strings.Count(readFile(path), what) >= n {
			return nil
		}
	}
	return fmt.Errorf("the agent did not log %s %d times within %s (log: %s)", what, n, limit, path)
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func drain(c chan time.Time) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// stop ends the agent as systemd does, SIGTERM, so that it exits through
// its own path (HOSTWALL_CPUPROFILE then writes a profile of it); killed
// after 10 s.
func stop(agent *exec.Cmd) {
	agent.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { agent.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		agent.Process.Kill()
		<-done
	}
}
