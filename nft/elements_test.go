package nft_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/internal/churn"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// elementsConfig has an interval set of IPv4 and one of IPv6 addresses, a
// set of ports and the dispatch maps.
var elementsConfig = map[string]string{"a.hcl": `
host_endpoint "eth0" { interface = "eth0" }
network_set "blocked" {
  labels = { blocked = "true" }
  nets   = ["192.0.2.0/24", "198.51.100.7", "2001:db8::/48", "2001:db8:1::5"]
}
policy "web" {
  ingress {
    action = "deny"
    source { selector = "blocked == 'true'" }
  }
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [80, 443, 8000] }
  }
}
`}

// elementSeeds are the seeds of TestChangesMatchRead.
var elementSeeds = []uint64{1, 2, 3}

// TestChangesMatchRead holds the replay of events to a read: after random
// transactions of another process adding and removing elements of the
// table's sets (addresses, both families, single and ranges; ports; the
// dispatch map), and adding rules and chains, the previous read with the
// element changes Changes decodes applied, and the chains read again
// (ReadChains) when it says they changed, is what a read of the kernel
// returns. A transaction that adds a set cannot be replayed.
func TestChangesMatchRead(t *testing.T) {
	for _, seed := range elementSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c, ns := kernel(t)
			apply(t, c, compileSrc(t, "srv", elementsConfig))
			watch(t, c)
			ctx := context.Background()
			prev, gen, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var v4, v6, ports, chain string
			for _, c := range prev.Chains {
				if strings.HasPrefix(c.Name, "pol/") {
					chain = c.Name
				}
			}
			for _, s := range prev.Sets {
				switch {
				case s.Type == ruleset.TypeIPv4Addr:
					v4 = s.Name
				case s.Type == ruleset.TypeIPv6Addr:
					v6 = s.Name
				case s.Type == ruleset.TypeInetService:
					ports = s.Name
				}
			}
			r := rand.New(rand.NewPCG(seed, 7))
			present := map[string]bool{} // by "set element", what the test added
			replayed := 0
			for step := range 40 {
				var cmds []string
				for range 1 + r.IntN(3) {
					var set, elem string
					switch r.IntN(6) {
					case 0: // single addresses, often adjacent
						set, elem = v4, fmt.Sprintf("203.0.113.%d", r.IntN(8))
					case 1:
						set, elem = v4, fmt.Sprintf("10.%d.0.0/16", r.IntN(4))
					case 2:
						set, elem = v6, fmt.Sprintf("2001:db8:%x::/64", 16+r.IntN(4))
					case 3:
						k := r.IntN(3)
						set, elem = ports, fmt.Sprintf("%d-%d", 9000+10*k, 9005+10*k)
					case 4:
						if r.IntN(2) == 0 {
							cmds = append(cmds, fmt.Sprintf("add rule inet hostwall %s tcp dport %d drop", chain, 20000+step))
						} else {
							cmds = append(cmds, fmt.Sprintf("add chain inet hostwall stray%d", step))
						}
						continue
					default:
						set, elem = "hep-in", fmt.Sprintf("\"eth%d\" : drop", 1+r.IntN(2))
					}
					key := set + " " + elem
					op := "add"
					if present[key] {
						op = "delete"
					}
					present[key] = !present[key]
					cmds = append(cmds, fmt.Sprintf("%s element inet hostwall %s { %s }", op, set, elem))
				}
				// One transaction of them all (an element added and deleted
				// in it is both, in order).
				testns.NFT(t, ns, strings.Join(cmds, "; "))
				now, err := c.Generation()
				if err != nil {
					t.Fatal(err)
				}
				changes, chains, ok := c.Changes(ctx, gen, now, prev.Set)
				if !ok {
					t.Fatalf("step %d (%s): not replayable", step, cmds)
				}
				want, _, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got := *prev
				if chains {
					if got.Chains, _, err = c.ReadChains(ctx); err != nil {
						t.Fatal(err)
					}
				}
				got.Sets = slices.Clone(prev.Sets)
				for _, ch := range changes {
					i := slices.IndexFunc(got.Sets, func(s *ruleset.Set) bool { return s.Name == ch.Set })
					s, fits := got.Sets[i].WithChange(ch)
					if !fits {
						t.Fatalf("step %d (%s): %+v does not fit set %s", step, cmds, ch, ch.Set)
					}
					got.Sets[i] = s
				}
				if diff := cmp.Diff(want.String(), got.String()); diff != "" {
					t.Fatalf("step %d (%s): replayed (+) differs from read (-):\n%s", step, cmds, diff)
				}
				if now != gen {
					replayed++
				}
				prev, gen = want, now
			}
			if replayed != 40 {
				t.Errorf("only %d of 40 transactions committed", replayed)
			}
			testns.NFT(t, ns, "add", "set", "inet", "hostwall", "stray", "{ type ipv4_addr; }")
			now, _ := c.Generation()
			if _, _, ok := c.Changes(ctx, gen, now, prev.Set); ok {
				t.Error("a set added was replayed from events")
			}
		})
	}
}

// TestReadAdjacentIntervals: a read pairs each interval's start with its
// own end when another interval starts where it ends — adjacent intervals,
// which hostwall merges in its own sets but another program may add. The
// dump gives the end and the next start, which share a key, in either
// order; read as start-then-end, they made an interval open to the top and
// one that ends before it starts (found by TestChangesMatchRead).
func TestReadAdjacentIntervals(t *testing.T) {
	c, ns := kernel(t)
	testns.NFT(t, ns, "add table inet hostwall; add set inet hostwall s { type ipv4_addr; flags interval; }")
	testns.NFT(t, ns, "add element inet hostwall s { 203.0.113.0, 203.0.113.1, 203.0.113.2-203.0.113.9, 10.0.0.0/16, 10.1.0.0/16 }")
	live, _, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := live.Set("s")
	var got []string
	for _, e := range s.Elements {
		got = append(got, s.FormatElement(e))
	}
	want := []string{"10.0.0.0/16", "10.1.0.0/16", "203.0.113.0", "203.0.113.1", "203.0.113.2-203.0.113.9"}
	if !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
}

// TestReadOnBusyHost: another program changes a table of its own faster
// than a large table inet hostwall is read; Read still returns it, once the
// kernel's events show those transactions left it alone (before, it read
// again five times and gave up: "the ruleset kept changing under us").
func TestReadOnBusyHost(t *testing.T) {
	c, ns := kernel(t)
	desired := bigTable(3, 50000)
	apply(t, c, desired)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	// The other program commits through the library, back to back: nft,
	// which reads the sets of every table first, is too slow to be busy.
	go func() {
		n, err := churn.Run(ctx, ns, 0, nil)
		if err != nil {
			t.Errorf("the other program: %v", err)
		}
		done <- n
	}()
	for range 3 {
		live, gen, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p := planner.Diff(desired, live); !p.Empty() {
			t.Fatalf("read at generation %d differs from what was applied: %+v", gen, p.Changes)
		}
	}
	cancel()
	if n := <-done; n < 50 {
		t.Errorf("the other program committed only %d times", n)
	}
}

// TestTimeoutAndDormantAreDrift: two changes another program can make that
// no rule or element shows. An element given a timeout leaves the set by
// itself later, with no transaction and no event; a dormant table's rules
// see no packet. Both are read, planned as changes (the element removed
// and added again without its timeout; the table woken), and undone by
// the apply — and an element with a timeout is never replayed from events.
func TestTimeoutAndDormantAreDrift(t *testing.T) {
	c, ns := kernel(t)
	desired := compileSrc(t, "srv", elementsConfig)
	apply(t, c, desired)
	watch(t, c)
	ctx := context.Background()
	before, gen, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var v4 string
	for _, s := range before.Sets {
		if s.Type == ruleset.TypeIPv4Addr {
			v4 = s.Name
		}
	}
	testns.NFT(t, ns, "add element inet hostwall "+v4+" { 192.0.2.0/24 timeout 1h }")
	now, _ := c.Generation()
	if _, _, ok := c.Changes(ctx, gen, now, before.Set); ok {
		t.Error("an element with a timeout was replayed from its event")
	}
	p := plan(t, c, desired)
	if p.Empty() {
		t.Fatal("an element with a timeout is not a change")
	}
	apply(t, c, desired) // apply checks that the plan after it is empty
	if out := testns.NFT(t, ns, "list", "set", "inet", "hostwall", v4); strings.Contains(out, "expires") || strings.Contains(out, "timeout 1h") {
		t.Errorf("the element keeps its timeout:\n%s", out)
	}

	// A default timeout given to the set: every element added from then on
	// would expire. The set is declared again, without.
	testns.NFT(t, ns, "add set inet hostwall "+v4+" { type ipv4_addr; flags interval,timeout; timeout 5s; }")
	if p := plan(t, c, desired); p.Empty() || p.ElementsOnly() {
		t.Fatalf("a set's default timeout is not a change: %+v", p)
	}
	apply(t, c, desired)
	if out := testns.NFT(t, ns, "list", "set", "inet", "hostwall", v4); strings.Contains(out, "timeout 5s") || strings.Contains(out, "expires") {
		t.Errorf("the set keeps its timeout:\n%s", out)
	}

	testns.NFT(t, ns, "add table inet hostwall { flags dormant; }")
	if p := plan(t, c, desired); !p.WakeTable || p.ElementsOnly() {
		t.Fatalf("a dormant table is not planned to be woken: %+v", p)
	}
	apply(t, c, desired)
	if out := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); strings.Contains(out, "dormant") {
		t.Errorf("the table is still dormant:\n%s", out)
	}
}
