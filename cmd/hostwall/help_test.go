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
