package datastore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/loader"
)

func open(t *testing.T, eps []string) (*clientv3.Client, Config) {
	t.Helper()
	c := Config{Endpoints: eps}
	cli, err := Open(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, c
}

func hep(name string) string {
	return `{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"` + name + `"},"spec":{"node":"n1","interfaceName":"eth0"}}`
}

// keys are a snapshot's keys, joined.
func keys(s *Snapshot) string {
	var out []string
	for _, src := range s.Sources {
		out = append(out, strings.TrimPrefix(src.Path, loader.DatastorePrefix+loader.CalicoPrefix))
	}
	return strings.Join(out, " ")
}

// await waits for cond, polling.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestListAndFollow: against a real etcd, List reads the kinds hostwall
// reads (not the others, nor hostwall's status keys) at one revision; a
// Follower then sees every put and delete, signals each change, and,
// seeded at a revision etcd has compacted away, lists again in full.
func TestListAndFollow(t *testing.T) {
	etcd := testns.Etcd(t, 1)
	cli, c := open(t, etcd.Endpoints())
	ctx := context.Background()
	pfx := loader.CalicoPrefix
	for k, v := range map[string]string{
		pfx + "hostendpoints/h1":                    hep("h1"),
		pfx + "tiers/ops":                           `{"kind":"Tier"}`,
		pfx + "workloadendpoints/ns/pod":            `{}`,
		pfx + "ippools/default":                     `{}`,
		StatusPrefix + "n1":                         `{}`,
		"/calico/resources/v3/projectcalico.orgx/a": `{}`,
	} {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	s, err := List(ctx, cli, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(s); got != "hostendpoints/h1 tiers/ops" {
		t.Errorf("List: %q", got)
	}
	if s.Revision != etcd.Revision() {
		t.Errorf("List at revision %d; etcd is at %d", s.Revision, etcd.Revision())
	}

	f := NewFollower(cli, c, zap.NewNop(), nil)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go f.Run(fctx)
	<-f.Ready()
	<-f.Changes() // the list
	cli.Put(ctx, pfx+"hostendpoints/h2", hep("h2"))
	cli.Delete(ctx, pfx+"tiers/ops")
	cli.Put(ctx, pfx+"ippools/other", `{}`) // not hostwall's: no change
	await(t, "the follower sees the put and the delete", func() bool {
		s, _ := f.Snapshot()
		return keys(s) == "hostendpoints/h1 hostendpoints/h2"
	})
	select {
	case <-f.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled")
	}
	await(t, "the follower is confirmed current", func() bool {
		st := f.State()
		return st.Revision == etcd.Revision() && time.Since(st.Synced) < time.Second
	})

	// Seeded at a compacted revision: it lists at start, as ever (a seed is
	// never watched from: etcd may have been rebuilt since).
	old := FromRecord(c, 2, nil)
	etcd.Ctl("compact", "5")
	g := NewFollower(cli, c, zap.NewNop(), old)
	if s, err := g.Snapshot(); err != nil || s.Revision != 2 || len(s.Sources) != 0 {
		t.Errorf("the seed serves before etcd answers: %+v, %v", s, err)
	}
	gctx, gstop := context.WithCancel(ctx)
	defer gstop()
	go g.Run(gctx)
	await(t, "a follower seeded at a compacted revision lists", func() bool {
		s, _ := g.Snapshot()
		return keys(s) == "hostendpoints/h1 hostendpoints/h2" && g.State().Relists == 0
	})
}

// TestFollowerNotListed: with etcd unreachable and nothing recorded, the
// follower has no snapshot to give (the files alone would drop the
// datastore's policies), and says why.
func TestFollowerNotListed(t *testing.T) {
	cli, c := open(t, []string{"http://127.0.0.1:1"})
	defer func(d time.Duration) { ListTimeout = d }(ListTimeout)
	ListTimeout = 300 * time.Millisecond
	f := NewFollower(cli, c, zap.NewNop(), nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go f.Run(ctx)
	await(t, "the follower records the failure", func() bool { return f.State().Err != nil })
	if _, err := f.Snapshot(); err == nil || !strings.Contains(err.Error(), ErrNotListed.Error()) {
		t.Errorf("Snapshot without a list: %v", err)
	}
}

// TestReporterAndFleet: an agent's status key lives under its lease:
// ReadFleet shows it, and the hosts host endpoints name with no agent
// as gone; when the reporter stops its key goes at once.
func TestReporterAndFleet(t *testing.T) {
	etcd := testns.Etcd(t, 1)
	cli, c := open(t, etcd.Endpoints())
	ctx := context.Background()
	cli.Put(ctx, loader.CalicoPrefix+"hostendpoints/h1", hep("h1"))
	cli.Put(ctx, loader.CalicoPrefix+"hostendpoints/h2", strings.ReplaceAll(hep("h2"), "n1", "n2"))
	rev := etcd.Revision()
	r := NewReporter(cli, "n1", zap.NewNop())
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	r.Publish(NodeStatus{Node: "n1", Generation: 3, Revision: rev, Result: "applied"})
	var f *Fleet
	await(t, "the status key is written", func() bool {
		var err error
		f, err = ReadFleet(ctx, cli, c)
		return err == nil && len(f.Hosts) == 2 && f.Hosts[0].Status != nil
	})
	if f.Revision != rev || f.Hosts[0].State != "current" || f.Hosts[1].Node != "n2" || f.Hosts[1].State != "gone" {
		t.Errorf("fleet: revision %d (want %d), hosts %+v", f.Revision, rev, f.Hosts)
	}
	lease, _ := cli.Get(ctx, StatusPrefix+"n1")
	if len(lease.Kvs) != 1 || lease.Kvs[0].Lease == 0 {
		t.Errorf("the status key is not under a lease: %+v", lease.Kvs)
	}
	// A deletion after the newest live key: a host that has not seen it
	// is behind, once a host that has seen it tells its revision.
	cli.Put(ctx, "/elsewhere/x", "1") // revisions between
	beforeDelete := etcd.Revision()
	cli.Delete(ctx, loader.CalicoPrefix+"hostendpoints/h2")
	cli.Put(ctx, StatusPrefix+"n8", fmt.Sprintf(`{"node":"n8","revision":%d,"result":"applied"}`, beforeDelete))
	r.Publish(NodeStatus{Node: "n1", Generation: 3, Revision: rev, Result: "applied"})
	f, _ = ReadFleet(ctx, cli, c)
	if len(f.Hosts) != 2 || f.Hosts[0].State != "behind" || f.Hosts[1].State != "behind" || f.Revision != beforeDelete+1 {
		t.Errorf("after a deletion no host has seen: newest change %d (want %d), %+v", f.Revision, beforeDelete+1, f.Hosts)
	}
	r.Publish(NodeStatus{Node: "n1", Generation: 4, Revision: etcd.Revision(), Result: "applied"})
	cli.Put(ctx, StatusPrefix+"n9", `{"node":"n9","revision":`+"1"+`,"result":"applied"}`)
	await(t, "n8 and n9 are behind", func() bool {
		f, _ = ReadFleet(ctx, cli, c)
		return len(f.Hosts) == 3 && f.Hosts[0].State == "current" && f.Hosts[1].State == "behind" && f.Hosts[2].State == "behind"
	})
	if f.Revision != beforeDelete+1 {
		t.Errorf("newest change at %d; want the deletion's, %d", f.Revision, beforeDelete+1)
	}
	stop()
	<-done
	if g, _ := cli.Get(ctx, StatusPrefix+"n1"); len(g.Kvs) != 0 {
		t.Error("the status key outlives its reporter")
	}
}

// TestTLSAndRBAC: against a real etcd that takes clients by their TLS
// certificates, with auth on and each host granted what docs/fleet.md
// says (read the Calico prefix; read and write its own status key), a
// host reads the datastore, follows it and keeps its status key — and can
// neither write another host's status key nor a Calico resource; a
// client without a certificate is refused.
func TestTLSAndRBAC(t *testing.T) {
	etcd := testns.EtcdTLS(t, 1)
	// The grants of docs/fleet.md, "Access control".
	for _, args := range [][]string{
		{"user", "add", "root", "--no-password"}, {"user", "grant-role", "root", "root"},
		{"role", "add", "hostwall-read"},
		{"role", "grant-permission", "hostwall-read", "read", loader.CalicoPrefix, "--prefix"},
		{"user", "add", "node-a", "--no-password"},
		{"role", "add", "hostwall-status-node-a"},
		{"role", "grant-permission", "hostwall-status-node-a", "readwrite", StatusPrefix + "node-a"},
		{"user", "grant-role", "node-a", "hostwall-read"},
		{"user", "grant-role", "node-a", "hostwall-status-node-a"},
		{"put", loader.CalicoPrefix + "hostendpoints/h1", hep("h1")},
		{"auth", "enable"},
	} {
		etcd.Ctl(args...)
	}
	cert, key := etcd.TLS.Client("node-a")
	c := Config{Endpoints: etcd.Endpoints(), CA: etcd.TLS.CA, Cert: cert, Key: key}
	cli, err := Open(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	s, err := List(ctx, cli, c)
	if err != nil || keys(s) != "hostendpoints/h1" {
		t.Fatalf("List as node-a: %v, %v", s, err)
	}
	f := NewFollower(cli, c, zap.NewNop(), nil)
	go f.Run(ctx)
	<-f.Ready()
	etcd.Ctl("put", loader.CalicoPrefix+"hostendpoints/h2", hep("h2"))
	await(t, "node-a follows a put", func() bool { s, _ := f.Snapshot(); return keys(s) == "hostendpoints/h1 hostendpoints/h2" })
	r := NewReporter(cli, "node-a", zap.NewNop())
	go r.Run(ctx)
	r.Publish(NodeStatus{Node: "node-a", Result: "applied"})
	await(t, "node-a's status key is written", func() bool { return strings.Contains(etcd.Ctl("get", StatusPrefix+"node-a"), `"node":"node-a"`) })
	for _, k := range []string{StatusPrefix + "node-b", loader.CalicoPrefix + "hostendpoints/h3"} {
		if _, err := cli.Put(ctx, k, "{}"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("node-a writes %s: %v", k, err)
		}
	}
	noCert := Config{Endpoints: etcd.Endpoints(), CA: etcd.TLS.CA}
	bare, err := Open(noCert, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	bctx, bstop := context.WithTimeout(ctx, 3*time.Second)
	defer bstop()
	if _, err := List(bctx, bare, noCert); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without a certificate: %v; want it refused, saying why", err)
	}
	if _, err := Open(Config{Endpoints: etcd.Endpoints(), CA: "/etc/passwd"}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}

// TestRebuiltDatastore: etcd rebuilt at the same address, its revisions
// starting over below the follower's: the follower sees it went back,
// lists again, and follows the new one's writes.
func TestRebuiltDatastore(t *testing.T) {
	etcd := testns.Etcd(t, 1)
	cli, c := open(t, etcd.Endpoints())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i := range 30 {
		cli.Put(ctx, loader.CalicoPrefix+"tiers/t", fmt.Sprintf(`{"n":%d}`, i))
	}
	f := NewFollower(cli, c, zap.NewNop(), nil)
	go f.Run(ctx)
	<-f.Ready()
	high := f.State().Revision
	etcd.Wipe(0)
	etcd.Start(0)
	etcd.AwaitHealthy()
	etcd.Ctl("put", loader.CalicoPrefix+"hostendpoints/new", hep("new"))
	await(t, "the follower follows the rebuilt etcd", func() bool {
		s, _ := f.Snapshot()
		return keys(s) == "hostendpoints/new" && s.Revision < high
	})
}

// TestRebuiltAheadDatastore: etcd rebuilt under the same identity while a
// follower is cut off from it, and written past the follower's revision
// before the follower is back: the follower lists it again rather than
// resume its watch there (it would wait for ever, or miss what was
// written), and follows it (found by review).
func TestRebuiltAheadDatastore(t *testing.T) {
	etcd := testns.Etcd(t, 1)
	proxy := testns.CutProxy(t, strings.TrimPrefix(etcd.Endpoints()[0], "http://"))
	cli, c := open(t, []string{"http://" + proxy.Addr})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	cli.Put(ctx, loader.CalicoPrefix+"hostendpoints/old", hep("old"))
	f := NewFollower(cli, c, zap.NewNop(), nil)
	go f.Run(ctx)
	<-f.Ready()
	was := f.State().Revision
	proxy.Cut()
	etcd.Wipe(0)
	etcd.Start(0)
	etcd.AwaitHealthy()
	for i := range int(was) + 20 {
		etcd.Ctl("put", "/elsewhere/k", fmt.Sprint(i)) // past the follower's revision
	}
	etcd.Ctl("put", loader.CalicoPrefix+"hostendpoints/new", hep("new"))
	proxy.Mend()
	await(t, "the follower follows the rebuilt etcd", func() bool {
		s, _ := f.Snapshot()
		return keys(s) == "hostendpoints/new"
	})
}
