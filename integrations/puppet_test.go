package integrations

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

// puppetApply runs `puppet apply --detailed-exitcodes` of
// integrations/puppet/tests/site.pp with the module from this checkout; the
// manifest reads the lab through facts. web.hcl lets port in.
func puppetApply(t *testing.T, l *lab, webContent string, purge bool, args ...string) (string, int) {
	t.Helper()
	tool(t, "puppet")
	modules, _ := filepath.Abs("puppet")
	env := []string{
		"FACTER_hw_config_dir=" + l.etc,
		"FACTER_hw_state_dir=" + l.state,
		"FACTER_hw_run_dir=" + l.run,
		"FACTER_hw_netns=" + l.ns,
		"FACTER_hw_binary=" + binary,
		"FACTER_hw_host_policy=" + l.write("host.hcl", hostPolicy),
		"FACTER_hw_web_policy=" + l.write("web.hcl", webContent),
		fmt.Sprintf("FACTER_hw_purge=%v", purge),
	}
	env = append(env, l.env...)
	all := append([]string{"apply", "--detailed-exitcodes", "--color=false", "--modulepath", modules,
		// Puppet's own state and reports stay in the test's directory.
		"--vardir", filepath.Join(l.root, "puppet-var"), "--confdir", filepath.Join(l.root, "puppet-conf"),
		"--codedir", filepath.Join(l.root, "puppet-code"), "--logdir", filepath.Join(l.root, "puppet-log"),
		"--rundir", filepath.Join(l.root, "puppet-run")}, args...)
	all = append(all, "puppet/tests/site.pp")
	return run(t, env, "puppet", all...)
}

// Puppet's --detailed-exitcodes: 0 no changes, 2 changes, 4 failures, 6 both.
const (
	puppetNoChanges = 0
	puppetChanges   = 2
)

// TestPuppetModule runs the class and the defined type as a fleet would:
// the first run applies (exit 2), the second changes nothing (exit 0),
// --noop with a modified policy reports the pending change and changes
// neither files nor kernel, an invalid policy fails with hostwall's
// file:line:col and leaves everything as it was (the apply is skipped), and
// purge removes an unmanaged file whose rules the apply then drops.
func TestPuppetModule(t *testing.T) {
	l := newLab(t)
	web80 := fmt.Sprintf(webPolicy, "80")

	out, code := puppetApply(t, l, web80, false)
	if code != puppetChanges || !strings.Contains(out, "Exec[hostwall apply]/returns: executed successfully") {
		t.Fatalf("first run: exit %d, want 2 and the apply\n%s", code, out)
	}
	files, table := l.firstApplied()

	t.Run("second run changes nothing", func(t *testing.T) {
		out, code := puppetApply(t, l, web80, false)
		if code != puppetNoChanges || strings.Contains(out, "Exec[hostwall apply]") {
			t.Errorf("exit %d, want 0 and no apply\n%s", code, out)
		}
		l.unchanged("the second run", files, table)
	})

	t.Run("noop reports and changes nothing", func(t *testing.T) {
		out, code := puppetApply(t, l, fmt.Sprintf(webPolicy, "8080"), false, "--noop", "--show_diff")
		if code&4 != 0 || !strings.Contains(out, "File["+filepath.Join(l.etc, "web.hcl")+"]/content: current_value") ||
			!strings.Contains(out, "(noop)") || !strings.Contains(out, "+    destination { ports = [8080] }") {
			t.Errorf("exit %d; want the pending change of web.hcl reported as noop, with its diff\n%s", code, out)
		}
		if strings.Contains(out, "Exec[hostwall apply]/returns: executed successfully") {
			t.Errorf("--noop ran the apply\n%s", out)
		}
		l.unchanged("--noop", files, table)
	})

	t.Run("noop reports a kernel that drifted and leaves it", func(t *testing.T) {
		testns.NFT(t, l.ns, "delete", "table", "inet", "hostwall")
		out, code := puppetApply(t, l, web80, false, "--noop")
		if code&4 != 0 || !strings.Contains(out, "Exec[hostwall apply]/returns: current_value 'notrun', should be ['0'] (noop)") {
			t.Errorf("exit %d; want the pending apply reported as noop\n%s", code, out)
		}
		if now := l.table(); now != "" {
			t.Errorf("--noop changed the kernel:\n%s", now)
		}
		if out, code := puppetApply(t, l, web80, false); code != puppetChanges || l.table() != table {
			t.Errorf("the next run: exit %d, want 2 and the table back\n%s", code, out)
		}
	})

	t.Run("invalid policy fails and changes nothing", func(t *testing.T) {
		bad := strings.Replace(fmt.Sprintf(webPolicy, "8080"), `"allow"`, `"allwo"`, 1)
		out, code := puppetApply(t, l, bad, false)
		if code&4 == 0 {
			t.Errorf("exit %d, want a failure (4 or 6)\n%s", code, out)
		}
		if want := filepath.Join(l.etc, "web.hcl") + `:4:16: Invalid action`; !strings.Contains(out, want) {
			t.Errorf("the failure does not name %s\n%s", want, out)
		}
		if !strings.Contains(out, "Exec[hostwall apply]: Skipping because of failed dependencies") {
			t.Errorf("the apply was not skipped\n%s", out)
		}
		l.unchanged("an invalid policy", files, table)
	})

	t.Run("purge removes an unmanaged file and its rules", func(t *testing.T) {
		l.addUnmanaged(t)
		if out, code := puppetApply(t, l, web80, false); code != puppetNoChanges {
			t.Errorf("without purge: exit %d, want 0\n%s", code, out)
		}
		out, code := puppetApply(t, l, web80, true)
		if code != puppetChanges || !strings.Contains(out, "extra.hcl]/ensure: removed") {
			t.Errorf("purge: exit %d, want 2 and extra.hcl removed\n%s", code, out)
		}
		l.purged(t)
		if out, code := puppetApply(t, l, web80, true); code != puppetNoChanges {
			t.Errorf("purge again: exit %d, want 0\n%s", code, out)
		}
	})

	t.Run("absent removes the file and the apply its rules", func(t *testing.T) {
		l.env = []string{"FACTER_hw_web_ensure=absent"}
		defer func() { l.env = nil }()
		out, code := puppetApply(t, l, web80, false)
		if code != puppetChanges || !strings.Contains(out, "web.hcl]/ensure: removed") {
			t.Errorf("exit %d, want 2 and web.hcl removed\n%s", code, out)
		}
		if now := l.table(); strings.Contains(now, "dport 80") || !strings.Contains(now, "chain") {
			t.Errorf("after removing web.hcl the kernel holds:\n%s", now)
		}
		if out, code := puppetApply(t, l, web80, false); code != puppetNoChanges {
			t.Errorf("again: exit %d, want 0\n%s", code, out)
		}
		l.converged(t)
	})
}
