package main_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// workloadLab is a host namespace with a host interface towards an outside
// namespace and two "containers": A behind a veth whose host side is a
// workload interface (calia1, Calico's naming), B behind a docker0-like
// bridge (its veth enslaved to docker0; what B sends the host arrives on
// docker0). The host routes between A and the outside.
type workloadLab struct{ srv, out, a, b string }

func newWorkloadLab(t *testing.T) workloadLab {
	t.Helper()
	l := workloadLab{srv: testns.New(t), out: testns.New(t), a: testns.New(t), b: testns.New(t)}
	testns.Veth(t, l.out, "o0", "10.210.1.1/24", l.srv, "eth0", "10.210.1.2/24")
	testns.Veth(t, l.a, "eth0", "10.210.2.2/24", l.srv, "calia1", "10.210.2.1/24")
	testns.Run(t, "ip", "-n", l.srv, "link", "add", "docker0", "type", "bridge")
	testns.Run(t, "ip", "-n", l.srv, "addr", "add", "10.210.3.1/24", "dev", "docker0")
	testns.Run(t, "ip", "-n", l.srv, "link", "set", "docker0", "up")
	testns.Run(t, "ip", "link", "add", "vethb1", "netns", l.srv, "type", "veth", "peer", "name", "eth0", "netns", l.b)
	testns.Run(t, "ip", "-n", l.srv, "link", "set", "vethb1", "master", "docker0", "up")
	testns.Run(t, "ip", "-n", l.b, "addr", "add", "10.210.3.2/24", "dev", "eth0")
	testns.Run(t, "ip", "-n", l.b, "link", "set", "eth0", "up")
	testns.Run(t, "ip", "-n", l.a, "route", "add", "default", "via", "10.210.2.1")
	testns.Run(t, "ip", "-n", l.b, "route", "add", "default", "via", "10.210.3.1")
	testns.Run(t, "ip", "-n", l.out, "route", "add", "10.210.2.0/24", "via", "10.210.1.2")
	testns.Run(t, "ip", "-n", l.out, "route", "add", "10.210.3.0/24", "via", "10.210.1.2")
	testns.Run(t, "ip", "netns", "exec", l.srv, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, port := range []int{22, 8080, 8081} {
		serveTCP(t, l.srv, port)
	}
	serveUDPEcho(t, l.srv, ":5353")
	serveTCP(t, l.a, 9090)
	serveTCP(t, l.out, 7070)
	return l
}

// serveUDPEcho answers every datagram to addr in ns with the same bytes,
// until the test ends.
func serveUDPEcho(t *testing.T, ns, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := testns.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpAnswered reports whether a datagram from ns to addr gets its echo: a
// datagram (or its answer) dropped shows as the read timing out.
func udpAnswered(t *testing.T, ns, addr string) bool {
	t.Helper()
	return reached(t, ns, "UDP to "+addr, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("hostwall")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 64))
		return err
	})
}

// reach is one connection of a workload test: from namespace, to address,
// over TCP, or UDP to the echo server.
type reach struct {
	name     string
	from, to string
	udp      bool
}

func (l workloadLab) check(t *testing.T, mode string, want map[reach]bool) {
	t.Helper()
	for r, w := range want {
		got := false
		if r.udp {
			got = udpAnswered(t, r.from, r.to)
		} else {
			got = connects(t, r.from, r.to)
		}
		if got != w {
			t.Errorf("%s: %s: reached=%v, want %v", mode, r.name, got, w)
		}
	}
}

const workloadHostPolicy = `
host_endpoint "all" {
  interface = "*"
  labels    = { role = "host" }
}
policy "host" {
  selector = "role == 'host'"
  ingress {
    action   = "allow"
    protocol = "tcp"
    source { nets = ["10.210.2.0/24"] }
    destination { ports = [8080] }
  }
  ingress {
    action   = "allow"
    protocol = "udp"
    source { nets = ["10.210.2.0/24"] }
    destination { ports = [5353] }
  }
  egress { action = "deny" }
}
`

// TestWorkloadsToHost: containers reaching the host, in each
// to_host_action and without workload interfaces, against a wildcard host
// endpoint that allows tcp/8080 and udp/5353 from container A's network
// and denies everything the host sends. Every apply ends with an empty
// plan --refresh (hostwall does that check).
func TestWorkloadsToHost(t *testing.T) {
	l := newWorkloadLab(t)
	a, b, srv, out := l.a, l.b, l.srv, l.out
	var (
		aWeb    = reach{"A to the host's tcp/8080", a, "10.210.2.1:8080", false}
		aDNS    = reach{"A to the host's udp/5353", a, "10.210.2.1:5353", true}
		aOther  = reach{"A to the host's tcp/8081", a, "10.210.2.1:8081", false}
		aSSH    = reach{"A to the host's tcp/22 (failsafe on host endpoints)", a, "10.210.2.1:22", false}
		bWeb    = reach{"B (through docker0) to the host's tcp/8080", b, "10.210.3.1:8080", false}
		hostToA = reach{"the host to A's tcp/9090", srv, "10.210.2.2:9090", false}
		routed  = reach{"A through the host to the outside's tcp/7070", a, "10.210.1.1:7070", false}
		outWeb  = reach{"the outside to the host's tcp/8080", out, "10.210.1.2:8080", false}
	)
	for _, m := range []struct {
		mode, block string
		want        map[reach]bool
		explains    string // the deciding step explain gives for A to tcp/8081
	}{
		{"no workload interfaces", "", map[reach]bool{aWeb: true, aDNS: true, aOther: false, aSSH: true, bWeb: false, hostToA: false, routed: true, outWeb: false},
			"end of tier"},
		{"drop", `workloads {
  interface_prefixes = ["cali", "docker"]
}`, map[reach]bool{aWeb: false, aDNS: false, aOther: false, aSSH: false, bWeb: false, hostToA: true, routed: true, outWeb: false},
			"deny: workload to host: calia1 is a workload interface (prefix \"cali\"); to_host_action drop"},
		{"accept", `workloads {
  interface_prefixes = ["cali", "docker"]
  to_host_action     = "accept"
}`, map[reach]bool{aWeb: true, aDNS: true, aOther: true, aSSH: true, bWeb: true, hostToA: true, routed: true, outWeb: false},
			"allow: workload to host: calia1 is a workload interface (prefix \"cali\"); to_host_action accept"},
		{"return", `workloads {
  interface_prefixes = ["cali", "docker"]
  to_host_action     = "return"
}`, map[reach]bool{aWeb: true, aDNS: true, aOther: false, aSSH: true, bWeb: false, hostToA: true, routed: true, outWeb: false},
			"deny: end of tier \"default\""},
	} {
		dir := writeConfig(t, map[string]string{"host.hcl": workloadHostPolicy, "workloads.hcl": m.block})
		args := []string{"-c", dir, "--netns", srv, "--host-name", "srv"}
		if m.block != "" {
			// plan shows the setting before anything is applied.
			r := hostwall(t, "", append([]string{"plan"}, args...)...)
			if !strings.Contains(r.stdout, "chain workload-to-host") || !strings.Contains(r.stdout, "(to_host_action "+m.mode+")") {
				t.Errorf("%s: the plan does not show the workload setting:\n%s%s", m.mode, r.stdout, r.stderr)
			}
		}
		if r := hostwall(t, "", append([]string{"apply", "--auto-approve"}, args...)...); r.code != 0 {
			t.Fatalf("%s: apply exited %d:\n%s%s", m.mode, r.code, r.stdout, r.stderr)
		}
		l.check(t, m.mode, m.want)
		r := hostwall(t, "", append([]string{"explain", "--iface", "calia1", "--in", "--proto", "tcp", "--src", "10.210.2.2", "--dst", "10.210.2.1", "--dport", "8081"}, args...)...)
		if !strings.Contains(r.stdout, m.explains) {
			t.Errorf("%s: explain says %q, want %q", m.mode, r.stdout, m.explains)
		}
	}
}

// TestWorkloadLockout: the lockout check judges an SSH session by the
// interface its packets come in by (the route back to the client), not by
// the one holding the address it connected to. A session from a container
// is cut by dropping workload traffic, whichever host address it reached;
// one from the outside to the bridge's address is not. With no session to
// judge (the agent), a prefix that takes in the default route's interface
// is refused too: failsafe ports do not apply to workload interfaces.
func TestWorkloadLockout(t *testing.T) {
	l := newWorkloadLab(t)
	testns.Run(t, "ip", "-n", l.srv, "route", "add", "default", "via", "10.210.1.1")
	wl := func(prefixes, act string) string {
		return "workloads {\n  interface_prefixes = " + prefixes + "\n  to_host_action = \"" + act + "\"\n}\n"
	}
	eth0 := "host_endpoint \"eth0\" { interface = \"eth0\" }\n"
	for _, c := range []struct {
		name, ssh, config, refusal string
	}{
		{"a container, to the address on its own link", "10.210.2.2 50022 10.210.2.1 22", eth0 + wl(`["cali", "docker"]`, "drop"),
			"workload to host: calia1 is a workload interface"},
		{"a container, to the address on eth0", "10.210.2.2 50022 10.210.1.2 22", eth0 + wl(`["cali", "docker"]`, "drop"),
			"set the workload action to accept"},
		{"the outside, to docker0's address", "10.210.1.1 50022 10.210.3.1 22", eth0 + wl(`["cali", "docker"]`, "drop"), ""},
		{"a container, accepted", "10.210.2.2 50022 10.210.1.2 22", eth0 + wl(`["cali", "docker"]`, "accept"), ""},
		{"no session, the uplink a workload interface", "", "host_endpoint \"all\" { interface = \"*\" }\n" + wl(`["cali", "eth"]`, "drop"),
			"makes eth0, an interface this host's default route goes out by, a workload interface"},
		{"no session, the uplink handed to the * endpoint, which lets SSH in from a network it names", "",
			"host_endpoint \"all\" { interface = \"*\" }\nfailsafe {\n  inbound = []\n}\npolicy \"ssh\" {\n  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    source { nets = [\"10.0.0.0/8\"] }\n    destination { ports = [22] }\n  }\n}\n" + wl(`["cali", "eth"]`, "return"), ""},
	} {
		testns.Run(t, "sh", "-c", "ip netns exec "+l.srv+" nft delete table inet hostwall 2>/dev/null || true")
		dir := writeConfig(t, map[string]string{"a.hcl": c.config})
		var env []string
		if c.ssh != "" {
			env = []string{"SSH_CONNECTION=" + c.ssh}
		}
		r := hostwallEnv(t, "", env, "apply", "--auto-approve", "--confirm-timeout", "0", "-c", dir, "--netns", l.srv, "--host-name", "srv")
		switch {
		case c.refusal != "" && (r.code != 1 || !strings.Contains(r.stderr, "REFUSED") || !strings.Contains(r.stderr, c.refusal)):
			t.Errorf("%s: want refused (%q): exit %d\n%s", c.name, c.refusal, r.code, r.stderr)
		case c.refusal != "" && strings.Contains(testns.NFT(t, l.srv, "list", "tables"), "hostwall"):
			t.Errorf("%s: a refused apply changed the kernel", c.name)
		case c.refusal == "" && r.code != 0:
			t.Errorf("%s: exit %d\n%s", c.name, r.code, r.stderr)
		}
	}
	// What the refusals foresaw: the container's session through calia1
	// to eth0's address dies under drop; the outside reaches docker0's
	// address.
	dir := writeConfig(t, map[string]string{"a.hcl": eth0 + wl(`["cali", "docker"]`, "drop")})
	if r := hostwall(t, "", "apply", "--auto-approve", "--confirm-timeout", "0", "-c", dir, "--netns", l.srv, "--host-name", "srv"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	if connects(t, l.a, "10.210.1.2:22") {
		t.Error("the container reaches eth0's address under drop")
	}
	if !connects(t, l.out, "10.210.3.1:22") {
		t.Error("the outside does not reach docker0's address")
	}
}

// TestProtectHostsGuide applies the documents of Calico's "Protect hosts"
// guide (docs.tigera.io/calico/latest/network-policy/hosts/protect-hosts):
// the corpus's host endpoint my-host-eth0 and FelixConfiguration (with
// defaultEndpointToHostAction: Accept), and the guide's k8s-worker policy
// with its two placeholders filled in (management CIDR 10.0.0.2/32, etcd
// 10.0.0.9). They behave as the guide says: SSH from management, ICMP and
// the kubelet port in; etcd, DNS and DHCP out; the rest dropped on eth0;
// the workload on cali* reaches the host.
func TestProtectHostsGuide(t *testing.T) {
	const guidePolicy = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: k8s-worker
spec:
  selector: "role == 'k8s-worker'"
  order: 0
  ingress:
  - action: Allow
    protocol: TCP
    source:
      nets:
      - "10.0.0.2/32"
    destination:
      ports: [22]
  - action: Allow
    protocol: ICMP
  - action: Allow
    protocol: TCP
    destination:
      ports: [10250]
  egress:
  - action: Allow
    protocol: TCP
    destination:
      nets:
      - "10.0.0.9/32"
      ports: [2379]
  - action: Allow
    protocol: UDP
    destination:
      ports: [53, 67]
`
	files := map[string]string{"k8s-worker.yaml": guidePolicy}
	for _, f := range []string{"04-protect-hosts-hostendpoint.yaml", "05-protect-hosts-felixconfiguration.yaml"} {
		data, err := os.ReadFile("../../../shared/corpus/calico/" + f)
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(data)
	}
	dir := writeConfig(t, files)
	srv, out, a := testns.New(t), testns.New(t), testns.New(t)
	testns.Veth(t, out, "o0", "10.0.0.2/24", srv, "eth0", "10.0.0.1/24")
	for _, extra := range []string{"10.0.0.3/24", "10.0.0.9/24"} {
		testns.Run(t, "ip", "-n", out, "addr", "add", extra, "dev", "o0")
	}
	testns.Veth(t, a, "eth0", "10.210.2.2/24", srv, "calia1", "10.210.2.1/24")
	for _, port := range []int{22, 8080, 10250} {
		serveTCP(t, srv, port)
	}
	serveTCP(t, out, 2379)
	serveTCP(t, out, 7070)
	args := []string{"-c", dir, "--netns", srv, "--host-name", "my-host"}

	r := hostwall(t, "", append([]string{"validate"}, args...)...)
	if r.code != 0 || strings.Contains(r.stderr, "defaultEndpointToHostAction have no effect") || strings.Contains(r.stderr, "defaultEndpointToHostAction,") {
		t.Fatalf("validate exited %d, or still ignores defaultEndpointToHostAction:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve"}, args...)...); r.code != 0 {
		t.Fatalf("apply exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		name     string
		from, to string
		want     bool
	}{
		{"SSH from the management address", out, "10.0.0.1:22", true},
		{"the kubelet port from anywhere", out + "@10.0.0.3", "10.0.0.1:10250", true},
		{"another port", out + "@10.0.0.3", "10.0.0.1:8080", false},
		{"the host to etcd", srv, "10.0.0.9:2379", true},
		{"the host to another service", srv, "10.0.0.2:7070", false},
		{"the workload to the host (defaultEndpointToHostAction: Accept)", a, "10.210.2.1:8080", true},
	} {
		ns, src, _ := strings.Cut(c.from, "@")
		if got := connectsFrom(t, ns, src, c.to); got != c.want {
			t.Errorf("%s: connected=%v, want %v", c.name, got, c.want)
		}
	}
}

// connectsFrom is connects from source address src ("" for any).
func connectsFrom(t *testing.T, ns, src, addr string) bool {
	t.Helper()
	if src == "" {
		return connects(t, ns, addr)
	}
	return reached(t, ns, "dialing "+addr+" from "+src, func() error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}
