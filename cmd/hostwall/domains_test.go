package main_test

import (
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

// TestDomainsEgress: egress to a domain name, resolved at apply by a real
// DNS server (dnsmasq, in the server's namespace, named by the host
// block's dns_servers): the name's address is reached, another address
// is not, a name whose address is elsewhere lets nothing by, and the plan
// shows each name with its addresses, as explain --dst NAME explains them;
// the generation records them, so a
// rollback to it is exact and needs no DNS server.
func TestDomainsEgress(t *testing.T) {
	l := quietLab(t)
	stopDNS := testns.DNSMasq(t, l.srv, "--local-ttl=30", "--host-record=api.example.com,10.201.0.1", "--host-record=elsewhere.example.com,10.201.0.9")
	serveTCP(t, l.cli, 8080)
	serveTCP(t, l.cli, 8081)
	dir := writeConfig(t, map[string]string{"p.hcl": `
host {
  dns_servers = ["127.0.0.1"]
}
host_endpoint "eth0" { interface = "eth0" }
policy "out" {
  egress {
    action = "allow"
    protocol = "tcp"
    destination {
      domains = ["api.example.com"]
      ports = [8080]
    }
  }
  egress {
    action = "allow"
    protocol = "tcp"
    destination {
      domains = ["elsewhere.example.com", "missing.example.com"]
      ports = [8081]
    }
  }
}
`})
	plan := hostwall(t, "", "plan", "--netns", l.srv, "-c", dir)
	for _, want := range []string{"domain api.example.com: 10.201.0.1 (TTL 30s)", "domain elsewhere.example.com: 10.201.0.9", "domain missing.example.com: no address now"} {
		if !strings.Contains(plan.stdout+plan.stderr, want) {
			t.Errorf("the plan lacks %q:\n%s%s", want, plan.stdout, plan.stderr)
		}
	}
	// explain takes the name, and explains each address.
	ex := hostwall(t, "", "explain", "--netns", l.srv, "-c", dir, "--host-name", "srv", "--iface", "eth0", "--out", "--proto", "tcp", "--dst", "api.example.com", "--dport", "8080")
	if !strings.Contains(ex.stdout, "api.example.com → 10.201.0.1:") || !strings.Contains(ex.stdout, `allow: policy rule: tier "default", policy "out", egress rule 1 (allow)`) {
		t.Errorf("explain --dst api.example.com:\n%s%s", ex.stdout, ex.stderr)
	}
	if r := hostwall(t, "", "apply", "--netns", l.srv, "-c", dir, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("apply: %s%s", r.stdout, r.stderr)
	}
	if !connects(t, l.srv, "10.201.0.1:8080") {
		t.Error("egress to api.example.com's address, port 8080: refused")
	}
	if connects(t, l.srv, "10.201.0.1:8081") {
		t.Error("egress to 10.201.0.1:8081, which only elsewhere.example.com (10.201.0.9) may reach: connected")
	}
	if r := hostwall(t, "", "plan", "--refresh", "--netns", l.srv, "-c", dir); !strings.Contains(r.stdout, "No changes") {
		t.Errorf("plan --refresh after the apply:\n%s%s", r.stdout, r.stderr)
	}

	// Another configuration, then back to the first with no DNS server.
	other := writeConfig(t, map[string]string{"p.hcl": "host_endpoint \"eth0\" { interface = \"eth0\" }\n"})
	if r := hostwall(t, "", "apply", "--netns", l.srv, "-c", other, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("apply: %s%s", r.stdout, r.stderr)
	}
	if connects(t, l.srv, "10.201.0.1:8080") {
		t.Fatal("the second configuration let 8080 out")
	}
	stopDNS()
	if r := hostwall(t, "", "rollback", "1", "--netns", l.srv, "-c", dir, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("rollback with no DNS server: %s%s", r.stdout, r.stderr)
	}
	if !connects(t, l.srv, "10.201.0.1:8080") {
		t.Error("after the rollback, egress to api.example.com's recorded address: refused")
	}
}
