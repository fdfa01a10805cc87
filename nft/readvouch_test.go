package nft_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// TestReadVouchedByEvents: another program's transaction that lands while
// a read runs, on a table of its own, does not make the read start again
// (on a busy host every first read would be wasted, and a large table's
// read never finish): the events the read follows show the table
// untouched. The read still equals what was applied, and the read listens
// no longer than it reads.
func TestReadVouchedByEvents(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(20, 2000)
	apply(t, c, desired)
	attempts := 0
	defer nft.SetDuringRead(func() {
		if attempts++; attempts == 1 {
			testns.NFT(t, ns, "add table ip other")
		}
	})()
	gen := generation(t, c)
	subs := nft.WatchSubscriptions(c)
	live, at, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Errorf("the read took %d attempts: the other table's transaction made it read again", attempts)
	}
	if at == gen {
		t.Fatal("the other program's transaction did not land during the read: the test shows nothing")
	}
	if p := planner.Diff(desired, live); !p.Empty() {
		t.Errorf("the read differs from what was applied: %+v", p.Changes)
	}
	if nft.Following(c) {
		t.Error("the connection still listens to the kernel's events after the read")
	}
	if n := nft.WatchSubscriptions(c) - subs; n != 1 {
		t.Errorf("%d subscriptions for one read, want 1", n)
	}
}

// readSeeds are the seeds of TestReadUnderInterference (keep every seed
// that ever found a bug).
var readSeeds = []uint64{1, 2, 3, 4}

// TestReadUnderInterference holds a read overlapped by other programs'
// transactions to the full read of a quiet kernel: while the first
// attempts of a read run, random transactions change other tables, or
// table inet hostwall itself (elements added and removed, rules added and
// deleted, a chain added); each read returns exactly what a read returns
// once nothing changes any more, at that generation, and reads again only
// when the table itself was touched.
func TestReadUnderInterference(t *testing.T) {
	for _, seed := range readSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c, ns := kernel(t)
			apply(t, c, bigTable(30, 3000))
			quiet, err := nft.Open(nft.Options{NetNS: ns})
			if err != nil {
				t.Fatal(err)
			}
			defer quiet.Close()
			r := rand.New(rand.NewPCG(seed, 11))
			ctx := context.Background()
			for step := range 12 {
				touchedOn := map[int]bool{} // attempts whose interference touched the table
				attempts := 0
				restore := nft.SetDuringRead(func() {
					attempts++
					if attempts > 2 || r.IntN(4) == 0 {
						return // the interference stops: the read must end
					}
					var cmds []string
					for range 1 + r.IntN(3) {
						switch r.IntN(7) {
						case 0, 1, 2:
							cmds = append(cmds, fmt.Sprintf("add table ip o%d", r.IntN(3)), fmt.Sprintf("add chain ip o%d c%d", r.IntN(3), r.IntN(5)))
						case 3:
							cmds = append(cmds, fmt.Sprintf("add element inet hostwall blocklist { 192.0.2.%d }", r.IntN(250)))
							touchedOn[attempts] = true
						case 4:
							cmds = append(cmds, fmt.Sprintf("delete element inet hostwall blocklist { 10.0.%d.%d/30 }", r.IntN(40), 4*r.IntN(64)))
							touchedOn[attempts] = true
						case 5:
							cmds = append(cmds, fmt.Sprintf("add rule inet hostwall big tcp dport %d drop", 30000+r.IntN(1000)))
							touchedOn[attempts] = true
						default:
							cmds = append(cmds, fmt.Sprintf("add chain inet hostwall stray%d", r.IntN(4)))
							touchedOn[attempts] = true
						}
					}
					// A deletion of an element already gone fails the
					// transaction, changing nothing: that is interference
					// too (none).
					if err := exec.Command("ip", "netns", "exec", ns, "nft", strings.Join(cmds, "; ")).Run(); err != nil {
						delete(touchedOn, attempts)
					}
				})
				live, at, err := c.Read(ctx)
				restore()
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				want, wantAt, err := quiet.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if at != wantAt {
					t.Fatalf("step %d: read at generation %d, but nothing changed after it and the kernel is at %d", step, at, wantAt)
				}
				if d := cmp.Diff(tableText(want), tableText(live)); d != "" {
					t.Fatalf("step %d: the read overlapped by others' transactions differs from the quiet read (-quiet +read):\n%s", step, d)
				}
				wantAttempts := 1
				for a := range touchedOn {
					wantAttempts = max(wantAttempts, a+1)
				}
				if attempts != wantAttempts {
					t.Errorf("step %d: %d attempts, want %d (the table was touched during attempts %v)", step, attempts, wantAttempts, touchedOn)
				}
			}
		})
	}
}

// tableText is a table's chains and sets as text, for a diff.
func tableText(t *ruleset.Table) string {
	var b strings.Builder
	for _, ch := range t.Chains {
		fmt.Fprintf(&b, "chain %s\n", ch.Name)
		for _, r := range ruleTexts(ch) {
			fmt.Fprintf(&b, "\t%s\n", r)
		}
	}
	for _, s := range t.Sets {
		fmt.Fprintf(&b, "set %s %d elements\n", s.Name, len(s.Elements))
		for _, e := range elementTexts(s) {
			fmt.Fprintf(&b, "\t%s\n", e)
		}
	}
	return b.String()
}

// TestReadTableGoneMidway: the table deleted by another program while it
// is read (its chains and sets then answer ENOENT) is read again, and is
// then missing, instead of failing the read with the library's error.
func TestReadTableGoneMidway(t *testing.T) {
	c, ns := kernel(t)
	apply(t, c, bigTable(20, 2000))
	attempts := 0
	defer nft.SetDuringRead(func() {
		if attempts++; attempts == 1 {
			testns.NFT(t, ns, "delete table inet hostwall")
		}
	})()
	live, _, err := c.Read(context.Background())
	if err != nil {
		t.Fatalf("the table deleted during the read: %v", err)
	}
	if live != nil {
		t.Errorf("read a table that is gone: %d chains", len(live.Chains))
	}
	if attempts != 1 {
		t.Errorf("%d attempts found the table, want 1", attempts)
	}
}
