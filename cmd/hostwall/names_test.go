package main_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

// TestKernelNamesDoNotCollide: host endpoint "a" with a policy in tier
// "x-in", and host endpoint "a-in-t-x" on another interface — names that,
// joined with '-', made one chain of two (hep-a-in-t-x-in), so that the
// kernel merged them: packets to eth1 lost the failsafe port and the
// policy's port while explain said both were open. Now each interface's
// packets get what explain says, and the kernel holds exactly the plan.
func TestKernelNamesDoNotCollide(t *testing.T) {
	srv, c0, c1 := testns.New(t), testns.New(t), testns.New(t)
	testns.Veth(t, c0, "c0", "10.203.0.1/24", srv, "eth0", "10.203.0.2/24")
	testns.Veth(t, c1, "c1", "10.203.1.1/24", srv, "eth1", "10.203.1.2/24")
	for _, port := range []int{22, 443, 8080} {
		serveTCP(t, srv, port)
	}
	cfg := writeConfig(t, map[string]string{"names.hcl": `
host_endpoint "a" {
  interface = "eth0"
  labels    = { side = "zero" }
}
host_endpoint "a-in-t-x" {
  interface = "eth1"
  labels    = { side = "one" }
}
tier "x-in" {
  order = 10
}
policy "web" {
  tier = "x-in"
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [443] }
  }
}
policy "web-in" {
  tier     = "x-in"
  selector = "side == 'one'"
  order    = 5
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
`})
	args := []string{"-c", cfg, "--netns", srv, "--host-name", "srv"}
	if r := hostwall(t, "", append([]string{"apply", "--auto-approve"}, args...)...); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	for _, c := range []struct {
		ns, iface, addr string
		port            int
	}{
		{c0, "eth0", "10.203.0.2", 22}, {c0, "eth0", "10.203.0.2", 443}, {c0, "eth0", "10.203.0.2", 8080},
		{c1, "eth1", "10.203.1.2", 22}, {c1, "eth1", "10.203.1.2", 443}, {c1, "eth1", "10.203.1.2", 8080},
	} {
		r := hostwall(t, "", "explain", "-c", cfg, "--host-name", "srv", "--iface", c.iface, "--in", "--proto", "tcp", "--dport", fmt.Sprint(c.port), "--json")
		var ex struct{ Verdict string }
		if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
			t.Fatalf("explain %s:%d: %v %s%s", c.iface, c.port, err, r.stdout, r.stderr)
		}
		want := c.port != 8080 || c.iface == "eth1"
		if (ex.Verdict == "allow") != want {
			t.Errorf("explain says %s for tcp/%d on %s; want allowed %v", ex.Verdict, c.port, c.iface, want)
		}
		if got := connects(t, c.ns, fmt.Sprintf("%s:%d", c.addr, c.port)); got != want {
			t.Errorf("tcp/%d on %s: connects %v, explain says %s", c.port, c.iface, got, ex.Verdict)
		}
	}
}
