package compile

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/ruleset"
)

const dropLogSrc = `
host_endpoint "eth0" { interface = "eth0" }
tier "security" { order = 1 }
policy "guard" {
  tier = "security"
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [8080] }
  }
  ingress { action = "pass" }
}
policy "web" {
  ingress {
    action = "allow"
    protocol = "tcp"
    destination { ports = [80] }
  }
}
`

// TestDropLog: with the drop log on (the default), every drop a policy,
// a tier or the default deny decides is logged first, to the configured
// group at the configured rate, with a prefix unique in the table that
// maps back to what decided; a deny rule jumps to a chain of its own
// that logs and drops, so its matches run once. Off, the drops are plain.
func TestDropLog(t *testing.T) {
	tbl, diags := compileHCL(t, "h", dropLogSrc)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	log := func(prefix string) string {
		return fmt.Sprintf("limit rate 5/second log prefix %q group 9631", prefix)
	}
	deny := tbl.Chain("pol/guard/in").Rules[0].Verdict.Chain // named by the rule's matches
	if !strings.HasPrefix(deny, "pol/guard/in/drop/") {
		t.Fatalf("guard's deny jumps to %q", deny)
	}
	for chain, want := range map[string][]string{
		"pol/guard/in":            {"tcp dport 8080 counter jump " + deny, "counter return"},
		deny:                      {log("hostwall drop security/guard ingress/1"), "drop"},
		"hep/eth0/in/t/security":  {"jump pol/guard/in", "return", log("hostwall drop end-of-tier security eth0 ingress"), "counter drop"},
		"hep/eth0/in/t/default":   {"jump pol/web/in", log("hostwall drop end-of-tier default eth0 ingress"), "counter drop"},
		"pol/web/in":              {"tcp dport 80 counter accept"},
		"hep/eth0/out/t/security": nil, // guard has no egress rules: no chain
	} {
		if diff := cmp.Diff(want, rules(tbl, chain)); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", chain, diff)
		}
	}
	hep := rules(tbl, "hep/eth0/in")
	if diff := cmp.Diff([]string{log("hostwall drop default-deny eth0 ingress"), "counter drop"}, hep[len(hep)-2:]); diff != "" {
		t.Errorf("default deny mismatch (-want +got):\n%s", diff)
	}

	// Every logging rule has an origin, and its prefix names it alone.
	origins := map[string]*ruleset.Origin{}
	for _, ch := range tbl.Chains {
		for _, r := range ch.Rules {
			if r.Log == nil || r.Log.Group == nil {
				continue
			}
			if r.Origin == nil {
				t.Errorf("%s: %s has no origin", ch.Name, r)
				continue
			}
			if prev, ok := origins[r.Log.Prefix]; ok && *prev != *r.Origin {
				t.Errorf("prefix %q names %v and %v", r.Log.Prefix, prev, r.Origin)
			}
			origins[r.Log.Prefix] = r.Origin
		}
	}
	want := ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "security", Policy: "guard", Rule: 1, Action: "deny"}
	if o := origins["hostwall drop security/guard ingress/1"]; o == nil || *o != want {
		t.Errorf("the deny's origin = %v, want %v", o, want)
	}
	want = ruleset.Origin{Kind: ruleset.OriginDefaultDeny, Endpoint: "eth0", Direction: "ingress", Action: "deny"}
	if o := origins["hostwall drop default-deny eth0 ingress"]; o == nil || *o != want {
		t.Errorf("the default deny's origin = %v, want %v", o, want)
	}

	tbl, diags = compileHCL(t, "h", dropLogSrc+"settings {\n  drop_log_group = 7\n  drop_log_rate = 100\n}\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := rules(tbl, tbl.Chain("pol/guard/in").Rules[0].Verdict.Chain); len(got) != 2 || got[0] != `limit rate 100/second burst 100 packets log prefix "hostwall drop security/guard ingress/1" group 7` {
		t.Errorf("with group 7 at 100/s: %q", got)
	}

	tbl, diags = compileHCL(t, "h", dropLogSrc+"settings { drop_log = false }\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diff := cmp.Diff([]string{"tcp dport 8080 counter drop", "counter return"}, rules(tbl, "pol/guard/in")); diff != "" {
		t.Errorf("drop log off: pol/guard/in mismatch (-want +got):\n%s", diff)
	}
	for _, ch := range tbl.Chains {
		for _, r := range ch.Rules {
			if r.Log != nil || r.Limit != nil {
				t.Errorf("drop log off, yet %s: %s", ch.Name, r)
			}
		}
	}
}

// TestDropLogSettings: bad drop-log settings are refused, naming the
// value and the range.
func TestDropLogSettings(t *testing.T) {
	for src, want := range map[string]string{
		"settings { drop_log_rate = 0 }":         "drop_log_rate is packets a second for each deciding rule, a whole number from 1 to 100000, not 0",
		"settings { drop_log_rate = 1.5 }":       "not 1.5",
		"settings { drop_log_group = 65536 }":    "drop_log_group is an NFLOG group, a whole number from 0 to 65535, not 65536",
		"settings { drop_log_group = \"x\" }":    "must be a number",
		"settings { drop_log = \"yes\" }":        "drop_log is true or false",
		"settings { drop_log_rate = 100001 }":    "from 1 to 100000",
		"settings { drop_log_group = -1 }":       "not -1",
		"settings { drop_log_rate = 1e300 }":     "not 1e+300",
		"settings { drop_log_group = 9631.0 }\n": "",
	} {
		_, diags := loader.Load([]loader.Source{{Path: "s.hcl", Data: []byte(src)}})
		got := diags.Error()
		if want == "" {
			if diags.HasErrors() {
				t.Errorf("%s: %v", src, diags)
			}
			continue
		}
		if !strings.Contains(got, want) || !strings.Contains(got, "s.hcl:1,") {
			t.Errorf("%s: got %q, want it to say %q at s.hcl:1", src, got, want)
		}
	}
}

// TestDropChainKeptOnInsert: a rule inserted above a deny changes the
// prefix its drop chain logs with, not the deny rule: its kernel rule, and
// its counter, stay.
func TestDropChainKeptOnInsert(t *testing.T) {
	before, _ := compileHCL(t, "h", dropLogSrc)
	after, _ := compileHCL(t, "h", strings.Replace(dropLogSrc, "  tier = \"security\"\n", "  tier = \"security\"\n  ingress {\n    action = \"allow\"\n    protocol = \"udp\"\n  }\n", 1))
	b, a := before.Chain("pol/guard/in").Rules[0], after.Chain("pol/guard/in").Rules[1]
	if b.String() != a.String() {
		t.Errorf("the deny rule changed with a rule inserted above: %q → %q", b, a)
	}
	if got := rules(after, a.Verdict.Chain); len(got) != 2 || !strings.Contains(got[0], `"hostwall drop security/guard ingress/2"`) {
		t.Errorf("the drop chain after the insertion: %q", got)
	}
}

// TestDropPrefixLong: a prefix too long for the kernel keeps its start
// and a hash of the whole, so two long names that start alike differ.
func TestDropPrefixLong(t *testing.T) {
	long := strings.Repeat("p", 200)
	a := DropPrefix(&ruleset.Origin{Kind: ruleset.OriginPolicyRule, Tier: "default", Policy: long + "a", Direction: "ingress", Rule: 1})
	b := DropPrefix(&ruleset.Origin{Kind: ruleset.OriginPolicyRule, Tier: "default", Policy: long + "b", Direction: "ingress", Rule: 1})
	if len(a) > 127 || len(b) > 127 || a == b || !strings.HasPrefix(a, "hostwall drop default/ppp") {
		t.Errorf("long prefixes %q and %q", a, b)
	}
}

// TestAuditMode: an endpoint in audit mode jumps to the audit copy of each
// policy, whose denies log and accept; its ends of tier and default deny
// log and accept; an enforcing endpoint beside it keeps the policy's own
// chain. On the forward path and in the untracked and pre-DNAT stages, an
// audited deny returns (the policy's copy counts it, the tier chain logs
// it and ends the side or the stage), as does a forward end of tier.
func TestAuditMode(t *testing.T) {
	src := strings.Replace(dropLogSrc, `host_endpoint "eth0" { interface = "eth0" }`,
		"host_endpoint \"eth0\" {\n  interface = \"eth0\"\n  mode = \"audit\"\n}\nhost_endpoint \"eth1\" { interface = \"eth1\" }", 1)
	tbl, diags := compileHCL(t, "h", src)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	log := func(prefix string) string {
		return fmt.Sprintf("limit rate 5/second log prefix %q group 9631", prefix)
	}
	audit := tbl.Chain("pol/guard/in/audit").Rules[0].Verdict.Chain
	for chain, want := range map[string][]string{
		"hep/eth0/in/t/security": {"jump pol/guard/in/audit", "return", log("hostwall audit end-of-tier security eth0 ingress"), "counter accept"},
		"hep/eth1/in/t/security": {"jump pol/guard/in", "return", log("hostwall drop end-of-tier security eth1 ingress"), "counter drop"},
		"pol/guard/in/audit":     {"tcp dport 8080 counter jump " + audit, "counter return"},
		audit:                    {log("hostwall audit security/guard ingress/1"), "accept"},
	} {
		if diff := cmp.Diff(want, rules(tbl, chain)); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", chain, diff)
		}
	}
	hep := rules(tbl, "hep/eth0/in")
	if diff := cmp.Diff([]string{log("hostwall audit default-deny eth0 ingress"), "counter accept"}, hep[len(hep)-2:]); diff != "" {
		t.Errorf("audited default deny mismatch (-want +got):\n%s", diff)
	}
	if c := tbl.Chain("hep/eth0/in"); !strings.Contains(c.Comment, "audit mode") {
		t.Errorf("the audit endpoint's chain says nothing of it: %q", c.Comment)
	}
	// Invalid packets are dropped in audit mode too.
	if !slices.Contains(hep, "ct state invalid counter drop") {
		t.Errorf("no invalid drop in %q", hep)
	}

	tbl, diags = compileHCL(t, "h", src+`policy "routed" {
  apply_on_forward = true
  ingress {
    action = "deny"
    protocol = "udp"
  }
}
policy "raw" {
  apply_on_forward = true
  do_not_track = true
  ingress {
    action = "deny"
    protocol = "tcp"
    destination { ports = [25] }
  }
}
`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for chain, want := range map[string][]string{
		"pol/routed/fwd-in/audit": {"meta l4proto udp counter return"},
		"pol/routed/fwd-in":       {"meta l4proto udp counter jump " + tbl.Chain("pol/routed/fwd-in").Rules[0].Verdict.Chain},
		"hep/eth0/fwd-in/t/default": {"jump pol/routed/fwd-in/audit",
			"meta l4proto udp " + log("hostwall audit default/routed forwarded ingress/1"), "meta l4proto udp return",
			log("hostwall audit end-of-tier default eth0 forwarded ingress"), "counter return"},
		"pol/raw/raw-in/audit": {"tcp dport 25 counter return"},
		"hep/eth0/raw-in/t/default": {"jump pol/raw/raw-in/audit",
			"tcp dport 25 " + log("hostwall audit default/raw untracked ingress/1"), "tcp dport 25 return", "counter return"},
	} {
		if diff := cmp.Diff(want, rules(tbl, chain)); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", chain, diff)
		}
	}
	for src, want := range map[string]string{
		`host_endpoint "e" {` + "\n  interface = \"eth0\"\n  mode = \"Audit\"\n}\n": `not "Audit"`,
		`host_endpoint "e" {` + "\n  interface = \"eth0\"\n  mode = 1\n}\n":         "string",
	} {
		_, diags := loader.Load([]loader.Source{{Path: "m.hcl", Data: []byte(src)}})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) || !strings.Contains(diags.Error(), "m.hcl:3,") {
			t.Errorf("%q: %v, want an error at m.hcl:3 saying %q", src, diags, want)
		}
	}
}
