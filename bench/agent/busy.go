package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hostwall/hostwall/internal/churn"
	"github.com/hostwall/hostwall/state"
)

// busy measures the agent and the CLI on a busy host: another program
// changes a table of its own rate times a second throughout (through the
// library: internal/churn).
type busy struct {
	bin, config, ns string
	dirs            []string
	store           *state.Store
	commits         chan time.Time
	byAgent, byNft  chan time.Time
	runs            int
	debounce        time.Duration
	log             string
	// generation reads the kernel's ruleset generation of ns.
	generation func() (uint32, error)
}

func (b busy) measure(ctx context.Context, agent *exec.Cmd, rate int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writes := make(chan int, 1)
	go func() { // the other program
		n, err := churn.Run(ctx, b.ns, rate, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/agent: the other program:", err)
		}
		writes <- n
	}()
	fmt.Printf("busy host: another table changed %d times a second throughout\n", rate)

	// W4 under churn: a policy file saved → the agent's commit.
	policy := filepath.Join(b.config, "zz-bench-busy.hcl")
	defer os.Remove(policy)
	var w4 []time.Duration
	for i := range b.runs {
		gen, err := b.store.Current()
		if err != nil {
			return err
		}
		drain(b.byAgent)
		body := fmt.Sprintf("policy \"bench-busy\" {\n  selector = \"all()\"\n  order = 6\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n}\n", 31000+i)
		if err := os.WriteFile(policy+".tmp~", []byte(body), 0o644); err != nil {
			return err
		}
		t0 := time.Now()
		if err := os.Rename(policy+".tmp~", policy); err != nil {
			return err
		}
		t1, err := next(b.byAgent, "save under churn", b.log)
		if err != nil {
			return err
		}
		w4 = append(w4, t1.Sub(t0)-b.debounce)
		if err := waitGeneration(b.store, gen+1, 30*time.Second); err != nil {
			return err
		}
	}
	fmt.Printf("W4 under churn, %d saves: p50 %d ms, p99 %d ms beyond the debounce\n", len(w4), percentile(w4, 0.5).Milliseconds(), percentile(w4, 0.99).Milliseconds())

	// The CLI while the agent runs: no-op plan and apply, each right after
	// the other program's changes moved the kernel's generation.
	plan := append([]string{"plan", "-c", b.config, "--netns", b.ns, "--detailed-exitcode"}, b.dirs...)
	apply := append([]string{"apply", "-c", b.config, "--netns", b.ns, "--auto-approve", "--confirm-timeout", "0"}, b.dirs...)
	// Both say "From hostwall's last full check": the agent vouched for the
	// transactions since, or (rarely) none came between the record and
	// the command.
	planT, err := b.timed(plan, b.runs, "From hostwall's last full check")
	if err != nil {
		return err
	}
	applyT, err := b.timed(apply, b.runs, "From hostwall's last full check")
	if err != nil {
		return err
	}
	fmt.Printf("no-op plan under churn, agent running: p50 %d ms (max %d); no-op apply: p50 %d ms (max %d)\n",
		percentile(planT, 0.5).Milliseconds(), planT[len(planT)-1].Milliseconds(), percentile(applyT, 0.5).Milliseconds(), applyT[len(applyT)-1].Milliseconds())

	// Drift: an element added to one of hostwall's sets, and a rule added to
	// one of its chains, by nft; timed from nft's commit to the agent's
	// repairing commit, both as the kernel's events arrive here.
	set, chain, err := targets(b.ns)
	if err != nil {
		return err
	}
	var elems, rules []time.Duration
	repairs := strings.Count(readFile(b.log), `"repaired drift"`)
	for i := range b.runs {
		for _, d := range []struct {
			drift
			out *[]time.Duration
		}{
			{drift{ns: b.ns, set: set, addr: netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)})}, &elems},
			{drift{ns: b.ns, chain: chain, port: uint16(40000 + i)}, &rules},
		} {
			drain(b.byAgent)
			drain(b.byNft)
			if err := d.run(); err != nil {
				return err
			}
			t0, err := next(b.byNft, "nft's change", b.log)
			if err != nil {
				return err
			}
			t1, err := next(b.byAgent, "drift repair", b.log)
			if err != nil {
				return err
			}
			*d.out = append(*d.out, t1.Sub(t0))
			// The next drift once this repair is done, its verification
			// included (~0.1–0.2 s after the commit for a rule: the chains
			// read again). One landing during it is a drift of the repair's
			// own result, found by that verification: a full read.
			repairs++
			if err := waitLog(b.log, `"repaired drift"`, repairs, 30*time.Second); err != nil {
				return err
			}
		}
	}
	inOrder := msList(elems) + "; rules " + msList(rules)
	fmt.Printf("drift repaired under churn, %d each: set element p50 %d ms, rule p50 %d ms (elements %s)\n", b.runs,
		percentile(elems, 0.5).Milliseconds(), percentile(rules, 0.5).Milliseconds(), inOrder)

	// The same plan with the agent stopped: it reads the whole table.
	stop(agent)
	noAgent, err := b.timed(plan, max(3, b.runs/4), "")
	if err != nil {
		return err
	}
	cancel()
	n := <-writes
	fmt.Printf("no-op plan under churn, no agent: p50 %d ms (the whole table read); %d writes by the other program in all\n",
		percentile(noAgent, 0.5).Milliseconds(), n)
	return nil
}

// timed runs hostwall with args n times, each right after a change of the
// other program's (the next tick), and returns the durations sorted; each
// run's output must say want (unless empty).
func (b busy) timed(args []string, n int, want string) ([]time.Duration, error) {
	var out []time.Duration
	wantRE := regexp.MustCompile(regexp.QuoteMeta(want))
	for i := range n {
		gen0, err := b.generation()
		if err != nil {
			return nil, err
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if g, err := b.generation(); err != nil || g != gen0 {
				break
			}
			time.Sleep(2 * time.Millisecond) // polling for the other program's next change
		}
		t0 := time.Now()
		res, err := exec.Command(b.bin, args...).CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("hostwall %s (run %d): %v\n%s", args[0], i, err, res)
		}
		if want != "" && !wantRE.Match(res) {
			return nil, fmt.Errorf("hostwall %s (run %d) did not take the busy-host shortcut:\n%s", args[0], i, res)
		}
		out = append(out, d)
	}
	return sortedDurations(out), nil
}

// msList is the durations in milliseconds, in the order taken.
func msList(d []time.Duration) string {
	var b strings.Builder
	for i, x := range d {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprint(&b, x.Milliseconds())
	}
	return b.String() + " ms"
}

func sortedDurations(d []time.Duration) []time.Duration {
	percentile(d, 0) // sorts
	return d
}

// next waits for a commit, by hostwall (or nft).
func next(c chan time.Time, what, log string) (time.Time, error) {
	select {
	case t := <-c:
		return t, nil
	case <-time.After(30 * time.Second):
		return time.Time{}, fmt.Errorf("%s: no commit by hostwall within 30 s (agent log: %s)", what, log)
	}
}
