package main_test

import (
	"bytes"
	bin "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/state"
)

// bigConfig writes a configuration of about rules rules and a nets file of
// nets networks, with a marker policy allowing tcp port marker: two of
// them differ in the marker's chain alone, which is quick to look at.
func bigConfig(t *testing.T, rules, nets, marker int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("host_endpoint \"eth0\" { interface = \"eth0\" }\n")
	b.WriteString("network_set \"bl\" {\n  labels    = { list = \"block\" }\n  nets_file = \"bl.txt\"\n}\n")
	b.WriteString("policy \"block\" {\n  order = 1\n  ingress {\n    action = \"deny\"\n    source { selector = \"list == 'block'\" }\n  }\n}\n")
	fmt.Fprintf(&b, "policy \"marker\" {\n  order = 2\n  ingress {\n    action   = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n}\n", marker)
	for p := 0; p*100 < rules; p++ {
		fmt.Fprintf(&b, "policy \"p%03d\" {\n  order = %d\n", p, 10+p)
		for r := 0; r < 100; r++ {
			fmt.Fprintf(&b, "  ingress {\n    action   = \"allow\"\n    protocol = \"tcp\"\n    source { nets = [\"10.%d.%d.0/24\"] }\n    destination { ports = [%d] }\n  }\n", 100+p/250, p%250, 1000+r)
		}
		b.WriteString("}\n")
	}
	var bl strings.Builder
	for i := range nets { // every other address: each one an element of its own in the kernel
		fmt.Fprintf(&bl, "172.%d.%d.%d/32\n", 16+i>>15, i>>7&0xff, i<<1&0xff)
	}
	return writeConfig(t, map[string]string{"policy.hcl": b.String(), "bl.txt": bl.String()})
}

// markerOf is the port the marker policy allows in the kernel, 0 when it
// cannot be read. It asks the kernel for that chain's rules alone, through
// the netlink library (an oracle apart from hostwall's encoder and reader):
// nft lists the whole table, a second with 100,000 set elements.
func markerOf(ns string) int {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return 0
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return 0
	}
	rules, err := c.GetRules(&nftables.Table{Family: nftables.TableFamilyINet, Name: "hostwall"}, &nftables.Chain{Name: "pol/marker/in"})
	if err != nil {
		return 0
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if cmp, ok := e.(*expr.Cmp); ok && len(cmp.Data) == 2 {
				if port := int(bin.BigEndian.Uint16(cmp.Data)); port == 1111 || port == 2222 || port == 3333 {
					return port
				}
			}
		}
	}
	return 0
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestSessionDeath: the session applying a trial dies — SIGHUP (a dropped
// SSH connection), SIGTERM or SIGKILL — at a random moment of the whole
// apply of a large configuration with --confirm-timeout 4s. Every time, the
// previous ruleset comes back after the deadline (or the change never
// reached the kernel), and the current generation is the one the kernel
// holds: no trial is left unguarded. How late the rollback came is
// reported, not asserted: twenty workers on two loaded cores can starve a
// guard past any fixed bound, and only a rollback that never comes
// (settleBound) is a lockout. HOSTWALL_DEATH_RUNS (100),
// HOSTWALL_DEATH_NETS (20,000; the case is 100,000),
// HOSTWALL_DEATH_WORKERS (20, or 5 past 20,000 networks: runs at once) and
// HOSTWALL_DEATH_SEED (1) set the run.
func TestSessionDeath(t *testing.T) {
	runs, nets := envInt(t, "HOSTWALL_DEATH_RUNS", 100), envInt(t, "HOSTWALL_DEATH_NETS", 20_000)
	seed := uint64(envInt(t, "HOSTWALL_DEATH_SEED", 1))
	workers := 20
	if nets > 20_000 {
		workers = 5 // each apply takes a core for a while: more would only wait for one
	}
	workers = envInt(t, "HOSTWALL_DEATH_WORKERS", workers) // 2: one trial per core, as on a host
	const timeout = 4 * time.Second
	cfgA, cfgB := bigConfig(t, 5000, nets, 1111), bigConfig(t, 5000, nets, 2222)
	var tally deathTally
	var wg sync.WaitGroup
	for w := range workers {
		ns := nsWithEth0(t)
		wg.Go(func() { deathWorker(t, ns, w, workers, runs, seed, cfgA, cfgB, timeout, &tally) })
	}
	wg.Wait()
	passed, reached := tally.passed.Load(), tally.reached.Load()
	t.Logf("session death: %d of %d runs restored the previous ruleset with current matching the kernel (%d of them after the change reached the kernel; %d more than a second past the deadline, the latest %s)",
		passed, runs, reached, tally.late.Load(), time.Duration(tally.latest.Load()).Round(time.Millisecond))
	if int(reached) < runs/5 {
		t.Errorf("only %d of %d runs reached the kernel before the session died: the runs do not cover the apply", reached, runs)
	}
}

// deathTally counts the session death runs: those that ended as they
// must, those whose change had reached the kernel, those rolled back more
// than a second past the deadline, and the latest rollback (nanoseconds
// past the deadline).
type deathTally struct {
	passed, reached, late atomic.Int32
	latest                atomic.Int64
}

// settleBound is how long past a trial's deadline the previous ruleset
// may take to come back before the trial counts as left unguarded.
const settleBound = 30 * time.Second

// deathWorker runs the session death runs w, w+workers, … in namespace ns.
func deathWorker(t *testing.T, ns string, w, workers, runs int, seed uint64, cfgA, cfgB string, timeout time.Duration, tally *deathTally) {
	stateDir, runDir := t.TempDir(), t.TempDir() // a namespace's own, as each namespace needs
	testns.StopStragglers(t, runDir)
	env := []string{"HOSTWALL_STATE_DIR=" + stateDir, "HOSTWALL_RUN_DIR=" + runDir}
	args := func(cfg string, more ...string) []string {
		return append([]string{"apply", "--auto-approve", "-c", cfg, "--netns", ns, "--host-name", "srv"}, more...)
	}
	start := time.Now()
	if r := runHostwall(t, "", env, args(cfgA, "--confirm-timeout", "0")...); r.code != 0 {
		t.Errorf("worker %d: applying the first configuration: %s", w, r.stderr)
		return
	}
	window := 3 * time.Since(start) // the apply, and the guard's start, with room
	store := &state.Store{Dir: stateDir}
	trials := state.Trials{NS: namespace(t, ns), Store: store}
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	for i := w; i < runs; i += workers {
		sig := []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGKILL}[i%3]
		delay := time.Duration(rng.Int64N(int64(window)))
		ok, inKernel, late := sessionDies(t, ns, runDir, env, args(cfgB, "--confirm-timeout", timeout.String()), sig, delay, trials, store)
		if ok {
			tally.passed.Add(1)
		} else {
			t.Errorf("run %d (%s after %s) failed", i, sig, delay)
		}
		if inKernel {
			tally.reached.Add(1)
		}
		if late > time.Second {
			tally.late.Add(1)
			t.Logf("run %d (%s after %s): the previous ruleset came back %s past the deadline", i, sig, delay, late.Round(time.Millisecond))
		}
		for old := tally.latest.Load(); int64(late) > old && !tally.latest.CompareAndSwap(old, int64(late)); old = tally.latest.Load() {
		}
	}
	if r := runHostwall(t, "", env, "plan", "--refresh", "--detailed-exitcode", "-c", cfgA, "--netns", ns, "--host-name", "srv"); r.code != 0 {
		t.Errorf("worker %d: after the runs, the kernel does not hold the first configuration exactly:\n%s%s", w, r.stdout, r.stderr)
	}
}

// lastLine is the last line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// sessionDies runs one apply of a trial, kills its session with sig after
// delay, and checks the outcome: ok, whether the change had reached the
// kernel, and how long past the trial's deadline the previous ruleset
// came back.
func sessionDies(t *testing.T, ns, runDir string, env, args []string, sig syscall.Signal, delay time.Duration, trials state.Trials, store *state.Store) (ok, inKernel bool, late time.Duration) {
	t.Helper()
	before, _ := trials.LastOutcome() // an earlier run's: not this one's deadline
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(baseEnv(), "NO_COLOR=1"), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay) // a random moment of the apply
	cmd.Process.Signal(sig)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() && !strings.Contains(stderr.String(), "Apply cancelled") {
			t.Logf("%s after %s: the apply failed (exit %d): %s", sig, delay, ee.ExitCode(), lastLine(stderr.String()))
			if strings.Contains(stderr.String(), "context canceled") {
				t.Errorf("%s after %s: the signal is told as an error, not as the apply cancelled: %s", sig, delay, lastLine(stderr.String()))
			}
		}
	}
	died := time.Now()
	deadline := died
	if tr, _ := trials.Read(); tr != nil {
		deadline = tr.Deadline
	} else if o, _ := trials.LastOutcome(); o != nil && (before == nil || !o.Deadline.Equal(before.Deadline)) {
		deadline = o.Deadline // this run's trial, ended already
	}
	for {
		marker := markerOf(ns)
		inKernel = inKernel || marker == 2222
		cur, err := store.Current()
		if marker == 1111 && cur == 1 && err == nil {
			break
		}
		if time.Now().After(deadline.Add(settleBound)) {
			guardLog, _ := os.ReadFile(filepath.Join(runDir, "guard.log"))
			t.Errorf("%s after %s: %s past the deadline (%s), the kernel's marker is %d and the current generation %d (%v); want 1111 and 1\napply:\n%s\nguard log:\n%s",
				sig, delay, settleBound, deadline.Format("15:04:05.000"), marker, cur, err, stderr.String(), guardLog)
			return false, inKernel, 0
		}
		time.Sleep(20 * time.Millisecond) // polling the kernel with a deadline
	}
	return true, inKernel, time.Since(deadline)
}

// tmpfs mounts a 64 KiB tmpfs of its own on a new directory and unmounts
// it when the test ends.
func tmpfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	testns.Run(t, "mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill fills the file system of dir until it has no space left.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			f.Sync()
			return
		}
	}
}

// TestStateDirFull: with the state directory on a full file system, or
// mounted read-only, an apply — on trial or not — fails with a clear error
// before the kernel sees the change, and leaves no trial behind.
func TestStateDirFull(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		trial      string
		spoil      func(t *testing.T, dir string)
	}{
		{"full", "no space left on device", "0", fill},
		{"full, on trial", "no space left on device", "5s", fill},
		{"read-only", "read-only file system", "0", func(t *testing.T, dir string) { testns.Run(t, "mount", "-o", "remount,ro", dir) }},
		{"read-only, on trial", "read-only file system", "5s", func(t *testing.T, dir string) { testns.Run(t, "mount", "-o", "remount,ro", dir) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := nsWithEth0(t)
			stateDir := tmpfs(t)
			env := []string{"HOSTWALL_STATE_DIR=" + stateDir}
			cfgA, cfgB := bigConfig(t, 0, 10, 1111), bigConfig(t, 0, 10, 2222)
			apply := func(cfg, trial string) result {
				return hostwallEnv(t, "", env, "apply", "--auto-approve", "--confirm-timeout", trial, "-c", cfg, "--netns", ns, "--host-name", "srv")
			}
			if r := apply(cfgA, "0"); r.code != 0 {
				t.Fatalf("first apply: %s", r.stderr)
			}
			tc.spoil(t, stateDir)
			r := apply(cfgB, tc.trial)
			if r.code != 1 || !strings.Contains(r.stderr, "recording generation") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("apply with the state directory %s: exit %d, want 1 and an error naming %q:\n%s", tc.name, r.code, tc.want, r.stderr)
			}
			if m := markerOf(ns); m != 1111 {
				t.Errorf("the kernel's marker is %d: the change reached the kernel", m)
			}
			if tr := trialOf(t, ns); tr != nil {
				t.Errorf("a trial was left behind: %+v", tr)
			}
			if r := hostwallEnv(t, "", env, "plan", "--refresh", "--detailed-exitcode", "-c", cfgA, "--netns", ns, "--host-name", "srv"); r.code != 0 {
				t.Errorf("the kernel does not hold the first configuration exactly:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestStateDirNearlyFull: with any amount of room left in the state
// directory, an apply either records what it changed or changes nothing:
// the kernel never holds a generation that is not recorded current (the
// record that it is current is written ahead of the change).
func TestStateDirNearlyFull(t *testing.T) {
	for pages := 0; pages <= 10; pages++ {
		t.Run(fmt.Sprintf("free pages %d", pages), func(t *testing.T) {
			ns := nsWithEth0(t)
			stateDir := tmpfs(t)
			env := []string{"HOSTWALL_STATE_DIR=" + stateDir}
			cfgA, cfgB := bigConfig(t, 0, 10, 1111), bigConfig(t, 0, 10, 2222)
			apply := func(cfg string) result {
				return runHostwall(t, "", env, "apply", "--auto-approve", "--confirm-timeout", "0", "-c", cfg, "--netns", ns, "--host-name", "srv")
			}
			if r := apply(cfgA); r.code != 0 {
				t.Fatalf("first apply: %s", r.stderr)
			}
			freeLeft(t, stateDir, pages)
			r := apply(cfgB)
			cur, err := (&state.Store{Dir: stateDir}).Current()
			switch m := markerOf(ns); {
			case r.code == 0 && (m != 2222 || cur != 2):
				t.Errorf("apply succeeded, yet the kernel's marker is %d and the current generation %d (%v)", m, cur, err)
			case r.code != 0 && (m != 1111 || cur != 1):
				t.Errorf("apply failed (%s), yet the kernel's marker is %d and the current generation %d (%v)", strings.TrimSpace(r.stderr), m, cur, err)
			}
		})
	}
}

// TestAgentStateDirFull: the agent with a full state directory does not
// apply a change (the running ruleset stays, and status says why), never
// takes its own records for drift, and applies the change once there is
// room again.
func TestAgentStateDirFull(t *testing.T) {
	ns := nsWithEth0(t)
	stateDir := tmpfs(t)
	dir := bigConfig(t, 0, 10, 1111)
	a := startAgent(t, ns, dir, "--state-dir", stateDir, "--resync", "300ms", "--debounce", "50ms")
	a.expect(t, "READY=1")
	fill(t, stateDir)
	policy, err := os.ReadFile(filepath.Join(dir, "policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(strings.Replace(string(policy), "1111", "2222", 1)), 0o644)
	a.logged(t, 5*time.Second, "not applied")
	failedAt := time.Now()
	status := func() (s engine.Status) {
		t.Helper()
		r := hostwall(t, "", "status", "--json", "--netns", ns)
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
		}
		return s
	}
	if s := status(); s.LastApply == nil || s.LastApply.Result != "failed" || !strings.Contains(s.LastApply.Error, "no space left") {
		t.Errorf("status after the failed apply: %+v", s.LastApply)
	}
	// Two verifications later, nothing was "repaired": the kernel still
	// holds the running ruleset, which is the current generation's.
	await(t, 10*time.Second, "two verifications after the failure", func() bool {
		return status().LastVerified.After(failedAt.Add(700 * time.Millisecond))
	})
	if s := status(); s.DriftRepairs != 0 || markerOf(ns) != 1111 || strings.Contains(a.log.String(), "repaired drift") {
		t.Errorf("after the failed apply: %d drift repairs, marker %d; want none and 1111\nagent log:\n%s", s.DriftRepairs, markerOf(ns), a.log)
	}
	os.Remove(filepath.Join(stateDir, "filler"))
	if r := hostwall(t, "", "reload", "--netns", ns); r.code != 0 || markerOf(ns) != 2222 {
		t.Errorf("reload once there is room: exit %d, marker %d\n%s%s", r.code, markerOf(ns), r.stdout, r.stderr)
	}
	if r := hostwall(t, "", "plan", "--refresh", "--detailed-exitcode", "-c", dir, "--netns", ns, "--host-name", "srv", "--state-dir", stateDir); r.code != 0 {
		t.Errorf("after the reload, plan --refresh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestOneLockPerNamespace: the namespace's lock and its agent are the
// namespace's, whatever run directory each hostwall is given: a second
// agent with another run directory is refused, naming the first's pid and
// run directory; applies from many run directories at once leave the
// kernel holding the current generation exactly.
func TestOneLockPerNamespace(t *testing.T) {
	ns := nsWithEth0(t)
	cfgA, cfgB := bigConfig(t, 0, 10, 1111), bigConfig(t, 0, 10, 2222)
	runA, runB := t.TempDir(), t.TempDir()
	testns.StopStragglers(t, runA)
	a := startAgent(t, ns, cfgA, "--run-dir", runA)
	a.expect(t, "READY=1")
	second := startAgent(t, ns, cfgB, "--run-dir", runB)
	err := second.cmd.Wait()
	if want := fmt.Sprintf("pid %d", a.cmd.Process.Pid); err == nil || !strings.Contains(second.log.String(), "another agent is running on this network namespace") ||
		!strings.Contains(second.log.String(), want) || !strings.Contains(second.log.String(), runA) {
		t.Errorf("a second agent with another run directory: %v\n%s", err, second.log)
	}
	if r := hostwall(t, "", "status", "--netns", ns, "--run-dir", runB); !strings.Contains(r.stdout, fmt.Sprintf("Agent: running (pid %d)", a.cmd.Process.Pid)) {
		t.Errorf("status from another run directory does not find the agent:\n%s%s", r.stdout, r.stderr)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()

	const writers = 6
	done := make(chan result, writers)
	for i := range writers {
		go func() {
			cfg := []string{cfgA, cfgB}[i%2]
			done <- runHostwall(t, "", nil, "apply", "--auto-approve", "--confirm-timeout", "0", "--lock-timeout", "1m",
				"-c", cfg, "--netns", ns, "--host-name", "srv", "--run-dir", t.TempDir())
		}()
	}
	for range writers {
		if r := <-done; r.code != 0 {
			t.Errorf("an apply from its own run directory: exit %d\n%s", r.code, r.stderr)
		}
	}
	var gens struct {
		Current     int
		Generations []struct {
			Number    int
			ConfigDir string `json:"config_dir"`
		}
	}
	if err := json.Unmarshal([]byte(hostwall(t, "", "generations", "--json").stdout), &gens); err != nil {
		t.Fatal(err)
	}
	for _, g := range gens.Generations {
		if g.Number == gens.Current {
			if r := hostwall(t, "", "plan", "--refresh", "--detailed-exitcode", "-c", g.ConfigDir, "--netns", ns, "--host-name", "srv"); r.code != 0 {
				t.Errorf("the kernel does not hold the current generation %d exactly:\n%s%s", g.Number, r.stdout, r.stderr)
			}
			return
		}
	}
	t.Errorf("no current generation among %+v", gens)
}

// TestDamagedGeneration: a generation whose file was emptied, or whose
// record was cut short, is named as damaged, never applied (--force or
// not), and listed as such beside the others.
func TestDamagedGeneration(t *testing.T) {
	ns := nsWithEth0(t)
	stateDir := strings.TrimPrefix(dirsOf(t)[0], "HOSTWALL_STATE_DIR=")
	for _, marker := range []int{1111, 2222, 3333} {
		if r := hostwall(t, "", "apply", "--auto-approve", "-c", bigConfig(t, 0, 10, marker), "--netns", ns, "--host-name", "srv"); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	// Its policy file is its own (a file unchanged from one generation to
	// the next is one inode, linked: damage to it shows in each).
	copy1 := filepath.Join(stateDir, "generations", "000001", "files", "000-policy.hcl")
	if err := os.WriteFile(copy1, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, force := range []string{"--force=false", "--force"} {
		r := hostwall(t, "", "rollback", "1", "--auto-approve", force, "--netns", ns)
		if r.code != 1 || !strings.Contains(r.stderr, "generation 1 is damaged") || !strings.Contains(r.stderr, "policy.hcl does not match its recorded SHA-256") {
			t.Errorf("rollback 1 %s: exit %d\n%s%s", force, r.code, r.stdout, r.stderr)
		}
	}
	if m := markerOf(ns); m != 3333 {
		t.Errorf("a damaged generation was applied: marker %d", m)
	}
	meta2 := filepath.Join(stateDir, "generations", "000002", "meta.json")
	data, _ := os.ReadFile(meta2)
	os.WriteFile(meta2, data[:len(data)/3], 0o600)
	r := hostwall(t, "", "generations")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\s+1\s+DAMAGED: its copy of file \S*policy.hcl`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\s+2\s+DAMAGED: its record meta.json does not read`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\*\s+3\s+\d{4}-`).MatchString(r.stdout) {
		t.Errorf("generations with 1 and 2 damaged: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", "rollback", "--auto-approve", "--netns", ns); r.code != 1 || !strings.Contains(r.stderr, "no intact generation before the current one") {
		t.Errorf("rollback to the previous generation, both damaged: exit %d\n%s", r.code, r.stderr)
	}
}

// TestConfirmWakesTheGuard: confirm ends the trial and its guard exits at
// once, not at the old deadline.
func TestConfirmWakesTheGuard(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "10m")
	tr := trialOf(t, l.srv)
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 0 {
		t.Fatalf("confirm: %s", r.stderr)
	}
	await(t, 3*time.Second, "the guard exits after the confirmation", guardGone(t, tr))
	if !l.holds(t, l.cfgB) {
		t.Error("the confirmed generation is not in force")
	}
}

// TestConfirmRacesTheRollback: confirms sent around the deadline, while the
// guard rolls back, exit 0 (the trial stays: confirmed in time) or 3 (it
// was rolled back), never anything else, and agree with the kernel; every
// confirm after the rollback exits 3.
func TestConfirmRacesTheRollback(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	for round := range 4 {
		l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "1s")
		tr := trialOf(t, l.srv)
		time.Sleep(time.Until(tr.Deadline) - 30*time.Millisecond + time.Duration(round)*20*time.Millisecond) // around the deadline
		codes := make(chan int, 3)
		for range 3 {
			go func() { codes <- runHostwall(t, "", nil, "confirm", "--netns", l.srv).code }()
		}
		count := map[int]int{}
		for range 3 {
			count[<-codes]++
		}
		confirmed := count[0] > 0
		if confirmed && (count[0] != 1 || count[1] != 2) || !confirmed && count[3] != 3 {
			t.Errorf("round %d: confirms exited %v; want one 0 and two 1 (no trial left), or three 3", round, count)
		}
		await(t, 3*time.Second, "the trial is over", func() bool { return trialOf(t, l.srv) == nil })
		if r := hostwall(t, "", "confirm", "--netns", l.srv); confirmed != (r.code == 1) || !confirmed && r.code != 3 {
			t.Errorf("round %d: confirmed %v, then a confirm exits %d: %s", round, confirmed, r.code, r.stderr)
		}
		if confirmed != l.holds(t, l.cfgB) {
			t.Errorf("round %d: confirmed %v, but the kernel holds the trial's configuration: %v", round, confirmed, !confirmed)
		}
		if confirmed {
			l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
		}
	}
}

// TestRollbackIsAnApply: rollback plans and shows, asks, runs the lockout
// check, and takes --confirm-timeout like apply.
func TestRollbackIsAnApply(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "0") // generation 1: no way in over SSH
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")            // generation 2
	r := hostwall(t, "no\n", "rollback", "1", "--force", "--netns", l.srv)
	if r.code != 1 || !strings.Contains(r.stdout, "Rolling back to generation 1") || !strings.Contains(r.stdout, "Plan:") ||
		!strings.Contains(r.stdout, "Apply cancelled") || !l.holds(t, l.cfgA) {
		t.Errorf("rollback answered no: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ssh := []string{"SSH_CONNECTION=10.201.1.1 50022 10.201.1.2 22"}
	if r := hostwallEnv(t, "", ssh, "rollback", "1", "--auto-approve", "--netns", l.srv); r.code != 1 || !strings.Contains(r.stderr, "REFUSED") || !l.holds(t, l.cfgA) {
		t.Errorf("rollback to a generation that drops the operator's connection: exit %d\n%s", r.code, r.stderr)
	}
	start := time.Now()
	r = hostwall(t, "", "rollback", "1", "--auto-approve", "--force", "--confirm-timeout", "1s", "--wait", "--netns", l.srv)
	if r.code != 3 || !strings.Contains(r.stdout, "is on TRIAL") || !strings.Contains(r.stderr, "ROLLED BACK") {
		t.Errorf("rollback on trial, unconfirmed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !l.holds(t, l.cfgA) || time.Since(start) > 5*time.Second {
		t.Errorf("after the rollback's trial ended (%s), the kernel does not hold generation 2", time.Since(start))
	}
	var st engine.Status
	json.Unmarshal([]byte(hostwall(t, "", "status", "--json", "--netns", l.srv).stdout), &st)
	if st.Generation != 2 {
		t.Errorf("current generation %d after the rolled-back rollback, want 2", st.Generation)
	}
}

// TestRollbackUsesRecordedLimits: a generation is compiled again under the
// limits it was applied with, so one the apply admitted can be rolled back
// to whatever limits the rollback is given.
func TestRollbackUsesRecordedLimits(t *testing.T) {
	ns := nsWithEth0(t)
	for _, marker := range []int{1111, 2222} {
		if r := hostwall(t, "", "apply", "--auto-approve", "-c", bigConfig(t, 0, 10, marker), "--netns", ns, "--host-name", "srv"); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	if r := hostwall(t, "", "apply", "--auto-approve", "--max-rules", "1", "-c", bigConfig(t, 0, 10, 1111), "--netns", ns, "--host-name", "srv"); r.code != 1 ||
		!strings.Contains(r.stderr, "Configuration too large") {
		t.Fatalf("apply above --max-rules: exit %d %s", r.code, r.stderr)
	}
	if r := hostwall(t, "", "rollback", "1", "--auto-approve", "--max-rules", "1", "--netns", ns); r.code != 0 || markerOf(ns) != 1111 {
		t.Errorf("rollback under a lower --max-rules: exit %d, marker %d\n%s", r.code, markerOf(ns), r.stderr)
	}
}

// TestAgentLockoutCheck: the agent refuses files that close every way in
// over SSH, as apply does, unless the configuration opts out.
func TestAgentLockoutCheck(t *testing.T) {
	ns := nsWithEth0(t)
	closed := "host_endpoint \"eth0\" { interface = \"eth0\" }\nfailsafe {\n  inbound  = []\n  outbound = []\n}\npolicy \"p\" {\n  ingress { action = \"deny\" }\n}\n"
	dir := writeConfig(t, map[string]string{"p.hcl": closed})
	a := startAgent(t, ns, dir, "--debounce", "50ms")
	a.expect(t, "READY=1")
	a.logged(t, 5*time.Second, "REFUSED: failsafe does not keep tcp:22 open")
	if out := testns.NFT(t, ns, "list", "tables"); strings.Contains(out, "hostwall") {
		t.Fatalf("the agent applied files that close every way in:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "p.hcl"), []byte(closed+"settings {\n  lockout_check = false\n}\n"), 0o644)
	await(t, 5*time.Second, "the agent applies the files once they opt out", func() bool {
		return strings.Contains(testns.NFT(t, ns, "list", "tables"), "hostwall")
	})
	if r := hostwall(t, "", "plan", "--refresh", "--detailed-exitcode", "-c", dir, "--netns", ns, "--host-name", "srv"); r.code != 0 {
		t.Errorf("plan --refresh after the agent's apply: exit %d\n%s", r.code, r.stdout)
	}
}

// TestAgentRecordsVerified: after the agent's apply, the CLI's next plan
// takes the shortcut the agent's verified record allows.
func TestAgentRecordsVerified(t *testing.T) {
	ns := nsWithEth0(t)
	dir := writeConfig(t, map[string]string{"p.hcl": policyFor(80)})
	a := startAgent(t, ns, dir)
	a.expect(t, "READY=1")
	r := hostwall(t, "", "plan", "-c", dir, "--netns", ns, "--host-name", "srv")
	if r.code != 0 || !strings.Contains(r.stdout, "No changes") || !strings.Contains(r.stdout, "From hostwall's last full check") {
		t.Errorf("plan after the agent's apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestGuardStopped: a guard told to stop (SIGTERM, as when its session's
// scope is stopped) rolls its trial back at once.
func TestGuardStopped(t *testing.T) {
	l := newSSHLab(t)
	l.mustApply(t, l.cfgA, "--confirm-timeout", "0")
	l.mustApply(t, l.cfgB, "--force", "--confirm-timeout", "10m")
	tr := trialOf(t, l.srv)
	syscall.Kill(guardPID(t, tr), syscall.SIGTERM)
	await(t, 5*time.Second, "the previous generation is back", func() bool { return l.holds(t, l.cfgA) })
	await(t, 5*time.Second, "the guard exits", guardGone(t, tr))
	if r := hostwall(t, "", "confirm", "--netns", l.srv); r.code != 3 {
		t.Errorf("confirm after the stopped guard rolled back: exit %d %s", r.code, r.stderr)
	}
}

// freeLeft fills dir's file system until only pages free pages are left.
func freeLeft(t *testing.T, dir string, pages int) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	fill := int64(st.Bavail)*int64(st.Bsize) - int64(pages)*int64(st.Bsize)
	if fill <= 0 {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, fill), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
}

// TestStateDirFillsAroundATrial: the state directory is nearly full
// before a trial's apply — so that any of the change's writes may be the
// one that fails — or fills up during the trial. Whatever the apply said,
// the kernel holds the previous configuration once the deadline is past;
// once there is room, the next command records it current and the trial
// ended (status waits for a guard that is still recording its rollback).
func TestStateDirFillsAroundATrial(t *testing.T) {
	for pages := -1; pages <= 10; pages++ { // -1: filled during the trial
		t.Run(fmt.Sprintf("free pages %d", pages), func(t *testing.T) {
			ns := nsWithEth0(t)
			stateDir := tmpfs(t)
			env := []string{"HOSTWALL_STATE_DIR=" + stateDir}
			cfgA, cfgB := bigConfig(t, 0, 10, 1111), bigConfig(t, 0, 10, 2222)
			args := func(cfg, trial string) []string {
				return []string{"apply", "--auto-approve", "--force", "--confirm-timeout", trial, "-c", cfg, "--netns", ns, "--host-name", "srv"}
			}
			if r := hostwallEnv(t, "", env, args(cfgA, "0")...); r.code != 0 {
				t.Fatal(r.stderr)
			}
			if pages >= 0 {
				freeLeft(t, stateDir, pages)
			}
			r := runHostwall(t, "", env, args(cfgB, "2s")...)
			deadline := time.Now().Add(2 * time.Second)
			t.Logf("apply with %d pages free: exit %d %s", pages, r.code, strings.TrimSpace(r.stderr))
			store := &state.Store{Dir: stateDir}
			if pages < 0 {
				fill(t, stateDir)
			}
			await(t, time.Until(deadline.Add(guardSlack)), fmt.Sprintf("the previous configuration is back (apply exited %d: %s)", r.code, r.stderr),
				func() bool { return markerOf(ns) == 1111 })
			os.Remove(filepath.Join(stateDir, "filler"))
			if r := runHostwall(t, "", env, "status", "--netns", ns); r.code != 0 {
				t.Errorf("status once there is room: %s", r.stderr)
			}
			tr, err := state.Trials{NS: namespace(t, ns), Store: store}.Read()
			if cur, _ := store.Current(); cur != 1 || tr != nil || err != nil || markerOf(ns) != 1111 {
				t.Errorf("after status: current %d, trial %+v (%v), marker %d; want 1, none, 1111", cur, tr, err, markerOf(ns))
			}
		})
	}
}
