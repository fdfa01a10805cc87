package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/nft/nfttest"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// harness is an engine's world for a test: its own configuration, state
// and run directories, a namespace directory of its own standing in for
// /run/hostwall/netns/<inode>, and an in-memory kernel.
type harness struct {
	t                     *testing.T
	cfg, stateDir, runDir string
	ns                    state.Namespace
	kernel                *hooked
}

// hooked is the fake kernel with a hook before and after each commit.
type hooked struct {
	*nfttest.Fake
	before, after func()
}

func (k *hooked) Apply(ctx context.Context, p *planner.Plan) (uint32, error) {
	if k.before != nil {
		k.before()
	}
	n, err := k.Fake.Apply(ctx, p)
	if k.after != nil {
		k.after()
	}
	return n, err
}

const policyA = `
host_endpoint "eth0" { interface = "eth0" }
policy "web" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [80] }
  }
}
`

func newHarness(t *testing.T) *harness {
	t.Helper()
	root := t.TempDir()
	h := &harness{t: t, cfg: filepath.Join(root, "cfg"), stateDir: filepath.Join(root, "state"), runDir: filepath.Join(root, "run"),
		ns: state.Namespace{Name: "test", Dir: filepath.Join(root, "netns", "1"), Cookie: 42}, kernel: &hooked{Fake: nfttest.New()}}
	if err := os.Mkdir(h.cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	h.write(policyA)
	return h
}

// write makes the configuration one policy file holding policy.
func (h *harness) write(policy string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.cfg, "policy.hcl"), []byte(policy), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// engine is a new engine on the harness, as a new process would make it.
func (h *harness) engine() *Engine {
	e := New(Options{ConfigDir: h.cfg, StateDir: h.stateDir, RunDir: h.runDir, NetNS: "test", HostName: "srv", Kernel: h.kernel})
	e.openNS = func() (state.Namespace, error) { return h.ns, nil }
	return e
}

func (h *harness) store() *state.Store { return &state.Store{Dir: h.stateDir} }

func (h *harness) current() int {
	h.t.Helper()
	n, err := h.store().Current()
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) numbers() []int {
	h.t.Helper()
	nums, err := h.store().Numbers()
	if err != nil {
		h.t.Fatal(err)
	}
	return nums
}

func (h *harness) intent() *state.Intent {
	h.t.Helper()
	in, err := h.store().ReadIntent(h.ns)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

func (h *harness) trial() *state.Trial {
	h.t.Helper()
	t, err := state.Trials{NS: h.ns, Store: h.store()}.Read()
	if err != nil {
		h.t.Fatal(err)
	}
	return t
}

// holds reports whether the kernel holds exactly what the files compile to.
func (h *harness) holds() bool {
	h.t.Helper()
	l, err := h.engine().Load()
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = Verify(context.Background(), h.kernel, l.Table)
	return err == nil
}

// armed is an Arm that records the trial it armed and names this process
// as its guard.
func armed(into **state.Trial) func(context.Context, *state.Trial) (int, error) {
	return func(_ context.Context, t *state.Trial) (int, error) {
		*into = t
		return os.Getpid(), nil
	}
}

// TestWriteAheadOrder: when the first message reaches the kernel, the
// change's generation is in place but not current, its intent is durable,
// and for a trial the trial is recorded with its armed guard; once the
// kernel answered, the generation is current and the intent gone.
func TestWriteAheadOrder(t *testing.T) {
	for _, trial := range []time.Duration{0, time.Minute} {
		h := newHarness(t)
		if _, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true}); err != nil {
			t.Fatal(err)
		}
		h.write(strings.Replace(policyA, "80", "81", 1))
		var guarded *state.Trial
		checked := false
		h.kernel.before = func() {
			checked = true
			if nums := h.numbers(); len(nums) != 2 || nums[1] != 2 {
				t.Errorf("trial %v: at the commit, generations %v; want 2 in place", trial, nums)
			}
			if cur := h.current(); cur != 1 {
				t.Errorf("trial %v: at the commit, current is %d; want 1 until the kernel answers", trial, cur)
			}
			if in := h.intent(); in == nil || in.Generation != 2 || in.Previous != 1 || !in.New {
				t.Errorf("trial %v: at the commit, intent %+v; want generation 2 over 1, new", trial, in)
			}
			if tr := h.trial(); trial > 0 && (guarded == nil || tr == nil || tr.Generation != 2 || tr.GuardPID != os.Getpid()) {
				t.Errorf("trial %v: at the commit, guard armed for %+v, trial recorded %+v", trial, guarded, tr)
			}
		}
		res, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true, Trial: trial, Arm: armed(&guarded)})
		if err != nil || !checked {
			t.Fatalf("trial %v: %v (kernel reached: %v)", trial, err, checked)
		}
		if h.current() != 2 || h.intent() != nil || res.Generation != 2 || (trial > 0) != (res.Trial != nil) {
			t.Errorf("trial %v: after the commit current %d, intent %+v, result %+v", trial, h.current(), h.intent(), res)
		}
	}
}

// TestNothingAppliedWithoutRecords: a state directory that cannot take the
// generation — with or without a trial — stops the change before the
// kernel sees anything, and leaves nothing to roll back.
func TestNothingAppliedWithoutRecords(t *testing.T) {
	for _, trial := range []time.Duration{0, time.Minute} {
		h := newHarness(t)
		if _, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true}); err != nil {
			t.Fatal(err)
		}
		// Generations cannot be written any more (as on a full or
		// read-only file system; the end-to-end tests use those).
		gens := filepath.Join(h.stateDir, "generations")
		if err := os.Rename(gens, gens+".away"); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(gens, nil, 0o600)
		h.write(strings.Replace(policyA, "80", "81", 1))
		batches := len(h.kernel.Applied)
		var guarded *state.Trial
		_, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true, Trial: trial, Arm: armed(&guarded)})
		if err == nil || !strings.Contains(err.Error(), "recording generation") {
			t.Errorf("trial %v: %v, want a failure recording the generation", trial, err)
		}
		if len(h.kernel.Applied) != batches || guarded != nil || h.trial() != nil || h.intent() != nil {
			t.Errorf("trial %v: %d batches reached the kernel, guard %+v, trial %+v, intent %+v; want none",
				trial, len(h.kernel.Applied)-batches, guarded, h.trial(), h.intent())
		}
	}
}

// apply runs an apply on a goroutine of its own, which the kernel's hooks
// may end with runtime.Goexit as a process dies; it reports whether the
// apply returned.
func (h *harness) applyDying(req ApplyRequest) (returned bool) {
	done := make(chan bool, 1)
	go func() {
		finished := false
		defer func() { done <- finished }()
		h.engine().Apply(context.Background(), req)
		finished = true
	}()
	return <-done
}

// TestDeathSettled: a process dying after its batch went in, or before,
// leaves an intent; the next holder of the lock makes current what the
// kernel holds, removes a generation that never went in, and ends a trial
// whose change never went in.
func TestDeathSettled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed bool
		trial     time.Duration
	}{
		{"after the commit", true, 0},
		{"before the commit", false, 0},
		{"after the commit, on trial", true, time.Minute},
		{"before the commit, on trial", false, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if _, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true}); err != nil {
				t.Fatal(err)
			}
			h.write(strings.Replace(policyA, "80", "81", 1))
			if tc.committed {
				h.kernel.after = runtime.Goexit
			} else {
				h.kernel.before = runtime.Goexit
			}
			var guarded *state.Trial
			if h.applyDying(ApplyRequest{Explicit: true, Trial: tc.trial, Arm: armed(&guarded)}) {
				t.Fatal("the apply returned; it was to die")
			}
			h.kernel.before, h.kernel.after = nil, nil
			if in := h.intent(); in == nil || h.current() != 1 {
				t.Fatalf("after the death: intent %+v, current %d; want an intent, current 1", in, h.current())
			}
			s, err := h.engine().Status(context.Background()) // settles nothing: no lock taken
			if err != nil || s.Interrupted == nil {
				t.Errorf("status after the death: %+v, %v; want the interrupted change shown", s, err)
			}
			if _, err := h.engine().Repair(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			wantCur, wantNums := 1, []int{1}
			if tc.committed {
				wantCur, wantNums = 2, []int{1, 2}
			}
			if h.current() != wantCur || h.intent() != nil || !equalInts(h.numbers(), wantNums) {
				t.Errorf("settled: current %d, intent %+v, generations %v; want current %d, no intent, %v",
					h.current(), h.intent(), h.numbers(), wantCur, wantNums)
			}
			if tc.committed != h.holds() {
				t.Errorf("the kernel holds the files: %v; want %v", !tc.committed, tc.committed)
			}
			tr := h.trial()
			if tc.trial > 0 && tc.committed == (tr == nil) {
				t.Errorf("trial after settling: %+v; want it pending only if the change went in", tr)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCancellation: a request cancelled before its intent changes nothing
// and leaves no generation behind; cancelled once its trial's guard is
// armed, it goes through to its recorded outcome.
func TestCancellation(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Approve: func(context.Context) (bool, error) { cancel(); return true, nil }})
	if !errors.Is(err, ErrCancelled) || len(h.kernel.Applied) != 0 || len(h.numbers()) != 0 {
		t.Fatalf("cancelled at approval: %v, %d batches, generations %v; want nothing", err, len(h.kernel.Applied), h.numbers())
	}
	if left, _ := filepath.Glob(filepath.Join(h.stateDir, "generations", ".*")); len(left) != 0 {
		t.Errorf("a cancelled apply left %v", left)
	}
	ctx, cancel = context.WithCancel(context.Background())
	arm := func(context.Context, *state.Trial) (int, error) { cancel(); return os.Getpid(), nil }
	res, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Trial: time.Minute, Arm: arm})
	if err != nil || res.Trial == nil || h.current() != 1 || !h.holds() {
		t.Errorf("cancelled once the guard was armed: %+v, %v, current %d; want the change applied on trial", res, err, h.current())
	}
}

// TestHeldDuringTrial: while a trial runs, an operator's change is refused
// and the agent's is held back; the files of a rolled-back trial are held
// back from the agent until an operator applies them.
func TestHeldDuringTrial(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	h.write(strings.Replace(policyA, "80", "81", 1))
	var guarded *state.Trial
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Trial: time.Minute, Arm: armed(&guarded)}); err != nil {
		t.Fatal(err)
	}
	h.write(strings.Replace(policyA, "80", "82", 1))
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err == nil || !strings.Contains(err.Error(), "on trial") {
		t.Errorf("an operator's apply during a trial: %v, want a refusal", err)
	}
	if res, err := h.engine().Apply(ctx, ApplyRequest{}); err != nil || !strings.Contains(res.Held, "on trial") {
		t.Errorf("the agent's apply during a trial: %+v, %v; want it held", res, err)
	}
	// The trial expires: generation 1 comes back; the trial's files are held.
	h.write(strings.Replace(policyA, "80", "81", 1))
	tr := h.trial()
	if _, _, err := h.engine().expire(ctx, tr, restorePoint(t, h, 1), nil, ""); err != nil {
		t.Fatal(err)
	}
	if h.current() != 1 || h.holds() {
		t.Fatalf("after the rollback: current %d, kernel holds the trial's files %v", h.current(), h.holds())
	}
	if res, err := h.engine().Apply(ctx, ApplyRequest{}); err != nil || !strings.Contains(res.Held, "rolled back") || h.holds() {
		t.Errorf("the agent's apply of the rolled-back files: %+v, %v; want it held", res, err)
	}
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil || !h.holds() {
		t.Errorf("an operator's apply of the rolled-back files: %v, holds %v", err, h.holds())
	}
}

func restorePoint(t *testing.T, h *harness, n int) rollbackPoint {
	t.Helper()
	_, tbl, err := h.engine().generationTable(h.engine().store, n, false)
	if err != nil {
		t.Fatal(err)
	}
	return rollbackPoint{gen: n, table: tbl}
}

// TestDamagedNeverApplied: a generation whose file was changed on disk is
// refused by rollback, --force or not, and by a repair; the kernel keeps
// what it holds.
func TestDamagedNeverApplied(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, port := range []string{"80", "81"} {
		h.write(strings.Replace(policyA, "80", port, 1))
		if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
			t.Fatal(err)
		}
	}
	copyOf := filepath.Join(h.stateDir, "generations", "000001", "files", "000-policy.hcl")
	if err := os.WriteFile(copyOf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	applied := len(h.kernel.Applied)
	one := 1
	for _, force := range []bool{false, true} {
		_, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Rollback: &one, Force: force})
		var d *state.DamagedError
		if !errors.As(err, &d) || !strings.Contains(err.Error(), "policy.hcl") {
			t.Errorf("rollback to a damaged generation (force %v): %v, want it named as damaged", force, err)
		}
	}
	if len(h.kernel.Applied) != applied || h.current() != 2 {
		t.Errorf("a damaged generation reached the kernel (%d batches) or became current (%d)", len(h.kernel.Applied)-applied, h.current())
	}
	if prev, err := h.engine().Previous(); err == nil {
		t.Errorf("the default rollback target is %d, the damaged generation; want none", prev)
	}
}

// TestStaleRetried: another writer commits between plan and batch: the
// batch is refused whole, planned again and applied, and the records name
// the kernel's state after it.
func TestStaleRetried(t *testing.T) {
	h := newHarness(t)
	bumped := false
	h.kernel.BeforeApply = func() {
		if !bumped {
			bumped = true
			h.kernel.Bump()
		}
	}
	res, err := h.engine().Apply(context.Background(), ApplyRequest{Explicit: true})
	if err != nil || !bumped || len(h.kernel.Applied) != 2 || res.Generation != 1 || !h.holds() {
		t.Errorf("apply raced by another writer: %+v, %v, %d batches; want it planned again and applied", res, err, len(h.kernel.Applied))
	}
}

// onTrial applies policyA, then its 81 variant on trial for a minute, and
// returns the trial.
func (h *harness) onTrial() *state.Trial {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		h.t.Fatal(err)
	}
	h.write(strings.Replace(policyA, "80", "81", 1))
	var guarded *state.Trial
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Trial: time.Minute, Arm: armed(&guarded)}); err != nil {
		h.t.Fatal(err)
	}
	h.write(policyA)
	return h.trial()
}

// TestRollbackNeedsNoDisk: a trial's rollback restores the kernel even when
// the state directory takes no write, and when the trial's record no
// longer reads; what it could not record, the next holder of the lock
// records once it can.
func TestRollbackNeedsNoDisk(t *testing.T) {
	h := newHarness(t)
	tr := h.onTrial()
	restore := restorePoint(t, h, 1)
	// current cannot be written: a directory stands in its place.
	cur := filepath.Join(h.stateDir, "current")
	os.Rename(cur, cur+".away")
	os.Mkdir(cur, 0o700)
	os.WriteFile(filepath.Join(h.ns.Dir, "trial.json"), []byte(`{"generation": 2, "prev`), 0o600)
	_, _, err := h.engine().expire(context.Background(), tr, restore, nil, "")
	if err == nil || !strings.Contains(err.Error(), "the kernel holds generation 1 again") {
		t.Errorf("a rollback that cannot record it: %v", err)
	}
	if !h.holds() {
		t.Fatal("the kernel was not rolled back")
	}
	// The disk is back: any command settles the expired trial.
	os.Remove(cur)
	os.Rename(cur+".away", cur)
	tr.Deadline = time.Now().Add(-time.Second)
	if err := (state.Trials{NS: h.ns, Store: h.store()}).Write(tr); err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine().Repair(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if h.current() != 1 || h.trial() != nil {
		t.Errorf("after the next command: current %d, trial %+v; want 1 and none", h.current(), h.trial())
	}
}

// TestGuardToldToStop: a guard whose context ends rolls the trial back at
// once rather than leave it unguarded.
func TestGuardToldToStop(t *testing.T) {
	h := newHarness(t)
	h.onTrial()
	ctx, cancel := context.WithCancel(context.Background())
	o, err := h.engine().Guard(ctx, func(*state.Trial) { cancel() })
	if err != nil || o == nil || o.Result != state.RolledBack || !strings.Contains(o.Detail, "told to stop") {
		t.Fatalf("a guard told to stop: %+v, %v", o, err)
	}
	if h.current() != 1 || !h.holds() || h.trial() != nil {
		t.Errorf("after the guard stopped: current %d, trial %+v", h.current(), h.trial())
	}
}

// TestDriftAfterDeath: the apply of a trial dies after its commit, and
// another program changes the table before anyone settles: the trial is
// kept (not taken for never applied), and its rollback restores the
// previous generation.
func TestDriftAfterDeath(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	h.write(strings.Replace(policyA, "80", "81", 1))
	h.kernel.after = runtime.Goexit
	var guarded *state.Trial
	h.applyDying(ApplyRequest{Explicit: true, Trial: time.Minute, Arm: armed(&guarded)})
	h.kernel.after = nil
	live, _, _ := h.kernel.Read(ctx)
	live.Chains[0].Rules = append(live.Chains[0].Rules, &ruleset.Rule{Verdict: ruleset.Accept()}) // drift
	h.kernel.SetLive(live)
	if _, err := h.engine().Repair(ctx, false); err != nil { // settles the intent
		t.Fatal(err)
	}
	tr := h.trial()
	if tr == nil || h.current() != 2 {
		t.Fatalf("after settling: trial %+v, current %d; want the trial kept, generation 2 current", tr, h.current())
	}
	h.write(policyA)
	if _, _, err := h.engine().expire(ctx, tr, restorePoint(t, h, 1), nil, ""); err != nil || !h.holds() || h.current() != 1 {
		t.Errorf("the trial's rollback: %v, holds %v, current %d", err, h.holds(), h.current())
	}
}

// lossy is a kernel whose answer to a commit is lost after the commit.
type lossy struct{ *hooked }

func (k lossy) Apply(ctx context.Context, p *planner.Plan) (uint32, error) {
	if _, err := k.hooked.Apply(ctx, p); err != nil {
		return 0, err
	}
	return 0, errors.New("reading the kernel's answer: connection reset")
}

// TestAnswerLost: a commit whose answer is lost is not reported as
// refused: the records stay, and the next command finds the change in the
// kernel and makes it current.
func TestAnswerLost(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	h.write(strings.Replace(policyA, "80", "81", 1))
	e := h.engine()
	e.o.Kernel, e.kernel = lossy{h.kernel}, lossy{h.kernel}
	_, err := e.Apply(ctx, ApplyRequest{Explicit: true})
	if err == nil || !strings.Contains(err.Error(), "not known whether the kernel holds the change") || h.intent() == nil {
		t.Fatalf("a lost answer: %v, intent %+v", err, h.intent())
	}
	if _, err := h.engine().Repair(ctx, false); err != nil {
		t.Fatal(err)
	}
	if h.current() != 2 || h.intent() != nil || !h.holds() {
		t.Errorf("settled: current %d, intent %+v, holds %v; want 2, none, true", h.current(), h.intent(), h.holds())
	}
}

// TestTrialRecordUnreadable: when no copy of a pending trial's record
// reads, a trial of the current generation, already due, stands in for
// it: status shows it, and the next holder of the lock rolls it back to
// the generation before and removes the records.
func TestTrialRecordUnreadable(t *testing.T) {
	h := newHarness(t)
	h.onTrial()
	trials := state.Trials{NS: h.ns, Store: h.store()}
	os.WriteFile(filepath.Join(h.ns.Dir, "trial.json"), []byte("{"), 0o600)
	mirrors, _ := filepath.Glob(filepath.Join(h.stateDir, "pending-trial-*.json"))
	if len(mirrors) != 1 {
		t.Fatalf("mirrors %v, want one", mirrors)
	}
	os.WriteFile(mirrors[0], []byte("{"), 0o600)
	if _, err := trials.Read(); err == nil {
		t.Fatal("torn records read")
	}
	s, err := h.engine().Status(context.Background())
	if err != nil || s.Trial == nil || s.Trial.Unreadable == "" || s.Trial.Generation != 2 || s.Trial.Previous != 1 {
		t.Fatalf("status: %+v, %v; want the trial of generation 2, its record unreadable", s, err)
	}
	if err := h.engine().Settle(); err != nil {
		t.Fatal(err)
	}
	if h.current() != 1 || !h.holds() {
		t.Errorf("after Settle: current %d, holds %v; want generation 1 restored", h.current(), h.holds())
	}
	if tr, err := trials.Read(); err != nil || tr != nil {
		t.Errorf("after Settle the records read %+v, %v; want none", tr, err)
	}
	if o, _ := trials.LastOutcome(); o == nil || o.Result != state.RolledBack || !strings.Contains(o.Detail, "does not read") {
		t.Errorf("outcome %+v", o)
	}
}

// TestRollbackPointDamaged: the generation a trial returns to is damaged:
// the newest other intact one is restored instead; with none, the table
// is removed rather than the trial kept.
func TestRollbackPointDamaged(t *testing.T) {
	for _, others := range []bool{true, false} {
		h := newHarness(t)
		ctx := context.Background()
		if others { // generation 1 (port 79) stays intact
			h.write(strings.Replace(policyA, "80", "79", 1))
			if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
				t.Fatal(err)
			}
			h.write(policyA)
		}
		tr := h.onTrial()
		if err := os.WriteFile(filepath.Join(h.stateDir, "generations", fmt.Sprintf("%06d", tr.Previous), "files", "000-policy.hcl"), []byte("#"), 0o600); err != nil {
			t.Fatal(err)
		}
		tr.Deadline = time.Now().Add(-time.Second)
		state.Trials{NS: h.ns, Store: h.store()}.Write(tr)
		o, err := h.engine().SettleTrial(ctx, "a test")
		if err != nil || o == nil || o.Result != state.RolledBack {
			t.Fatalf("others %v: SettleTrial = %+v, %v", others, o, err)
		}
		live, _, _ := h.kernel.Read(ctx)
		switch {
		case others:
			h.write(strings.Replace(policyA, "80", "79", 1))
			if o.Previous != 1 || h.current() != 1 || !h.holds() || !strings.Contains(o.Detail, "restored instead") {
				t.Errorf("restored %d (%s), current %d, holds %v; want generation 1 instead", o.Previous, o.Detail, h.current(), h.holds())
			}
		case live != nil || o.Previous != 0 || h.current() != 0 || !strings.Contains(o.Detail, "no hostwall firewall"):
			t.Errorf("with no other generation: %+v, table %v, current %d; want the table removed, said loudly", o, live != nil, h.current())
		}
		if h.trial() != nil {
			t.Errorf("others %v: the trial is still pending", others)
		}
	}
}

// TestRollbackDuringTrial: a rollback while a trial is pending ends the
// trial at once; to another generation than the trial's previous one, it
// records that end first, so that a rollback interrupted after that ends
// on the same generation.
func TestRollbackDuringTrial(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	tr := h.onTrial()
	n, err := h.engine().RollbackTarget()
	if err != nil || n != tr.Previous {
		t.Fatalf("RollbackTarget during a trial = %d, %v; want %d", n, err, tr.Previous)
	}
	res, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true, Rollback: &n, Trial: time.Minute, Arm: armed(new(*state.Trial))})
	if err != nil || res.EndedTrial == nil || res.EndedTrial.Result != state.RolledBack || res.Trial != nil {
		t.Fatalf("rollback during the trial: %+v, %v", res, err)
	}
	if h.current() != 1 || !h.holds() || h.trial() != nil {
		t.Errorf("after: current %d, holds %v, trial %+v", h.current(), h.holds(), h.trial())
	}
	if _, err := h.engine().Confirm("a test"); err == nil {
		t.Error("a trial rolled back was confirmed")
	}

	// To another generation: generation 3 on trial over 2 over 1; a
	// rollback to 1 is made the trial's end, then dies before the kernel
	// changes: settling it restores 1, not 2.
	h = newHarness(t)
	h.write(strings.Replace(policyA, "80", "79", 1))
	if _, err := h.engine().Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	h.write(policyA)
	tr = h.onTrial()
	one := 1
	h.kernel.before = runtime.Goexit
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.engine().Apply(ctx, ApplyRequest{Explicit: true, Rollback: &one})
	}()
	<-done
	h.kernel.before = nil
	now := h.trial()
	if now == nil || now.Previous != 1 || now.Generation != tr.Generation {
		t.Fatalf("the trial after the interrupted rollback: %+v; want it pending, ending on 1", now)
	}
	now.Deadline = time.Now().Add(-time.Second) // its guard's rollback is due
	state.Trials{NS: h.ns, Store: h.store()}.Write(now)
	o, err := h.engine().Guard(ctx, func(*state.Trial) {})
	if err != nil || o == nil || o.Previous != 1 {
		t.Fatalf("the guard: %+v, %v", o, err)
	}
	h.write(strings.Replace(policyA, "80", "79", 1))
	if h.current() != 1 || !h.holds() {
		t.Errorf("current %d, holds %v; want generation 1", h.current(), h.holds())
	}
}

// TestTrialOfAnotherStateDir: a trial applied with one state directory is
// rolled back, by a hostwall using another, to the generation of the
// trial's state directory, and recorded there.
func TestTrialOfAnotherStateDir(t *testing.T) {
	h := newHarness(t)
	h.onTrial()
	other := h.engine()
	other.o.StateDir = filepath.Join(t.TempDir(), "other")
	other.store = &state.Store{Dir: other.o.StateDir}
	tr, err := other.Trial()
	if err != nil || tr == nil {
		t.Fatalf("the trial seen with another state directory: %+v, %v", tr, err)
	}
	tr.Deadline = time.Now().Add(-time.Second)
	state.Trials{NS: h.ns, Store: h.store()}.Write(tr)
	o, err := other.SettleTrial(context.Background(), "a test")
	if err != nil || o == nil || o.Previous != 1 {
		t.Fatalf("SettleTrial = %+v, %v", o, err)
	}
	if h.current() != 1 || !h.holds() || h.trial() != nil {
		t.Errorf("current %d, holds %v, trial %+v; want generation 1 of the trial's state directory", h.current(), h.holds(), h.trial())
	}
	if n, _ := other.store.Current(); n != 0 {
		t.Errorf("the other state directory records generation %d as current", n)
	}
}

// TestGuardOnBusyHost: a trial's rollback that other writers make stale
// more often than an apply plans again (maxApplyAttempts) is tried again
// by its guard, which ends on the previous generation (found by a review:
// on a busy host, both large trials' guards gave up, leaving them in
// force).
func TestGuardOnBusyHost(t *testing.T) {
	h := newHarness(t)
	tr := h.onTrial()
	tr.Deadline = time.Now().Add(-time.Second) // its rollback is due
	state.Trials{NS: h.ns, Store: h.store()}.Write(tr)
	refusals := 0
	h.kernel.before = func() {
		if refusals < 2*maxApplyAttempts {
			refusals++
			h.kernel.Bump() // another writer, right before each batch
		}
	}
	o, err := h.engine().Guard(context.Background(), func(*state.Trial) {})
	if err != nil || o == nil || o.Previous != 1 {
		t.Fatalf("the guard after %d stale rollbacks: %+v, %v", refusals, o, err)
	}
	if h.current() != 1 || !h.holds() || refusals != 2*maxApplyAttempts {
		t.Errorf("current %d, holds %v, %d refusals; want generation 1 in force after %d", h.current(), h.holds(), refusals, 2*maxApplyAttempts)
	}
}
