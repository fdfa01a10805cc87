// Command fleet measures an agent following Calico's etcd datastore at a
// fleet's scale (issue 22): a real etcd (Debian's etcd-server) on
// loopback holding 1,000 host endpoints, one per node of 1,000 node
// names, and 1,000 GlobalNetworkPolicies selecting them by label, as
// calicoctl stores them. One agent, for one of the nodes, starts -runs
// times from nothing (a fresh state directory): the time from its start to
// its first generation (list the datastore, load and compile its share,
// apply), and its resident memory then and at its peak. Then -writes
// writes of a policy selecting its node: the time from the write to the
// agent's generation holding it (p50, p99).
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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hostwall/hostwall/bench/internal/benchns"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/state"
)

func main() {
	bin := flag.String("bin", "bin/hostwall", "the hostwall binary")
	nodes := flag.Int("nodes", 1000, "node names, one host endpoint each")
	policies := flag.Int("policies", 1000, "GlobalNetworkPolicies")
	runs := flag.Int("runs", 5, "agent starts measured")
	writes := flag.Int("writes", 20, "writes measured after the last start")
	flag.Parse()
	if err := run(*bin, *nodes, *policies, *runs, *writes); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}

func run(bin string, nodes, policies, runs, writes int) error {
	work, err := os.MkdirTemp("", "hostwall-bench-fleet")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	client, peer := "http://127.0.0.1:23179", "http://127.0.0.1:23180"
	etcd := exec.Command("etcd", "--name", "b", "--data-dir", filepath.Join(work, "etcd"), "--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "b="+peer, "--log-level", "warn")
	if err := etcd.Start(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer func() { etcd.Process.Kill(); etcd.Wait() }()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx := context.Background()
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) { // until etcd answers
		if _, err := cli.Get(ctx, "x"); err == nil {
			break
		} else if time.Now().After(end) {
			return fmt.Errorf("etcd does not answer: %w", err)
		}
	}

	// The fleet: node-i has endpoint node-i-eth0, labelled with one of 50
	// roles and one of 20 zones; policy j allows a port to a role, a
	// zone, or both.
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	put := func(k, v string) error {
		ops = append(ops, clientv3.OpPut(k, v))
		if len(ops) == 100 {
			return flush()
		}
		return nil
	}
	for i := range nodes {
		n := fmt.Sprintf("node-%04d", i)
		if err := put(loader.CalicoPrefix+"hostendpoints/"+n+"-eth0", fmt.Sprintf(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"%s-eth0","uid":"u%d","creationTimestamp":"2026-12-06T10:00:00Z","labels":{"role":"r%d","zone":"z%d"}},"spec":{"node":"%s","interfaceName":"eth0","expectedIPs":["10.%d.%d.1"]}}`,
			n, i, i%50, i%20, n, 100+i/250, i%250)); err != nil {
			return err
		}
	}
	for j := range policies {
		sel := fmt.Sprintf("role == 'r%d'", j%50)
		switch j % 3 {
		case 1:
			sel = fmt.Sprintf("zone == 'z%d'", j%20)
		case 2:
			sel = fmt.Sprintf("role == 'r%d' && zone in {'z%d', 'z%d'}", j%50, j%20, (j+1)%20)
		}
		if err := put(loader.CalicoPrefix+"globalnetworkpolicies/default.p"+fmt.Sprint(j), fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.p%d","uid":"g%d","creationTimestamp":"2026-12-06T10:00:00Z"},"spec":{"tier":"default","order":%d,"selector":%q,"ingress":[{"action":"Allow","protocol":"TCP","source":{"nets":["10.%d.0.0/16"]},"destination":{"ports":[%d]}}],"types":["Ingress"]}}`,
			j, j, j, sel, j%200, 1000+j)); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Printf("etcd: %d host endpoints for %d nodes, %d policies\n", nodes, nodes, policies)

	ns, del, err := benchns.New("hwbench-fleet")
	if err != nil {
		return err
	}
	defer del()
	node := fmt.Sprintf("node-%04d", 42%nodes)
	var starts []time.Duration
	var rss, peak []int
	var last *exec.Cmd
	var stateDir string
	for r := range runs {
		if last != nil {
			last.Process.Signal(syscall.SIGTERM)
			last.Wait()
		}
		exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "hostwall").Run() // from nothing
		cfg, run := filepath.Join(work, fmt.Sprintf("cfg%d", r)), filepath.Join(work, fmt.Sprintf("run%d", r))
		stateDir = filepath.Join(work, fmt.Sprintf("state%d", r))
		os.Mkdir(cfg, 0o700)
		log, err := os.Create(filepath.Join(work, fmt.Sprintf("agent%d.log", r)))
		if err != nil {
			return err
		}
		agent := exec.Command(bin, "agent", "-c", cfg, "--netns", ns, "--state-dir", stateDir, "--run-dir", run, "--log-format", "json",
			"--node", node, "--etcd-endpoints", client)
		agent.Stdout, agent.Stderr = log, log
		start := time.Now()
		if err := agent.Start(); err != nil {
			return err
		}
		last = agent
		if err := await(stateDir, 1, 2*time.Minute); err != nil {
			return fmt.Errorf("%w (log %s)", err, log.Name())
		}
		starts = append(starts, time.Since(start))
		kb, _ := benchns.ProcField(agent.Process.Pid, "status", "VmRSS:")
		hwm, _ := benchns.ProcField(agent.Process.Pid, "status", "VmHWM:")
		rss, peak = append(rss, kb/1024), append(peak, hwm/1024)
		log.Close()
	}
	defer func() { last.Process.Signal(syscall.SIGTERM); last.Wait() }()
	fmt.Printf("agent start for %s to its first generation, %d runs: median %s (each: %s)\n", node, runs, median(starts), join(starts))
	fmt.Printf("agent RSS after it: median %d MB; peak (VmHWM) median %d MB\n", medianInt(rss), medianInt(peak))

	// Writes selecting the node: from the write to its generation.
	var took []time.Duration
	store := &state.Store{Dir: stateDir}
	for w := range writes {
		cur, _ := store.Current()
		start := time.Now()
		if _, err := cli.Put(ctx, loader.CalicoPrefix+"globalnetworkpolicies/default.w", fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.w"},"spec":{"selector":"role == 'r%d'","ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[%d]}}]}}`,
			42%50, 5000+w)); err != nil {
			return err
		}
		if err := await(stateDir, cur+1, time.Minute); err != nil {
			return err
		}
		took = append(took, time.Since(start))
	}
	if writes > 0 {
		slices.Sort(took)
		fmt.Printf("a write selecting %s to its generation, %d writes: p50 %s, p99 %s\n", node, writes, took[len(took)/2].Round(time.Millisecond), took[len(took)*99/100].Round(time.Millisecond))
	}
	return nil
}

// await waits until the state directory's current generation is at least
// gen.
func await(dir string, gen int, within time.Duration) error {
	store := &state.Store{Dir: dir}
	for end := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) {
		if cur, err := store.Current(); err == nil && cur >= gen {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("no generation %d within %s", gen, within)
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func medianInt(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func join(d []time.Duration) string {
	var out []string
	for _, x := range d {
		out = append(out, x.Round(time.Millisecond).String())
	}
	return strings.Join(out, " ")
}
