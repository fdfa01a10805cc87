package nft_test

import (
	"context"
	"testing"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/internal/testns"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
)

func TestSmoke(t *testing.T) {
	ns := testns.New(t)
	res, diags := loader.Load([]loader.Source{{Path: "a.hcl", Data: []byte(`
host { labels = { role = "web" } }
host_endpoint "veth0" { interface = "veth0" }
network_set "office" {
  labels = { trusted = "true" }
  nets = ["198.51.100.0/24", "2001:db8:1::/48", "10.0.0.0/8"]
}
policy "web" {
  selector = "role == 'web'"
  order = 100
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [80, 443, "8000:8080"] }
  }
  ingress {
    action = "allow"
    protocol = "tcp"
    source { selector = "trusted == 'true'" }
    destination { ports = [22] }
  }
  ingress {
    action = "log"
    source { nets = ["192.0.2.0/24"] }
  }
  egress { action = "allow" }
}
`)}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	desired, diags := compile.Compile(res.Config, compile.Options{HostName: "h"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p, err := agent.Plan(ctx, c, desired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Apply(ctx, c, desired, p, nft.IsGenerationChanged); err != nil {
		t.Fatal(err)
	}
	t.Log(testns.NFT(t, ns, "list", "ruleset"))
	live, _, _ := c.Read(ctx)
	t.Log(live)
}
