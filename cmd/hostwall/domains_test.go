package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// TestDomainsEgress: egress to a domain name — in a rule, and in a network
// set an egress allow rule selects — resolved at apply by a real
// DNS server (dnsmasq, in the server's namespace, named by the host
// block's dns_servers): the name's address is reached, another address
// is not, a name whose address is elsewhere lets nothing by, and the plan
// shows each name with its addresses, as explain --dst NAME explains them;
// the generation records them, so a
// rollback to it is exact and needs no DNS server.
func TestDomainsEgress(t *testing.T) {
	l := quietLab(t)
	dns := testns.DNSMasq(t, l.srv, "--local-ttl=30", "--host-record=api.example.com,10.201.0.1", "--host-record=elsewhere.example.com,10.201.0.9",
		"--host-record=partner.example.com,10.201.0.1")
	serveTCP(t, l.cli, 8080)
	serveTCP(t, l.cli, 8081)
	serveTCP(t, l.cli, 8082)
	dir := writeConfig(t, map[string]string{"p.hcl": `
host {
  dns_servers = ["127.0.0.1"]
}
host_endpoint "eth0" { interface = "eth0" }
network_set "partner" {
  labels = { partner = "yes" }
  domains = ["partner.example.com"]
}
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
      selector = "partner == 'yes'"
      ports = [8082]
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
	if !connects(t, l.srv, "10.201.0.1:8082") {
		t.Error("egress to partner.example.com's address, by a network set's domain names: refused")
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
	dns.Stop()
	if r := hostwall(t, "", "rollback", "1", "--netns", l.srv, "-c", dir, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("rollback with no DNS server: %s%s", r.stdout, r.stderr)
	}
	if !connects(t, l.srv, "10.201.0.1:8080") {
		t.Error("after the rollback, egress to api.example.com's recorded address: refused")
	}
}

// TestDomainsFollowed: the agent resolves a name again when its TTL runs
// out. The record changes: after the TTL the new address is reached, the
// old one still during the grace period and not after it, and the change
// is one of the set's elements — the rule stays as it was (its handle,
// in the kernel's own listing). The DNS server stops: the last known
// address stays allowed, and the agent's log, status and metrics say the
// name is stale.
func TestDomainsFollowed(t *testing.T) {
	l := quietLab(t)
	testns.Run(t, "ip", "-n", l.cli, "addr", "add", "10.201.0.3/24", "dev", "c0")
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("10.201.0.1 api.example.com\n"), 0o644)
	dns := testns.DNSMasq(t, l.srv, "--local-ttl=1", "--addn-hosts="+hosts)
	serveTCP(t, l.cli, 8080)
	dir := writeConfig(t, map[string]string{"p.hcl": `
host {
  dns_servers = ["127.0.0.1"]
}
settings {
  dns_min_ttl = 1
  dns_grace   = 3
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
}
`})
	a := startAgent(t, l.srv, dir, "--debounce", "50ms")
	a.expect(t, "READY=1")
	if !connects(t, l.srv, "10.201.0.1:8080") || connects(t, l.srv, "10.201.0.3:8080") {
		t.Fatal("before the change: want 10.201.0.1 reached and 10.201.0.3 not")
	}
	counter := regexp.MustCompile(`counter packets \d+ bytes \d+ `)
	rule := func() string { // the policy's rule, with its handle, without its counts
		for _, line := range strings.Split(testns.NFT(t, l.srv, "-a", "list", "chain", "inet", "hostwall", "pol/out/out"), "\n") {
			if strings.Contains(line, "dport 8080") {
				return counter.ReplaceAllString(strings.TrimSpace(line), "")
			}
		}
		return ""
	}
	before := rule()

	os.WriteFile(hosts, []byte("10.201.0.3 api.example.com\n"), 0o644)
	dns.Reload()
	await(t, 15*time.Second, "the new address reached", func() bool { return connects(t, l.srv, "10.201.0.3:8080") })
	if !connects(t, l.srv, "10.201.0.1:8080") { // within its grace period (3 s)
		t.Error("the old address was cut within its grace period")
	}
	await(t, 15*time.Second, "the old address cut after its grace period", func() bool { return !connects(t, l.srv, "10.201.0.1:8080") })
	if after := rule(); after != before || before == "" {
		t.Errorf("the rule changed with the addresses:\n%s\n%s", before, after)
	}
	if set := testns.NFT(t, l.srv, "list", "table", "inet", "hostwall"); !strings.Contains(set, "10.201.0.3") || strings.Contains(set, "10.201.0.1 ") {
		t.Errorf("the set's elements:\n%s", set)
	}

	if st := hostwall(t, "", "status", "--netns", l.srv, "-c", dir); !strings.Contains(st.stdout, "api.example.com: 10.201.0.3") {
		t.Errorf("status does not show the name:\n%s", st.stdout)
	}

	dns.Stop()
	a.logged(t, 15*time.Second, "Domain name did not resolve")
	if !connects(t, l.srv, "10.201.0.3:8080") {
		t.Error("with the DNS server gone, the last known address was cut")
	}
	if st := hostwall(t, "", "status", "--netns", l.srv, "-c", dir); !strings.Contains(st.stdout, "api.example.com: 10.201.0.3 — STALE") {
		t.Errorf("status does not say the name is stale:\n%s", st.stdout)
	}
	if m := hostwall(t, "", "status", "--format", "prometheus", "--netns", l.srv, "-c", dir); sample(m.stdout, `hostwall_domain_stale{name="api.example.com"}`) != 1 ||
		sample(m.stdout, `hostwall_domain_addresses{name="api.example.com"}`) != 1 {
		t.Errorf("the metrics do not say the name is stale:\n%s", m.stdout)
	}
}
