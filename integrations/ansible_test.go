package integrations

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// recap is a host's line of ansible-playbook's PLAY RECAP.
type recap struct{ ok, changed, unreachable, failed int }

var recapLine = regexp.MustCompile(`(?m)^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func parseRecap(t *testing.T, out string) recap {
	t.Helper()
	m := recapLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no PLAY RECAP in the output:\n%s", out)
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	return recap{n(m[1]), n(m[2]), n(m[3]), n(m[4])}
}

// ansiblePlaybook runs a playbook of integrations/ansible/tests with vars
// as -e @file and the collection from this checkout: on localhost over the
// local connection, or, when the lab has an inventory, from inside the
// lab's controller namespace to the hosts it names.
func ansiblePlaybook(t *testing.T, l *lab, playbook string, vars map[string]any, args ...string) (string, int) {
	t.Helper()
	tool(t, "ansible-playbook")
	data, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	varsFile := filepath.Join(l.root, "vars.json")
	if err := os.WriteFile(varsFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	collections, _ := filepath.Abs("ansible")
	env := []string{
		"ANSIBLE_COLLECTIONS_PATH=" + collections,
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(l.root, "ansible-local"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(l.root, "ansible-remote"),
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
		// Every hostwall the modules start uses the lab's directories,
		// even where a playbook does not pass them.
		"HOSTWALL_STATE_DIR=" + l.state,
		"HOSTWALL_RUN_DIR=" + l.run,
	}
	env = append(env, l.env...)
	inventory := []string{"-i", "localhost,", "-c", "local"}
	if l.inventory != "" {
		inventory = []string{"-i", l.inventory}
	}
	all := append(append(inventory, "-e", "@"+varsFile, filepath.Join("ansible/tests", playbook)), args...)
	if l.controller != "" {
		return run(t, env, "ip", append([]string{"netns", "exec", l.controller, "ansible-playbook"}, all...)...)
	}
	return run(t, env, "ansible-playbook", all...)
}

// roleVars are the role's variables for the lab, with web.hcl letting port in.
func roleVars(l *lab, port string, purge bool) map[string]any {
	return map[string]any{
		"hostwall_config_dir":     l.etc,
		"hostwall_state_dir":      l.state,
		"hostwall_run_dir":        l.run,
		"hostwall_netns":          l.ns,
		"hostwall_host_name":      "web-1",
		"hostwall_binary":         binary,
		"hostwall_manage_service": false, // no systemd as PID 1 here
		"hostwall_purge":          purge,
		"hostwall_policies": []map[string]string{
			{"name": "host", "content": hostPolicy},
			{"name": "web", "content": fmt.Sprintf(webPolicy, port)},
		},
	}
}

// TestAnsibleRole runs the role as a fleet would: the first run applies, the
// second changes nothing, check mode with a modified policy reports the
// change and leaves files and kernel alone, an invalid policy fails and
// leaves everything as it was, and purge removes an unmanaged file whose
// rules the handler's apply then drops.
func TestAnsibleRole(t *testing.T) {
	l := newLab(t)

	out, code := ansiblePlaybook(t, l, "site.yml", roleVars(l, "80", false))
	if r := parseRecap(t, out); code != 0 || r.failed != 0 || r.changed < 2 { // the policy files (one looped task) and the apply
		t.Fatalf("first run: exit %d, %+v\n%s", code, r, out)
	}
	files, table := l.firstApplied()

	t.Run("second run changes nothing", func(t *testing.T) {
		out, code := ansiblePlaybook(t, l, "site.yml", roleVars(l, "80", false))
		if r := parseRecap(t, out); code != 0 || r.changed != 0 || r.failed != 0 {
			t.Errorf("exit %d, %+v, want changed=0\n%s", code, r, out)
		}
		l.unchanged("the second run", files, table)
	})

	t.Run("check mode reports and changes nothing", func(t *testing.T) {
		out, code := ansiblePlaybook(t, l, "site.yml", roleVars(l, "8080", false), "--check", "--diff")
		if r := parseRecap(t, out); code != 0 || r.changed == 0 {
			t.Errorf("exit %d, %+v, want a reported change\n%s", code, r, out)
		}
		if !strings.Contains(out, "-    destination { ports = [80] }") || !strings.Contains(out, "+    destination { ports = [8080] }") {
			t.Errorf("the diff does not show the file's change:\n%s", out)
		}
		l.unchanged("check mode", files, table)
	})

	t.Run("invalid policy fails and changes nothing", func(t *testing.T) {
		vars := roleVars(l, "8080", false)
		vars["hostwall_policies"] = []map[string]string{
			{"name": "host", "content": hostPolicy},
			{"name": "web", "content": strings.Replace(fmt.Sprintf(webPolicy, "8080"), `"allow"`, `"allwo"`, 1)},
		}
		out, code := ansiblePlaybook(t, l, "site.yml", vars)
		if r := parseRecap(t, out); code == 0 || r.failed == 0 {
			t.Errorf("exit %d, %+v, want a failure\n%s", code, r, out)
		}
		if want := filepath.Join(l.etc, "web.hcl") + `:4:16: Invalid action`; !strings.Contains(out, want) || !strings.Contains(out, "nothing was written") {
			t.Errorf("the failure does not name %s and say nothing was written:\n%s", want, out)
		}
		l.unchanged("an invalid policy", files, table)
	})

	t.Run("purge removes an unmanaged file and its rules", func(t *testing.T) {
		l.addUnmanaged(t)
		// Without purge the unmanaged file stays, and so do its rules.
		out, code := ansiblePlaybook(t, l, "site.yml", roleVars(l, "80", false))
		if r := parseRecap(t, out); code != 0 || r.changed != 0 {
			t.Errorf("without purge: exit %d, %+v, want changed=0\n%s", code, r, out)
		}
		out, code = ansiblePlaybook(t, l, "site.yml", roleVars(l, "80", true))
		if r := parseRecap(t, out); code != 0 || r.changed < 2 { // the removal and the apply
			t.Errorf("purge: exit %d, %+v\n%s", code, r, out)
		}
		l.purged(t)
		out, code = ansiblePlaybook(t, l, "site.yml", roleVars(l, "80", true))
		if r := parseRecap(t, out); code != 0 || r.changed != 0 {
			t.Errorf("purge again: exit %d, %+v, want changed=0\n%s", code, r, out)
		}
	})
}

// TestAnsibleModules runs the modules on their own (modules.yml asserts on
// what they return): check mode plans and diff mode shows the plan lines;
// the apply reports exactly the plan it applied; the same policy rewritten
// as YAML replaces the HCL file without changing the kernel; absent removes
// it and the next apply drops its rules.
func TestAnsibleModules(t *testing.T) {
	l := newLab(t)
	os.WriteFile(filepath.Join(l.etc, "host.hcl"), []byte(hostPolicy), 0o644)
	vars := map[string]any{
		"hw": map[string]string{"config_dir": l.etc, "state_dir": l.state, "run_dir": l.run, "netns": l.ns,
			"host_name": "web-1", "binary": binary},
		"policy": fmt.Sprintf(webPolicy, "80"),
		"policy_yaml": "policy:\n  web:\n    selector: \"role == 'web'\"\n" +
			"    ingress:\n      - action: allow\n        protocol: tcp\n        destination: {ports: [80]}\n",
	}
	out, code := ansiblePlaybook(t, l, "modules.yml", vars, "--diff")
	if r := parseRecap(t, out); code != 0 || r.failed != 0 {
		t.Fatalf("exit %d, %+v\n%s", code, r, out)
	}
	// Diff mode prints the plan: the rule it adds, in nft syntax.
	planned := strings.Index(out, "TASK [Plan only (check mode, diff)]")
	applied := strings.Index(out, "TASK [Apply (diff)]")
	if planned < 0 || applied < planned || !strings.Contains(out[planned:applied], "+ tcp dport 80 counter accept") {
		t.Errorf("check mode's diff does not show the plan lines:\n%s", out)
	}
	if strings.Contains(l.table(), "dport 80") {
		t.Errorf("the policy removed at the end is still in the kernel:\n%s", l.table())
	}
	if _, err := os.Stat(filepath.Join(l.etc, "web.yaml")); !os.IsNotExist(err) {
		t.Errorf("web.yaml is still there: %v", err)
	}
	l.converged(t)
}
