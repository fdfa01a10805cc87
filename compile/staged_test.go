package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

// stagedSrc has two tiers; eth0's staged view differs in the second
// (web's staged replacement), eth1's not at all, and the wildcard
// endpoint's in the first (ops, deleted, selects it alone).
const stagedSrc = `
host_endpoint "eth0" {
  interface = "eth0"
  labels = { role = "web" }
}
host_endpoint "eth1" {
  interface = "eth1"
  labels = { role = "db" }
}
host_endpoint "all" {
  interface = "*"
  labels = { role = "all" }
}
tier "security" { order = 1 }
policy "guard" {
  tier = "security"
  ingress { action = "pass" }
}
policy "ops" {
  tier = "security"
  selector = "role == 'all'"
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [9100] }
  }
}
policy "web" {
  selector = "role == 'web'"
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
policy "db" {
  selector = "role == 'db'"
  ingress { action = "allow" }
}
policy "web" {
  staged = true
  selector = "role == 'web'"
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [8080] }
  }
}
policy "ops" {
  staged = "delete"
}
`

// TestStagedLayout: an endpoint's enforced tiers before the first that
// its staged view changes stay as they are; from it on the tiers jump to
// the tallying copies, whose verdicts run the endpoint's staged walk; an
// endpoint the staged view does not change is left alone; and nothing in
// a staged walk accepts or drops.
func TestStagedLayout(t *testing.T) {
	tbl, diags := compileHCL(t, "h", stagedSrc)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	check := func(chain string, want ...string) { t.Helper(); checkRules(t, tbl, chain, want...) }
	log := func(prefix string) string { return `limit rate 5/second log prefix "` + prefix + `" group 9631` }
	// eth0: security is the same in both views, default differs.
	check("hep/eth0/in/t/security", "jump pol/guard/in", "return", log("hostwall drop end-of-tier security eth0 ingress"), "counter drop")
	check("hep/eth0/in/t/default", "jump pol/web/in/tally",
		"meta mark & 0xe0000000 == 0x00000000 jump hep/eth0/in/staged",
		log("hostwall drop end-of-tier default eth0 ingress"), "counter drop")
	check("pol/web/in/tally", "tcp dport 8080 counter jump staged-accept-in")
	check("hep/eth0/in/staged",
		"meta mark set meta mark & 0x9fffffff",
		"jump hep/eth0/in/staged/t/default",
		"meta mark & 0xa0000000 == 0x80000000 "+log("hostwall staged default-deny eth0 ingress"),
		"meta mark & 0x20000000 == 0x00000000 meta mark set meta mark | 0x20000000",
		"meta mark & 0xe0000000 == 0xa0000000 counter",
		"meta mark & 0xe0000000 == 0x60000000 counter",
		"meta mark set meta mark & 0x1fffffff")
	check("hep/eth0/in/staged/t/default", "jump pol/web/in/staged", "meta mark & 0x20000000 == 0x20000000 return",
		"meta mark & 0x80000000 == 0x80000000 "+log("hostwall staged end-of-tier default eth0 ingress"),
		"meta mark set meta mark | 0x20000000")
	// eth1: nothing changes.
	check("hep/eth1/in/t/default", "jump pol/db/in", log("hostwall drop end-of-tier default eth1 ingress"), "counter drop")
	if tbl.Chain("hep/eth1/in/staged") != nil || tbl.Chain("pol/db/in/tally") != nil {
		t.Error("an endpoint without staged changes got a staged walk or tallying copies")
	}
	// The wildcard endpoint: from security on (ops is deleted); the
	// dispatch falls back to its walk.
	check("hep/all/in/t/security", "jump pol/guard/in/tally", "return", "jump pol/ops/in/tally", "meta mark & 0xe0000000 == 0x00000000 jump hep/all/in/staged",
		log("hostwall drop end-of-tier security all ingress"), "counter drop")
	// Only a packet that carries none of the walk's bits runs it: another
	// program's mark is left alone.
	check("staged-accept-in", "meta mark & 0xe0000000 == 0x00000000 meta mark set meta mark | 0xa0000000 jump staged-dispatch-in", "accept")
	check("staged-dispatch-in",
		"iifname vmap @staged-in",
		"meta mark & 0x20000000 == 0x20000000 jump hep/all/in/staged",
		"meta mark set meta mark & 0x1fffffff")
	if m := findSet(t, tbl, "staged-in", ""); len(m.Elements) != 1 || m.Elements[0].Verdict.Chain != "hep/eth0/in/staged" {
		t.Errorf("staged-in = %+v, want eth0's walk alone", m.Elements)
	}

	// Nothing reachable from a staged walk decides a packet.
	for _, ch := range tbl.Chains {
		if !strings.HasSuffix(ch.Name, "/staged") || !strings.HasPrefix(ch.Name, "hep/") {
			continue
		}
		seen := map[string]bool{}
		var walk func(name string)
		walk = func(name string) {
			if seen[name] {
				return
			}
			seen[name] = true
			c := tbl.Chain(name)
			if c == nil {
				t.Errorf("%s: no chain %s", ch.Name, name)
				return
			}
			for _, r := range c.Rules {
				switch v := r.Verdict; v.Kind {
				case ruleset.VerdictAccept, ruleset.VerdictDrop:
					t.Errorf("%s: chain %s decides: %s", ch.Name, name, r)
				case ruleset.VerdictJump, ruleset.VerdictGoto:
					walk(v.Chain)
				case ruleset.VerdictVMap:
					for _, e := range findSet(t, tbl, v.Map, "").Elements {
						walk(e.Verdict.Chain)
					}
				}
			}
		}
		walk(ch.Name)
	}
}

// TestStagedTooDeep: when the staged view's chains would jump deeper than
// the kernel allows, the configuration is compiled without them and a
// warning says so; the enforced chains are those of the configuration
// without staged policies.
func TestStagedTooDeep(t *testing.T) {
	const deep = `
host_endpoint "eth0" { interface = "eth0" }
network_set "a" {
  labels = { k = "a" }
  nets = ["10.0.0.0/24", "10.0.2.0/24", "10.0.4.0/24"]
}
network_set "b" {
  labels = { k = "b" }
  nets = ["10.1.0.0/24", "10.1.2.0/24", "10.1.4.0/24"]
}
policy "web" {
  ingress {
    action = "allow"
    source {
      nets = ["10.2.0.0/24", "10.2.2.0/24", "10.2.4.0/24"]
      selector = "k == 'a'"
    }
    destination {
      nets = ["10.3.0.0/24", "10.3.2.0/24", "10.3.4.0/24"]
      selector = "k == 'b'"
    }
  }
}
`
	compile := func(src string) (*ruleset.Table, string) {
		res, diags := loader.Load([]loader.Source{{Path: "t.hcl", Data: []byte(src)}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		tbl, diags := Compile(res.Config, Options{HostName: "h", Limits: Limits{Sharding: ruleset.Sharding{Min: 1, Slots: 3, ChunkBits: 1}}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return tbl, diags.Error()
	}
	without, _ := compile(deep)
	// The staged replacement denies what web allows: its rule looks the
	// same four sharded sets up, on top of the enforced rule's four.
	staged := strings.Replace(deep[strings.Index(deep, `policy "web"`):], "allow", "deny", 1)
	tbl, warnings := compile(deep + strings.Replace(staged, "{\n", "{\n  staged = true\n", 1))
	if !strings.Contains(warnings, StagedUncounted) {
		t.Errorf("no warning: %s", warnings)
	}
	if tbl.String() != without.String() {
		t.Error("the table is not the one without staged policies")
	}
	if n, path := chainDepth(without); n >= MaxChainDepth || n < 6 {
		t.Errorf("depth %d (%v): the test wants a deep table the kernel takes", n, path)
	}
}

// TestManyTiers: the depth of the chains does not grow with the tiers —
// thirty tiers of normal, untracked and pre-DNAT policies compile, a
// staged view among them too — except for an endpoint in audit mode in
// the untracked and pre-DNAT stages, whose tiers go on to each other
// (an audited deny ends the stage): there the compiler refuses, naming
// the path, before the kernel would.
func TestManyTiers(t *testing.T) {
	var b strings.Builder
	b.WriteString("host_endpoint \"eth0\" { interface = \"eth0\" }\n")
	for i := range 30 {
		fmt.Fprintf(&b, "tier \"t%02d\" {\n  order = %d\n  default_action = \"pass\"\n}\n", i, i+1)
		for _, kind := range []string{"", "  do_not_track = true\n  apply_on_forward = true\n", "  pre_dnat = true\n  apply_on_forward = true\n"} {
			fmt.Fprintf(&b, "policy \"p%02d%d\" {\n  tier = \"t%02d\"\n%s  ingress {\n    action = \"deny\"\n    protocol = \"udp\"\n    destination { ports = [%d] }\n  }\n}\n", i, len(kind), i, kind, 5000+i)
		}
	}
	b.WriteString("policy \"p000\" {\n  staged = true\n  tier = \"t00\"\n  ingress { action = \"deny\" }\n}\n")
	tbl, diags := compileHCL(t, "h", b.String())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if n, path := chainDepth(tbl); n > 10 {
		t.Errorf("depth %d with thirty tiers: %v", n, path)
	}
	if strings.Contains(diags.Error(), StagedUncounted) {
		t.Error("the staged view was left out")
	}
	audit := strings.Replace(b.String(), `host_endpoint "eth0" { interface = "eth0" }`, "host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  mode = \"audit\"\n}", 1)
	if _, diags := compileHCL(t, "h", audit); !strings.Contains(diags.Error(), "Chains too deep for the kernel") || !strings.Contains(diags.Error(), "raw-prerouting → hep/eth0/raw-in") {
		t.Errorf("thirty chained tiers of an audit endpoint: %v", diags)
	}
}
