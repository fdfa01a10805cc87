package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/ruleset"
)

// churnConfig has a host endpoint, a policy and a network set, so the
// table holds chains, rules and an interval set of addresses.
const churnConfig = `
host_endpoint "eth0" { interface = "eth0" }
network_set "blocked" {
  labels = { blocked = "true" }
  nets   = ["192.0.2.0/24", "198.51.100.7", "2001:db8::/48"]
}
policy "web" {
  ingress {
    action = "deny"
    source { selector = "blocked == 'true'" }
  }
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [80, 443] }
  }
}
`

// churnSeeds are the seeds the shortcut's property test runs (keep every
// seed that ever found a bug).
var churnSeeds = []uint64{1, 2, 3}

// TestUntouchedShortcutMatchesRead holds the churn shortcut to the slow
// path: while other programs change their own tables — and now and then
// table inet hostwall — a plan that trusts the verified record because the
// kernel's events show the table untouched (Options.Untouched, from
// nft.Conn.Watch) gives the answer of a plan that reads the whole table.
func TestUntouchedShortcutMatchesRead(t *testing.T) {
	testns.RequireRoot(t)
	for _, seed := range churnSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { churn(t, seed) })
	}
}

// churnLab is a namespace with churnConfig applied by an engine on a
// watching connection (memo: one that keeps its reads, as the agent's),
// which asks the connection's events whether the table was touched;
// asked counts the questions.
type churnLab struct {
	ns    string
	conn  *nft.Conn
	e     *Engine
	asked int
}

func newChurnLab(t *testing.T, memo bool) *churnLab {
	t.Helper()
	l := &churnLab{ns: testns.New(t)}
	conn, err := nft.Open(nft.Options{NetNS: l.ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := conn.Watch(ctx, func(nft.Change) {}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	cfg := filepath.Join(root, "cfg")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "a.hcl"), []byte(churnConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	l.conn = conn
	l.e = New(Options{ConfigDir: cfg, StateDir: filepath.Join(root, "state"), RunDir: filepath.Join(root, "run"), NetNS: l.ns, HostName: "srv",
		Kernel: conn, Memo: memo,
		Untouched: func(ctx context.Context, _ uint64, since, now uint32) bool {
			l.asked++
			return conn.Untouched(ctx, since, now)
		}})
	if _, err := l.e.Apply(ctx, ApplyRequest{Explicit: true}); err != nil {
		t.Fatal(err)
	}
	return l
}

func churn(t *testing.T, seed uint64) {
	l := newChurnLab(t, false)
	ns, conn, e := l.ns, l.conn, l.e
	ctx := context.Background()
	live, _, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sets, chains []string
	for _, s := range live.Sets {
		if !s.Map && strings.HasPrefix(s.Name, "sel-") && strings.HasSuffix(s.Name, "-4") {
			sets = append(sets, s.Name)
		}
	}
	for _, c := range live.Chains {
		if strings.HasPrefix(c.Name, "pol/") {
			chains = append(chains, c.Name)
		}
	}
	if len(sets) == 0 || len(chains) == 0 {
		t.Fatalf("no address set or policy chain in\n%s", live)
	}
	testns.NFT(t, ns, "add table ip busy; add set ip busy s { type ipv4_addr; flags interval; }; add chain ip busy c")
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	shortcuts, drifts := 0, 0
	for step := range 60 {
		var cmd string
		switch n := r.IntN(10); {
		case n < 3:
			cmd = fmt.Sprintf("add element ip busy s { 10.%d.%d.0/24 }", step, r.IntN(256))
		case n < 5:
			cmd = fmt.Sprintf("add rule ip busy c ip saddr 10.0.0.%d accept", r.IntN(256))
		case n < 6:
			cmd = fmt.Sprintf("add table inet t%d; delete table inet t%d", step, step)
		case n < 7:
			cmd = fmt.Sprintf("add element inet hostwall %s { 203.0.113.%d }", sets[r.IntN(len(sets))], r.IntN(256))
		case n < 8:
			cmd = fmt.Sprintf("delete element inet hostwall %s { 192.0.2.0/24 }", sets[r.IntN(len(sets))])
		case n < 9:
			cmd = fmt.Sprintf("add rule inet hostwall %s tcp dport %d accept", chains[r.IntN(len(chains))], 1000+step)
		default:
			cmd = "add chain inet hostwall stray" + fmt.Sprint(step)
		}
		// A command that fails (an element already gone) commits nothing.
		testns.Run(t, "sh", "-c", fmt.Sprintf("ip netns exec %s nft '%s' 2>/dev/null || true", ns, cmd))
		fast, err := e.Plan(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := e.Plan(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		fa, fc, fd := fast.Plan.Summary()
		sa, sc, sd := slow.Plan.Summary()
		if fast.Plan.Empty() != slow.Plan.Empty() || fa != sa || fc != sc || fd != sd {
			t.Fatalf("seed %d, step %d (%s): the shortcut plans %d/%d/%d (%v), reading the kernel %d/%d/%d", seed, step, cmd, fa, fc, fd, fast.Notes, sa, sc, sd)
		}
		for _, n := range fast.Notes {
			if strings.Contains(n, "the agent saw the kernel's transactions") {
				shortcuts++
			}
		}
		if !slow.Plan.Empty() {
			drifts++
			if _, err := e.Apply(ctx, ApplyRequest{Explicit: true, Refresh: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("seed %d: %d shortcuts through other tables' changes, %d drifts of inet hostwall repaired, %d questions", seed, shortcuts, drifts, l.asked)
	if shortcuts < 10 || drifts < 3 {
		t.Errorf("seed %d exercised too little: %d shortcuts, %d drifts", seed, shortcuts, drifts)
	}
}

// readCounter counts the full reads of a connection.
type readCounter struct {
	*nft.Conn
	reads *int
}

func (r readCounter) Read(ctx context.Context) (*ruleset.Table, uint32, error) {
	*r.reads++
	return r.Conn.Read(ctx)
}

func (r readCounter) ReadLike(ctx context.Context, like *ruleset.Table) (*ruleset.Table, uint32, error) {
	*r.reads++
	return r.Conn.ReadLike(ctx, like)
}

// TestFollowMatchesRead holds the agent's kept read to a full read: after
// random transactions of other programs — on other tables, on the
// elements of hostwall's sets, adding rules and chains to its table — the
// read an engine that keeps its reads (the agent's) makes, replaying
// element changes and reading the chains alone where the kernel's events
// allow, is the table a full read returns.
func TestFollowMatchesRead(t *testing.T) {
	testns.RequireRoot(t)
	for _, seed := range churnSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			l := newChurnLab(t, true)
			ns, conn, e := l.ns, l.conn, l.e
			reads := 0
			e.cache.Kernel = readCounter{Conn: conn, reads: &reads}
			ctx := context.Background()
			live, _, err := conn.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var set, chain string
			for _, s := range live.Sets {
				if strings.HasPrefix(s.Name, "sel-") && strings.HasSuffix(s.Name, "-4") {
					set = s.Name
				}
			}
			for _, c := range live.Chains {
				if strings.HasPrefix(c.Name, "pol/") {
					chain = c.Name
				}
			}
			testns.NFT(t, ns, "add table ip busy; add chain ip busy c")
			r := rand.New(rand.NewPCG(seed, 11))
			present := map[string]bool{}
			followed := 0
			for step := range 50 {
				var cmd string
				switch n := r.IntN(8); {
				case n < 2:
					cmd = fmt.Sprintf("add rule ip busy c ip saddr 10.0.0.%d accept", r.IntN(256))
				case n < 5:
					elem := fmt.Sprintf("203.0.113.%d", r.IntN(6))
					op := "add"
					if present[elem] {
						op = "delete"
					}
					present[elem] = !present[elem]
					cmd = fmt.Sprintf("%s element inet hostwall %s { %s }", op, set, elem)
				case n < 7:
					cmd = fmt.Sprintf("add rule inet hostwall %s tcp dport %d accept", chain, 2000+step)
				default:
					cmd = fmt.Sprintf("add chain inet hostwall stray%d", step)
				}
				testns.NFT(t, ns, cmd)
				before := reads
				kept, gen, err := e.kernel.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if reads == before {
					followed++
				}
				full, fullGen, err := conn.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if gen != fullGen || kept.String() != full.String() {
					t.Fatalf("seed %d, step %d (%s): the kept read (generation %d) differs from a full one (%d):\n%s\n---\n%s", seed, step, cmd, gen, fullGen, kept, full)
				}
			}
			t.Logf("seed %d: %d of 50 reads followed the events", seed, followed)
			if followed < 30 {
				t.Errorf("seed %d: only %d reads followed the events", seed, followed)
			}
		})
	}
}
