package integrations

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestWellFormed: ansible-doc reads every module's and the role's
// documentation without a warning, every test playbook passes
// ansible-playbook --syntax-check, and puppet parser validate accepts every
// manifest. (Needs no root: nothing runs.)
func TestWellFormed(t *testing.T) {
	tool(t, "ansible-doc")
	tool(t, "puppet")
	collections, _ := filepath.Abs("ansible")
	env := []string{"ANSIBLE_COLLECTIONS_PATH=" + collections, "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCAL_TEMP=" + t.TempDir(), "ANSIBLE_REMOTE_TEMP=" + t.TempDir()}
	for _, doc := range [][]string{
		{"hostwall.firewall.hostwall_policy"},
		{"hostwall.firewall.hostwall_apply"},
		{"-t", "role", "hostwall.firewall.hostwall"},
	} {
		out, code := run(t, env, "ansible-doc", doc...)
		if code != 0 || strings.Contains(out, "WARNING") || strings.Contains(out, "ERROR") {
			t.Errorf("ansible-doc %s: exit %d\n%s", strings.Join(doc, " "), code, out)
		}
	}
	playbooks, _ := filepath.Glob("ansible/tests/*.yml")
	if len(playbooks) < 3 {
		t.Fatalf("test playbooks: %v", playbooks)
	}
	for _, pb := range playbooks {
		if out, code := run(t, env, "ansible-playbook", "-i", "localhost,", "--syntax-check", pb); code != 0 {
			t.Errorf("%s: exit %d\n%s", pb, code, out)
		}
	}
	manifests, _ := filepath.Glob("puppet/hostwall/manifests/*.pp")
	tests, _ := filepath.Glob("puppet/tests/*.pp")
	root := t.TempDir()
	args := append([]string{"parser", "validate", "--vardir", filepath.Join(root, "var"), "--confdir", filepath.Join(root, "conf"),
		"--codedir", filepath.Join(root, "code"), "--logdir", filepath.Join(root, "log"), "--rundir", filepath.Join(root, "run")},
		append(manifests, tests...)...)
	if out, code := run(t, nil, "puppet", args...); code != 0 {
		t.Errorf("puppet parser validate: exit %d\n%s", code, out)
	}
}
