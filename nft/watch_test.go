package nft_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// watch starts c.Watch and returns the channel of its reports.
func watch(t *testing.T, c *nft.Conn) <-chan nft.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan nft.Change, 100)
	if err := c.Watch(ctx, func(x nft.Change) { ch <- x }); err != nil {
		t.Fatal(err)
	}
	return ch
}

func nextChange(t *testing.T, ch <-chan nft.Change) nft.Change {
	t.Helper()
	select {
	case x := <-ch:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported within 10s")
		return nft.Change{}
	}
}

// TestWatchReportsOthers (trap 9): changes by another process to our table
// are reported with its name; our own applies and other tables are not.
// Events arrive in order, so the first report after a sequence of changes
// shows which earlier ones were (wrongly) reported.
func TestWatchReportsOthers(t *testing.T) {
	c, ns := kernel(t)
	apply(t, c, compileDir(t, "../examples/quickstart", "web-1"))
	ch := watch(t, c)

	apply(t, c, bigTable(3, 2))                           // our own transaction
	testns.NFT(t, ns, "add", "table", "ip", "other")      // another table
	testns.NFT(t, ns, "add", "chain", "ip", "other", "c") //
	testns.NFT(t, ns, "add", "rule", "ip", "other", "c", "accept")
	testns.NFT(t, ns, "add", "rule", "inet", "hostwall", "big", "tcp", "dport", "9999", "accept")
	got := nextChange(t, ch)
	if !got.Certain || !strings.HasPrefix(got.By, "nft (pid ") {
		t.Errorf("first report = %+v, want nft's rule in our table, certain", got)
	}

	// Sets and elements come with their table (read raw: the library's
	// monitor drops it): another table's are not reported, ours are,
	// certain.
	testns.NFT(t, ns, "add", "set", "ip", "other", "s", "{ type ipv4_addr; }")
	testns.NFT(t, ns, "add", "element", "ip", "other", "s", "{ 10.1.1.1 }")
	testns.NFT(t, ns, "add", "table", "inet", "other")
	testns.NFT(t, ns, "add", "set", "inet", "other", "blocklist", "{ type ipv4_addr; flags interval; }")
	testns.NFT(t, ns, "add", "element", "inet", "other", "blocklist", "{ 10.99.0.0/16 }")
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", "blocklist", "{ 10.99.0.0/16 }")
	if got := nextChange(t, ch); !got.Certain || !strings.HasPrefix(got.By, "nft (pid ") {
		t.Errorf("element change reported as %+v, want nft, certain", got)
	}
	select {
	case got := <-ch:
		t.Errorf("one change reported as two: then %+v", got)
	default:
	}
}

// TestUntouched: from the events it has read, Watch tells whether table
// inet hostwall was touched between two generations — by another table's
// changes, no; by an element added to one of its sets, or a rule of ours,
// yes; before the subscription, or after a loss, it cannot tell.
func TestUntouched(t *testing.T) {
	c, ns := kernel(t)
	apply(t, c, compileDir(t, "../examples/quickstart", "web-1"))
	before, _ := c.Generation()
	watch(t, c)
	ctx := context.Background()
	g0, _ := c.Generation()
	if c.Untouched(ctx, before-1, g0) {
		t.Error("vouched for a generation before the subscription")
	}
	testns.NFT(t, ns, "add", "table", "ip", "busy")
	testns.NFT(t, ns, "add", "set", "ip", "busy", "s", "{ type ipv4_addr; }")
	for i := range 5 {
		testns.NFT(t, ns, "add", "element", "ip", "busy", "s", fmt.Sprintf("{ 10.0.0.%d }", i))
	}
	g1, _ := c.Generation()
	if g1 == g0 || !c.Untouched(ctx, g0, g1) {
		t.Errorf("another table's 7 transactions (%d to %d): not untouched", g0, g1)
	}
	apply(t, c, bigTable(3, 2)) // our own: a touch too
	g2, _ := c.Generation()
	if c.Untouched(ctx, g1, g2) || !c.Untouched(ctx, g2, g2) {
		t.Error("our own apply not counted as a touch")
	}
	testns.NFT(t, ns, "add", "element", "ip", "busy", "s", "{ 10.0.1.1 }")
	g3, _ := c.Generation()
	if !c.Untouched(ctx, g2, g3) {
		t.Error("another table's element after our apply: not untouched")
	}
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", "blocklist", "{ 10.98.0.0/16 }")
	g4, _ := c.Generation()
	if c.Untouched(ctx, g3, g4) || c.Untouched(ctx, g2, g4) {
		t.Error("an element added to our set: untouched")
	}
	if c.Untouched(ctx, g4, g4+5) {
		t.Error("vouched for generations the kernel has not reached")
	}
}

// TestWatchSurvivesOverflow (trap 9): a 20,000-element transaction overflows
// a small subscription buffer while the events are not read; the loss is
// reported, Untouched vouches for nothing across it, and the subscription
// is made again, so later changes are still seen.
func TestWatchSurvivesOverflow(t *testing.T) {
	ns := testns.New(t)
	c, err := nft.Open(nft.Options{NetNS: ns, BufferBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch := watch(t, c)

	var b strings.Builder
	b.WriteString("add table ip other\nadd set ip other s { type ipv4_addr; }\nadd element ip other s { ")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "10.%d.%d.1, ", i/256, i%256)
	}
	b.WriteString("}\n")
	file := filepath.Join(t.TempDir(), "big.nft")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Generation()
	release := nft.HoldWatch(c) // the events pile up unread, as behind a busy reader
	testns.NFT(t, ns, "-f", file)
	after, _ := c.Generation()
	release()
	lost := nextChange(t, ch)
	if lost.Certain || !strings.Contains(lost.By, "lost") {
		t.Fatalf("report = %+v, want the loss of events", lost)
	}
	if c.Untouched(context.Background(), before, after) {
		t.Error("Untouched vouches across lost events")
	}
	// What matters next is that a later change is seen.
	testns.NFT(t, ns, "add", "table", "inet", "hostwall")
	for {
		if got := nextChange(t, ch); got.Certain {
			break
		}
	}
}

// TestWatchPausedAroundOwnLargeBatch: Apply ends Watch's subscription around
// a large batch of its own (the events of 20,000 elements cost the kernel
// and the library seconds and ~100 MB, to learn the change was ours) and
// subscribes again before it returns: a small batch leaves the
// subscription alone, no loss is reported, and the first change by another
// process afterwards is reported.
func TestWatchPausedAroundOwnLargeBatch(t *testing.T) {
	c, ns := kernel(t)
	ch := watch(t, c)
	if n := nft.WatchSubscriptions(c); n != 1 {
		t.Fatalf("%d subscriptions after Watch, want 1", n)
	}
	apply(t, c, bigTable(3, 10))
	if n := nft.WatchSubscriptions(c); n != 1 {
		t.Errorf("%d subscriptions after a small apply, want 1 (not paused)", n)
	}
	apply(t, c, bigTable(3, 20000))
	if n := nft.WatchSubscriptions(c); n != 2 {
		t.Errorf("%d subscriptions after a 20,000-element apply, want 2 (paused and made again)", n)
	}
	testns.NFT(t, ns, "add", "chain", "inet", "hostwall", "x")
	if got := nextChange(t, ch); !got.Certain || !strings.HasPrefix(got.By, "nft (pid ") {
		t.Errorf("first report after the large apply = %+v, want nft's new chain", got)
	}
	if n := nft.WatchSubscriptions(c); n != 2 {
		t.Errorf("%d subscriptions in the end, want 2: a loss was handled as one", n)
	}
}

// TestApplyOnBusyHost: a connection that follows the kernel's events
// sends a plan at the generation the kernel is at when the transactions
// since the plan's left the table alone — small batches and large ones
// (whose subscription pauses: vouched for before) — and sends again when
// another table's transaction lands between the vouching and the send. A
// transaction on the table itself leaves the plan stale, and nothing is
// sent. Without following, another table's transaction makes it stale
// (TestStalePlanIsRefused).
func TestApplyOnBusyHost(t *testing.T) {
	ns := testns.New(t)
	c, err := nft.Open(nft.Options{NetNS: ns, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	testns.NFT(t, ns, "add", "table", "ip", "busy")
	testns.NFT(t, ns, "add", "set", "ip", "busy", "s", "{ type ipv4_addr; }")
	other := 0
	busy := func() {
		other++
		testns.NFT(t, ns, "add", "element", "ip", "busy", "s", fmt.Sprintf("{ 10.0.%d.%d }", other/250, other%250))
	}
	for _, desired := range []*ruleset.Table{bigTable(3, 10), bigTable(4, 20000)} {
		p := plan(t, c, desired)
		planned := p.Generation
		busy()
		busy()
		after, err := c.Apply(ctx, p)
		if err != nil {
			t.Fatalf("%d elements, another table changed twice since the plan: %v", len(desired.Sets[0].Elements), err)
		}
		if p.Generation != planned+2 || after != planned+3 {
			t.Errorf("planned at %d: sent at %d, after %d; want %d, %d", planned, p.Generation, after, planned+2, planned+3)
		}
		if rest := plan(t, c, desired); !rest.Empty() {
			t.Fatalf("after the apply the plan is not empty: %v", rest.Changes)
		}
	}

	// Another table's transaction between the vouching and the send: the
	// kernel refuses the batch, which is vouched for and sent again.
	desired := bigTable(5, 20000) // one rule more: a small batch
	p := plan(t, c, desired)
	planned := p.Generation
	once := false
	defer nft.SetBeforeSend(func() {
		if !once {
			once = true
			busy()
		}
	})()
	if _, err := c.Apply(ctx, p); err != nil || p.Generation != planned+1 {
		t.Fatalf("a transaction after the vouching: %v, sent at %d (planned at %d), want sent at %d", err, p.Generation, planned, planned+1)
	}
	if rest := plan(t, c, desired); !rest.Empty() {
		t.Fatalf("after the apply the plan is not empty: %v", rest.Changes)
	}

	// A transaction on our own table: stale, and nothing sent.
	p = plan(t, c, bigTable(6, 20000))
	busy()
	testns.NFT(t, ns, "add", "element", "inet", "hostwall", "blocklist", "{ 10.98.0.0/16 }")
	busy()
	if _, err := c.Apply(ctx, p); !errors.Is(err, planner.ErrStale) {
		t.Fatalf("a plan made before an element was added to our set: %v, want stale", err)
	}
	if out := testns.NFT(t, ns, "list", "chain", "inet", "hostwall", "big"); strings.Contains(out, "dport 6 ") {
		t.Error("a stale plan reached the kernel")
	}
}
