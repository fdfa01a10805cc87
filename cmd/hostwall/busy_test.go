package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hostwall/hostwall/internal/churn"
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
	// The other program commits through the library, 200 times a second:
	// nft, which reads hostwall's 20,000-network set before each command,
	// is too slow to be busy (and the test's check below too uncertain).
	ctx, cancel := context.WithCancel(context.Background())
	var commits atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := churn.Run(ctx, ns, 200, func() { commits.Add(1) })
		done <- err
	}()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	defer stop()
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
	if err := stop(); err != nil {
		t.Errorf("the other program's transactions on its own table: %v", err)
	}
	if table := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); !strings.Contains(table, "11.0.0.0/30") {
		t.Error("the list's change is not in the kernel")
	}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
