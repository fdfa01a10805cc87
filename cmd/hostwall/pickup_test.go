package main_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// ingressOnly8080 covers eth0 and lets TCP 8080 in; nothing lets anything out.
const ingressOnly8080 = `
host_endpoint "eth0" { interface = "eth0" }
policy "web" {
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [8080] }
  }
}
`

// TestConnectionsBeforeFirstApply: the kernel tracks connections from the
// first ct rule on, so to conntrack a connection opened before the first
// apply is new, not established, at its next segment. When the server
// speaks first (as the SSH session that runs the apply does), that segment
// leaves through the egress chain: on a failsafe port (22) the failsafe
// chain's pickup rule (source port, no SYN) lets it by and the connection
// lives on, both ways; on a port only an ingress policy opens (8080) it is
// dropped — the stall an SSH session met before the pickup rules.
func TestConnectionsBeforeFirstApply(t *testing.T) {
	srv, cli := testns.New(t), testns.New(t)
	testns.Veth(t, cli, "c0", "10.201.1.1/24", srv, "eth0", "10.201.1.2/24")
	open := func(port int) (server, client net.Conn) {
		t.Helper()
		var ln net.Listener
		if err := testns.Do(srv, func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("10.201.1.2:%d", port)); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if err := testns.Do(cli, func() (err error) {
			client, err = net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { server.Close(); client.Close() })
		return server, client
	}
	// passes reports whether b written on from arrives at to within 2 s.
	passes := func(from, to net.Conn, b string) bool {
		t.Helper()
		if _, err := from.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
		to.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, len(b))
		n, err := to.Read(buf)
		return err == nil && string(buf[:n]) == b
	}
	s22, c22 := open(22)
	s8080, c8080 := open(8080)
	if !passes(s22, c22, "a") || !passes(s8080, c8080, "a") {
		t.Fatal("the connections do not work before the apply")
	}
	if out := testns.NFT(t, srv, "list", "ruleset"); out != "" {
		t.Fatalf("the server namespace has a ruleset before the apply:\n%s", out)
	}
	l := lab{srv: srv, cli: cli}
	l.apply(t, ingressOnly8080)

	if !passes(s22, c22, "b") {
		t.Error("the connection to failsafe port 22 opened before the first apply stalls when the server speaks first")
	}
	if !passes(c22, s22, "c") || !passes(s22, c22, "d") {
		t.Error("the connection to port 22 is not tracked as established after its first segment")
	}
	if passes(s8080, c8080, "b") {
		t.Error("the server's segment on port 8080 went out although no egress rule allows it: is the pickup wider than the failsafe ports?")
	}
}
