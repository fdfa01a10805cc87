package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// calicoKey is where Calico's etcdv3 datastore keeps a resource.
func calicoKey(plural, name string) string {
	return "/calico/resources/v3/projectcalico.org/" + plural + "/" + name
}

// fleetHEP is a HostEndpoint as calicoctl stores it in etcd.
func fleetHEP(name, node, role string) string {
	return fmt.Sprintf(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":%q,"uid":"0b9f4e7c-%s","creationTimestamp":"2026-12-06T10:00:00Z","labels":{"role":%q}},"spec":{"node":%q,"interfaceName":"eth0","expectedIPs":[]}}`,
		name, node, role, node)
}

// fleetGNP is a GlobalNetworkPolicy in the default tier, as calicoctl
// stores it (the name prefixed with the tier), allowing TCP to ports on
// the endpoints selector picks.
func fleetGNP(name, selector string, ports ...int) string {
	p, _ := json.Marshal(ports)
	return fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.%s","uid":"5d1c","creationTimestamp":"2026-12-06T10:00:00Z"},"spec":{"tier":"default","order":100,"selector":%q,"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":%s}}],"egress":[{"action":"Allow"}],"types":["Ingress","Egress"]}}`,
		name, selector, p)
}

// fleetNode is one host of the fleet: a namespace with eth0 towards the
// client namespace, its own configuration, state and run directories, and
// its agent.
type fleetNode struct {
	name, ns, addr     string
	cfg, state, run    string
	agent              *runningAgent
	endpoints, ttlFlag []string
}

func (n *fleetNode) dirs() []string {
	return []string{"-c", n.cfg, "--netns", n.ns, "--state-dir", n.state, "--run-dir", n.run}
}

func (n *fleetNode) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--state-dir", n.state, "--run-dir", n.run, "--node", n.name,
		"--etcd-endpoints", strings.Join(n.endpoints, ",")}, n.ttlFlag...)
	n.agent = startAgent(t, n.ns, n.cfg, args...)
	n.agent.expect(t, "READY=1")
	// What it tells systemd from then on is read and dropped, as systemd
	// would: a full socket would hold the agent up.
	go func(c *net.UnixConn) {
		buf := make([]byte, 4096)
		for {
			c.SetReadDeadline(time.Time{})
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}(n.agent.notify)
}

// status is hostwall status for the node, as JSON.
func (n *fleetNode) status(t *testing.T) nodeStatus {
	t.Helper()
	r := hostwall(t, "", append([]string{"status", "--json"}, n.dirs()...)...)
	var s nodeStatus
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status of %s: %v\n%s%s", n.name, err, r.stdout, r.stderr)
	}
	return s
}

type nodeStatus struct {
	Generation int `json:"current_generation"`
	LastApply  *struct {
		Result, Error, Why string
	} `json:"last_apply"`
	Datastore *struct {
		Revision, Applied, Synced int64
		SyncedAt                  time.Time `json:"synced_at"`
		Error                     string
		Relists                   int
	}
}

// open reports whether a TCP connection from ns to addr is accepted within
// timeout (a dropped SYN times out).
func open(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	return reached(t, ns, "dialing "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestEtcdFleet: a three-member etcd cluster (Debian's etcd-server) on
// loopback and two agents, node-a and node-b, each enforcing its share of
// the datastore in a namespace of its own. Policies written with etcdctl
// in Calico's format are enforced, by real packets, on the node their
// selector picks and not on the other; the agents ride out a member's
// death, the whole cluster's stop, a partition during which etcd
// compacts, a bad resource, a restart with etcd down; fleet status shows
// both, and a dead agent's entry expires.
func TestEtcdFleet(t *testing.T) {
	testns.Tool(t, "etcd")
	etcd := testns.Etcd(t, 3)
	cli := testns.New(t)
	put := func(plural, name, value string) {
		t.Helper()
		etcd.Ctl("put", calicoKey(plural, name), value)
	}
	// node-a reaches etcd through proxies the test can cut: a partition of
	// that host alone.
	var proxies []*testns.Proxy
	var viaProxies []string
	for _, ep := range etcd.Endpoints() {
		p := testns.CutProxy(t, strings.TrimPrefix(ep, "http://"))
		proxies = append(proxies, p)
		viaProxies = append(viaProxies, "http://"+p.Addr)
	}
	nodes := []*fleetNode{
		{name: "node-a", addr: "10.210.1.2", endpoints: viaProxies},
		{name: "node-b", addr: "10.210.2.2", endpoints: etcd.Endpoints()},
	}
	for i, n := range nodes {
		n.ns, n.cfg, n.state, n.run = testns.New(t), t.TempDir(), t.TempDir(), t.TempDir()
		testns.Veth(t, cli, fmt.Sprintf("c%d", i), fmt.Sprintf("10.210.%d.1/24", i+1), n.ns, "eth0", n.addr+"/24")
		for _, port := range []int{8080, 8081, 8082, 8083} {
			serveTCP(t, n.ns, port)
		}
		n.ttlFlag = []string{"--etcd-status-ttl", "3s"}
	}
	a, b := nodes[0], nodes[1]
	// node-a's own files add a local rule to what the datastore says.
	os.WriteFile(filepath.Join(a.cfg, "local.hcl"), []byte(localOps), 0o644)
	put("hostendpoints", "node-a-eth0", fleetHEP("node-a-eth0", "node-a", "web"))
	put("hostendpoints", "node-b-eth0", fleetHEP("node-b-eth0", "node-b", "db"))
	put("globalnetworkpolicies", "default.web", fleetGNP("web", "role == 'web'", 8080))
	for _, n := range nodes {
		n.start(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("--- %s's agent:\n%s", n.name, n.agent.log)
			}
		}
	})
	// expect checks, with real packets, which ports each node lets in.
	expect := func(what string, want map[*fleetNode][]int) {
		t.Helper()
		for _, n := range nodes {
			for _, port := range []int{8080, 8081, 8082, 8083} {
				if got := open(t, cli, fmt.Sprintf("%s:%d", n.addr, port), 300*time.Millisecond); got != slices.Contains(want[n], port) {
					t.Errorf("%s: %s:%d connects %v, want %v", what, n.name, port, got, !got)
				}
			}
		}
	}
	// awaitOpen waits until port opens on n (a write converging).
	awaitOpen := func(n *fleetNode, port int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		addr := fmt.Sprintf("%s:%d", n.addr, port)
		await(t, within, fmt.Sprintf("%s opens %d", n.name, port), func() bool { return open(t, cli, addr, 50*time.Millisecond) })
		return time.Since(start)
	}
	expect("at start", map[*fleetNode][]int{a: {8080, 8083}, b: {}})
	for _, n := range nodes {
		planEmpty(t, n)
	}

	// Latency: a write that opens a port on node-a, alternating 8081 and
	// 8082, from etcdctl put to the first connection through.
	var took []time.Duration
	for i := range 50 {
		port := 8081 + i%2
		start := time.Now()
		put("globalnetworkpolicies", "default.lat", fleetGNP("lat", "role == 'web'", port))
		awaitOpen(a, port, 10*time.Second)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("etcdctl put to enforced by packets on the selected node, %d writes: p50 %s, p99 %s, max %s",
		len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)*99/100].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	expect("after the writes", map[*fleetNode][]int{a: {8080, 8082, 8083}, b: {}})
	// The CLI against the live datastore, named: node-b holds what it says.
	if r := hostwall(t, "", append([]string{"plan", "--refresh", "--detailed-exitcode", "--node", b.name, "--datastore", "etcdv3",
		"--etcd-endpoints", strings.Join(etcd.Endpoints(), ",")}, b.dirs()...)...); r.code != 0 {
		t.Errorf("plan --datastore etcdv3 on node-b: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// fleet status: both current, at the revision of the last write.
	fleet := fleetStatus(t, etcd.Endpoints())
	for _, n := range nodes {
		h := fleet.host(n.name)
		if h == nil || h.State != "current" || h.Status == nil || h.Status.Revision < fleet.Revision {
			t.Errorf("fleet status: %s is %+v; want current at revision %d", n.name, h, fleet.Revision)
		}
	}

	// One member killed: nothing changes, and writes still converge.
	etcd.Kill(0)
	etcd.AwaitHealthy() // a leader among the two left
	put("globalnetworkpolicies", "default.db", fleetGNP("db", "role == 'db'", 8081))
	awaitOpen(b, 8081, 10*time.Second)
	expect("one member killed", map[*fleetNode][]int{a: {8080, 8082, 8083}, b: {8081}})

	// Every member stopped: both keep enforcing; status says stale.
	etcd.Kill(1)
	etcd.Kill(2)
	for _, n := range nodes {
		await(t, 20*time.Second, n.name+"'s status says the datastore is stale", func() bool {
			d := n.status(t).Datastore
			return d != nil && (d.Error != "" || time.Since(d.SyncedAt) > 5*time.Second)
		})
		r := hostwall(t, "", append([]string{"status"}, n.dirs()...)...)
		if !strings.Contains(r.stdout, "STALE") {
			t.Errorf("%s's status does not say STALE with etcd down:\n%s", n.name, r.stdout)
		}
		m := hostwall(t, "", append([]string{"status", "--format", "prometheus"}, n.dirs()...)...)
		if sample(m.stdout, "hostwall_datastore_up") != 0 || sample(m.stdout, "hostwall_datastore_synced_timestamp_seconds") <= 0 {
			t.Errorf("%s's metrics with etcd down:\n%s", n.name, grepLines(m.stdout, "hostwall_datastore"))
		}
	}
	expect("etcd stopped", map[*fleetNode][]int{a: {8080, 8082, 8083}, b: {8081}})
	// The files still apply meanwhile, with what the datastore last said.
	os.WriteFile(filepath.Join(a.cfg, "local.hcl"), []byte(strings.ReplaceAll(localOps, "8083", "8081, 8083")), 0o644)
	awaitOpen(a, 8081, 10*time.Second)
	expect("a file changed while etcd is down", map[*fleetNode][]int{a: {8080, 8081, 8082, 8083}, b: {8081}})

	// Started again: a change converges on both.
	for i := range 3 {
		etcd.Start(i)
	}
	etcd.AwaitHealthy()
	put("globalnetworkpolicies", "default.web", fleetGNP("web", "role == 'web' || role == 'db'", 8080))
	awaitOpen(b, 8080, 20*time.Second)
	os.WriteFile(filepath.Join(a.cfg, "local.hcl"), []byte(localOps), 0o644)
	await(t, 10*time.Second, "node-a closes 8081 again", func() bool { return !open(t, cli, a.addr+":8081", 50*time.Millisecond) })
	expect("etcd back", map[*fleetNode][]int{a: {8080, 8082, 8083}, b: {8080, 8081}})
	for _, n := range nodes {
		await(t, 10*time.Second, n.name+" in sync again", func() bool {
			d := n.status(t).Datastore
			return d != nil && d.Error == "" && time.Since(d.SyncedAt) < 5*time.Second
		})
	}

	// node-a cut off (a partition): writes go on and etcd compacts them
	// away; mended, node-a's watch falls behind the compaction, lists the
	// datastore again, and converges.
	for _, p := range proxies {
		p.Cut()
	}
	put("globalnetworkpolicies", "default.lat", fleetGNP("lat", "role == 'web'", 8081))
	put("globalnetworkpolicies", "default.tmp", fleetGNP("tmp", "role == 'db'", 8082))
	etcd.Ctl("del", calicoKey("globalnetworkpolicies", "default.tmp"))
	etcd.Ctl("compact", fmt.Sprint(etcd.Revision()))
	await(t, 10*time.Second, "node-b converges while node-a is cut off", func() bool { return !open(t, cli, b.addr+":8082", 50*time.Millisecond) })
	if open(t, cli, a.addr+":8081", 300*time.Millisecond) {
		t.Errorf("node-a follows a write while cut off from etcd")
	}
	for _, p := range proxies {
		p.Mend()
	}
	awaitOpen(a, 8081, 60*time.Second)
	if d := a.status(t).Datastore; d == nil || d.Relists < 1 {
		t.Errorf("node-a converged after a compaction without listing again: %+v", d)
	}
	expect("after the partition", map[*fleetNode][]int{a: {8080, 8081, 8083}, b: {8080, 8081}})
	for _, n := range nodes {
		planEmpty(t, n)
	}

	// A bad resource: refused by key and field; the last good generation
	// stays in force on both.
	before := []int{a.status(t).Generation, b.status(t).Generation}
	bad := `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.bad"},"spec":{"selector":"all()","ingress":[{"action":"Allowed"}]}}`
	put("globalnetworkpolicies", "default.bad", bad)
	for i, n := range nodes {
		await(t, 10*time.Second, n.name+" refuses the bad resource", func() bool {
			s := n.status(t)
			return s.LastApply != nil && s.LastApply.Result == "invalid"
		})
		if s := n.status(t); s.Generation != before[i] {
			t.Errorf("%s: generation %d in force after a bad resource; want %d still", n.name, s.Generation, before[i])
		}
		n.agent.logged(t, time.Second, "etcd:"+calicoKey("globalnetworkpolicies", "default.bad")+":1:")
	}
	fleet = fleetStatus(t, etcd.Endpoints())
	if h := fleet.host("node-a"); h == nil || h.State != "failing" || !strings.Contains(h.Status.Error, "default.bad") || !strings.Contains(h.Status.Error, `"Allowed"`) {
		t.Errorf("fleet status with a bad resource: node-a is %+v", h)
	}
	expect("a bad resource", map[*fleetNode][]int{a: {8080, 8081, 8083}, b: {8080, 8081}})
	r := hostwall(t, "", append([]string{"validate", "--etcd-endpoints", strings.Join(etcd.Endpoints(), ",")}, a.dirs()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "globalnetworkpolicies/default.bad:1:") {
		t.Errorf("validate --etcd-endpoints with a bad resource: exit %d\n%s", r.code, r.stderr)
	}
	etcd.Ctl("del", calicoKey("globalnetworkpolicies", "default.bad"))
	for _, n := range nodes {
		await(t, 10*time.Second, n.name+" applies again", func() bool {
			s := n.status(t)
			return s.LastApply != nil && s.LastApply.Result == "applied"
		})
	}

	// A name in both the files and the datastore is an error naming both.
	dup := filepath.Join(b.cfg, "dup.yaml")
	os.WriteFile(dup, []byte("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: web\nspec:\n  selector: all()\n"), 0o644)
	r = hostwall(t, "", append([]string{"validate", "--etcd-endpoints", strings.Join(etcd.Endpoints(), ",")}, b.dirs()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, dup+":4") || !strings.Contains(r.stderr, calicoKey("globalnetworkpolicies", "default.web")) {
		t.Errorf("a policy in both the files and etcd: exit %d\n%s", r.code, r.stderr)
	}
	os.Remove(dup)

	// node-a restarted while etcd is down: it starts from what its last
	// generation read.
	gen := a.status(t).Generation
	syscall.Kill(-a.agent.cmd.Process.Pid, syscall.SIGTERM)
	a.agent.cmd.Wait()
	for i := range 3 {
		etcd.Kill(i)
	}
	a.start(t)
	if s := a.status(t); s.Generation != gen {
		t.Errorf("node-a restarted with etcd down: generation %d; want %d", s.Generation, gen)
	}
	expect("node-a restarted with etcd down", map[*fleetNode][]int{a: {8080, 8081, 8083}, b: {8080, 8081}})
	for i := range 3 {
		etcd.Start(i)
	}
	etcd.AwaitHealthy()

	// A killed agent's status key expires with its lease: node-b is gone.
	await(t, 20*time.Second, "node-a reports again", func() bool {
		h := fleetStatus(t, etcd.Endpoints()).host("node-a")
		return h != nil && h.State == "current"
	})
	// A rollback by the CLI: node-b enforces an older revision, and fleet
	// status says it is behind; the next write brings it back.
	if r := hostwall(t, "", append([]string{"rollback", "--auto-approve"}, b.dirs()...)...); r.code != 0 {
		t.Fatalf("rollback on node-b: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	await(t, 10*time.Second, "node-b shows behind after a rollback", func() bool {
		h := fleetStatus(t, etcd.Endpoints()).host("node-b")
		return h != nil && h.State == "behind"
	})
	put("globalnetworkpolicies", "default.db", fleetGNP("db", "role == 'db'", 8082))
	awaitOpen(b, 8082, 10*time.Second)
	await(t, 10*time.Second, "node-b current again", func() bool {
		h := fleetStatus(t, etcd.Endpoints()).host("node-b")
		return h != nil && h.State == "current"
	})
	syscall.Kill(-b.agent.cmd.Process.Pid, syscall.SIGKILL)
	b.agent.cmd.Wait()
	await(t, 20*time.Second, "node-b's entry expires", func() bool {
		h := fleetStatus(t, etcd.Endpoints()).host("node-b")
		return h != nil && h.State == "gone" && h.Status == nil
	})
	out := hostwall(t, "", "fleet", "status", "--etcd-endpoints", strings.Join(etcd.Endpoints(), ","))
	if out.code != 1 || !strings.Contains(out.stdout, "node-b  GONE") || !strings.Contains(out.stdout, "node-a  CURRENT") {
		t.Errorf("fleet status (exit %d):\n%s%s", out.code, out.stdout, out.stderr)
	}
}

const localOps = `
policy "local-ops" {
  selector = "role == 'web'"
  order    = 50
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [8083] }
  }
}
`

// planEmpty checks that the kernel holds exactly what the node's files and
// the datastore say (every e2e apply ends so).
func planEmpty(t *testing.T, n *fleetNode) {
	t.Helper()
	// No --node and no datastore flags, as an operator types it: the
	// generation in force says both.
	if r := hostwall(t, "", append([]string{"plan", "--refresh", "--detailed-exitcode"}, n.dirs()...)...); r.code != 0 {
		t.Errorf("%s: plan --refresh finds the kernel different (exit %d):\n%s%s", n.name, r.code, r.stdout, r.stderr)
	}
}

type fleetView struct {
	Revision int64
	Hosts    []struct {
		Node   string
		State  string
		Status *struct {
			Revision int64
			Error    string
		}
	}
}

func (f *fleetView) host(node string) *struct {
	Node   string
	State  string
	Status *struct {
		Revision int64
		Error    string
	}
} {
	for i := range f.Hosts {
		if f.Hosts[i].Node == node {
			return &f.Hosts[i]
		}
	}
	return nil
}

func fleetStatus(t *testing.T, endpoints []string) *fleetView {
	t.Helper()
	r := hostwall(t, "", "fleet", "status", "--json", "--etcd-endpoints", strings.Join(endpoints, ","))
	var f fleetView
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("fleet status: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return &f
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFleetsReadmeExamples: the README's "Fleets" section's two ways, the
// HCL file for Ansible and Puppet and the Calico resources for calicoctl,
// are valid for each of the three hosts and mean the same: explain lets
// the web hosts serve 80 and the database 5432 to the web hosts alone.
func TestFleetsReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start, end := strings.Index(readme, "\n## Fleets"), strings.Index(readme, "\n## Configuration reference")
	if start < 0 || end < start {
		t.Fatal("no Fleets section in README.md")
	}
	blocks := map[string]string{}
	for _, part := range strings.Split(readme[start:end], "```")[1:] {
		lang, body, _ := strings.Cut(part, "\n")
		if lang == "hcl" || lang == "yaml" {
			blocks[lang] = body
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("want an hcl and a yaml block in Fleets, found %d", len(blocks))
	}
	for lang, body := range blocks {
		dir := writeConfig(t, map[string]string{"fleet." + lang: body})
		for _, c := range []struct {
			host, src string
			port      int
			allow     bool
		}{
			{"web-1", "198.51.100.7", 443, true}, {"web-2", "198.51.100.7", 80, true}, {"web-1", "198.51.100.7", 5432, false},
			{"db-1", "10.0.0.12", 5432, true}, {"db-1", "198.51.100.7", 5432, false}, {"db-1", "198.51.100.7", 80, false},
		} {
			r := hostwall(t, "", "explain", "-c", dir, "--insecure-skip-perms", "--host-name", c.host, "--iface", "eth0", "--in",
				"--proto", "tcp", "--src", c.src, "--dport", fmt.Sprint(c.port), "--json")
			var ex struct{ Verdict string }
			if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
				t.Fatalf("%s: explain on %s: %v\n%s%s", lang, c.host, err, r.stdout, r.stderr)
			}
			if (ex.Verdict == "allow") != c.allow {
				t.Errorf("%s: %s tcp/%d from %s: %s, want allowed %v", lang, c.host, c.port, c.src, ex.Verdict, c.allow)
			}
		}
	}
}

// TestCalicoEnv: calicoctl's ETCD_ENDPOINTS exported in an operator's
// shell does not make hostwall read a datastore (files-only hosts plan
// their files), nor does its DATASTORE_TYPE of another datastore, and its
// NODENAME gives way to --host-name; conflicting flags are refused.
func TestCalicoEnv(t *testing.T) {
	dir := writeConfig(t, map[string]string{"a.hcl": "host_endpoint \"eth0\" { interface = \"eth0\" }\n"})
	env := []string{"ETCD_ENDPOINTS=http://127.0.0.1:1"}
	if r := hostwallEnv(t, "", env, "validate", "-c", dir, "--insecure-skip-perms"); r.code != 0 {
		t.Errorf("validate with ETCD_ENDPOINTS alone: exit %d\n%s", r.code, r.stderr)
	}
	// calicoctl's other datastore, as a Kubernetes node's environment has
	// it: not hostwall's, not an error either.
	if r := hostwallEnv(t, "", append(env, "DATASTORE_TYPE=kubernetes", "NODENAME=other"), "validate", "-c", dir, "--insecure-skip-perms", "--host-name", "h1"); r.code != 0 || !strings.Contains(r.stdout, `for host "h1"`) {
		t.Errorf("DATASTORE_TYPE=kubernetes, NODENAME=other, --host-name h1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwallEnv(t, "", []string{"HOSTWALL_DATASTORE=kubernetes"}, "validate", "-c", dir, "--insecure-skip-perms"); r.code == 0 || !strings.Contains(r.stderr, `--datastore "kubernetes"`) {
		t.Errorf("HOSTWALL_DATASTORE=kubernetes: exit %d\n%s", r.code, r.stderr)
	}
	if r := hostwallEnv(t, "", nil, "validate", "-c", dir, "--insecure-skip-perms", "--node", "a", "--host-name", "b"); r.code == 0 || !strings.Contains(r.stderr, "name this host twice") {
		t.Errorf("--node a --host-name b: exit %d\n%s", r.code, r.stderr)
	}
	if r := hostwallEnv(t, "", nil, "validate", "-c", dir, "--insecure-skip-perms", "--etcd-endpoints", "127.0.0.1:2379"); r.code == 0 || !strings.Contains(r.stderr, "give a URL") {
		t.Errorf("an endpoint without a scheme: exit %d\n%s", r.code, r.stderr)
	}
}
