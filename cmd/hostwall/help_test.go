package main_test

import (
	"strings"
	"testing"
)

// TestHelpTexts: every command explains itself in more than its one-line
// summary, and boolean flags read as flags (pflag 1.1 printed
// "--force[=true|false]" on each).
func TestHelpTexts(t *testing.T) {
	root := runHostwall(t, "", nil, "--help")
	var commands []string
	in := false
	for _, line := range strings.Split(root.stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			commands = append(commands, strings.Fields(line)[0])
		}
	}
	if len(commands) < 10 {
		t.Fatalf("only %d commands in the help:\n%s", len(commands), root.stdout)
	}
	for _, c := range commands {
		r := runHostwall(t, "", nil, c, "--help")
		usage := strings.Index(r.stdout, "Usage:")
		if r.code != 0 || usage < 0 {
			t.Errorf("%s --help: exit %d\n%s%s", c, r.code, r.stdout, r.stderr)
			continue
		}
		if c != "help" && c != "completion" && strings.Count(r.stdout[:usage], "\n") < 3 {
			t.Errorf("%s --help explains itself in one line:\n%s", c, r.stdout[:usage])
		}
		if strings.Contains(r.stdout, "[=true|false]") {
			t.Errorf("%s --help shows [=true|false]", c)
		}
	}
}

// TestExplainFlags: explain refuses packets no host could see, saying why.
func TestExplainFlags(t *testing.T) {
	cfg := writeConfig(t, map[string]string{"a.hcl": "host_endpoint \"eth0\" { interface = \"eth0\" }\n"})
	for args, want := range map[string]string{
		"--proto tcp --dport 99999":    `"99999" is not a port: a port is a number 0-65535`,
		"--proto icmp --icmp-type 300": "--icmp-type 300: an ICMP type or code is a number 0-255",
		"--proto udp --icmp-type 3":    "--icmp-type is for --proto icmp or icmpv6, not udp",
		"--proto icmp --dport 80":      "--sport and --dport are for protocols with ports, not icmp",
		"--proto 300":                  "a number 0-255",
	} {
		r := runHostwall(t, "", nil, append([]string{"explain", "-c", cfg, "--iface", "eth0", "--in"}, strings.Fields(args)...)...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("explain %s: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

// TestNoSuchInterface: an endpoint on an interface the namespace does not
// have protects nothing, and plan says so, with the name meant.
func TestNoSuchInterface(t *testing.T) {
	ns := nsWithEth0(t)
	cfg := writeConfig(t, map[string]string{"a.hcl": "host_endpoint \"web\" { interface = \"eht0\" }\n"})
	r := hostwall(t, "", "plan", "-c", cfg, "--netns", ns, "--host-name", "srv")
	if r.code != 0 || !strings.Contains(r.stderr, `warning: No such interface — Host endpoint "web" names interface "eht0", which network namespace `+ns+` does not have`) || !strings.Contains(r.stderr, `Did you mean "eth0"?`) {
		t.Errorf("plan: exit %d\n%s", r.code, r.stderr)
	}
}
