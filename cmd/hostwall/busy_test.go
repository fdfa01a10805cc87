package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/hostwall/hostwall/internal/testns"
)

// TestApplyOnBusyHost: another program commits to a table of its own 200
// times a second, as a docker or fail2ban host may.
// hostwall's applies — the first, with 20,000 networks, a change of rules
// and a change of the list — still go in (before, every one came back
// "the nftables ruleset changed since it was read": the generation moved
// while hostwall planned and encoded), and each ends with an empty plan
// --refresh (hostwallEnv's check). The other table is untouched.
func TestApplyOnBusyHost(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	var list strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&list, "10.%d.%d.0/30\n", i/250, i%250)
	}
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": list.String()})
	testns.NFT(t, ns, "add table ip busy; add set ip busy s { type ipv4_addr; }")
	// The other program commits through the library, 200 times a second: nft,
	// which reads hostwall's 20,000-network set before each command, is
	// too slow to be busy (and the test's check below too uncertain).
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	busy := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "busy"}, Name: "s", KeyType: nftables.TypeIPAddr}
	ctx, cancel := context.WithCancel(context.Background())
	var commits atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond) // 200 transactions a second
		defer tick.Stop()
		for n := 0; ctx.Err() == nil; n++ {
			<-tick.C
			if other.SetAddElements(busy, []nftables.SetElement{{Key: []byte{10, 9, byte(n >> 8), byte(n)}}}) != nil {
				return
			}
			if other.Flush() == nil {
				commits.Add(1)
			}
		}
	}()
	defer func() { cancel(); <-done }()

	apply := func(what string) {
		t.Helper()
		before := commits.Load()
		r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0")
		if r.code != 0 {
			t.Fatalf("%s on a busy host: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		if n := commits.Load() - before; n < 1 {
			t.Fatalf("%s: the other program committed %d times meanwhile; the test needs it busy", what, n)
		}
	}
	apply("the first apply")
	write(t, dir, "policy.hcl", strings.Replace(blocklistPolicy, `action = "deny"`, `action = "deny"
    protocol = "tcp"`, 1))
	apply("a change of rules")
	write(t, dir, "bl.txt", "11.0.0.0/30\n"+list.String()[len("10.0.0.0/30\n"):])
	apply("a change of the list")
	// nft, the oracle, reads only once the other program stops: on a busy
	// host it reads hostwall's set again whenever the generation moves.
	cancel()
	<-done
	if table := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); !strings.Contains(table, "11.0.0.0/30") {
		t.Error("the list's change is not in the kernel")
	}
	if n := min(commits.Load(), 1<<16); n > 0 {
		// The other program's last element is there: its table untouched.
		last := n - 1
		if out := testns.NFT(t, ns, "get", "element", "ip", "busy", "s", fmt.Sprintf("{ 10.9.%d.%d }", byte(last>>8), byte(last))); !strings.Contains(out, "10.9.") {
			t.Errorf("the other program's table lost its last element:\n%s", out)
		}
	}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
