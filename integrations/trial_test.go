package integrations

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// sshHost makes the lab a host reachable by SSH: its namespace gets eth0
// (10.77.0.2) joined by veth to a controller namespace (10.77.0.1) and an
// sshd of the test's own (Debian's openssh-server) listening on it; the
// lab's inventory names it, with a key made for the test.
func sshHost(t *testing.T, l *lab) {
	t.Helper()
	tool(t, "ssh")
	tool(t, "ssh-keygen")
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatal("/usr/sbin/sshd is missing (make test installs openssh-server: scripts/deps.sh)")
	}
	ctl := testns.New(t)
	testns.Veth(t, ctl, "ctl0", "10.77.0.1/24", l.ns, "eth0", "10.77.0.2/24")
	dir := filepath.Join(l.root, "ssh")
	os.Mkdir(dir, 0o700)
	testns.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	testns.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "id"))
	pub, _ := os.ReadFile(filepath.Join(dir, "id.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`Port 22
ListenAddress 10.77.0.2
HostKey %[1]s/hostkey
AuthorizedKeysFile %[1]s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
Subsystem sftp /usr/lib/openssh/sftp-server
`, dir)), 0o600)
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	sshd := exec.Command("ip", "netns", "exec", l.ns, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	sshd.Stderr = &testLog{t: t, prefix: "sshd: "}
	sshd.WaitDelay = time.Second // its sessions may hold stderr a while after it is killed
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshd.Process.Kill(); sshd.Wait() })

	l.controller = ctl
	l.inventory = filepath.Join(dir, "inventory")
	os.WriteFile(l.inventory, []byte(fmt.Sprintf("web-1 ansible_host=10.77.0.2 ansible_user=root ansible_ssh_private_key_file=%s/id\n", dir)), 0o600)
	l.env = []string{
		"ANSIBLE_HOST_KEY_CHECKING=False",
		"ANSIBLE_SSH_ARGS=-o ControlMaster=auto -o ControlPersist=5s -o UserKnownHostsFile=/dev/null",
		"ANSIBLE_SSH_CONTROL_PATH_DIR=" + filepath.Join(dir, "cp"),
		"ANSIBLE_PIPELINING=True",
		"ANSIBLE_TIMEOUT=3", // a dropped SYN fails a connection attempt after 3 s
		"ANSIBLE_VERBOSITY=" + os.Getenv("HW_ANSIBLE_VERBOSITY"),
	}
	if !waitFor(10*time.Second, func() bool { return sshOK(l, dir) }) {
		t.Fatal("sshd in the host namespace does not answer")
	}
}

// sshOK reports whether a new SSH connection from the controller to the
// host gets in.
func sshOK(l *lab, dir string) bool {
	return exec.Command("ip", "netns", "exec", l.controller, "ssh", "-i", filepath.Join(dir, "id"),
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"root@10.77.0.2", "true").Run() == nil
}

// waitFor polls cond until it holds or the time is up.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// testLog writes a process's output to the test log.
type testLog struct {
	t      *testing.T
	prefix string
}

func (w *testLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + line)
	}
	return len(p), nil
}

// TestAnsibleTrialOverSSH: hostwall_apply with confirm_timeout over a real
// SSH connection. A change that keeps SSH open is applied on trial and
// confirmed from a new connection. A change that would cut the controller
// off is refused by the lockout check; forced, it is applied on trial, no
// new connection gets through to confirm it, the task fails, and the host
// itself restores the previous generation — after which SSH works again.
func TestAnsibleTrialOverSSH(t *testing.T) {
	l := newLab(t)
	sshHost(t, l)
	dir := filepath.Join(l.root, "ssh")
	os.WriteFile(filepath.Join(l.etc, "host.hcl"), []byte(hostPolicy), 0o644)
	vars := func(name, policy, timeout string, force bool) map[string]any {
		return map[string]any{
			"hw":          map[string]string{"config_dir": l.etc, "state_dir": l.state, "run_dir": l.run, "host_name": "web-1", "binary": binary},
			"policy_name": name, "policy": policy, "confirm_timeout": timeout, "force": force,
		}
	}

	out, code := ansiblePlaybook(t, l, "trial.yml", vars("web", fmt.Sprintf(webPolicy, "80"), "30s", false))
	if r := parseRecap(t, out); code != 0 || r.failed != 0 || r.unreachable != 0 {
		t.Fatalf("a trial that keeps SSH open: exit %d, %+v\n%s", code, r, out)
	}
	kept := l.table()
	if !strings.Contains(kept, "tcp dport 80 counter") {
		t.Fatalf("the confirmed generation is not in the kernel:\n%s", kept)
	}
	l.converged(t)
	if st := l.hostwall("status"); !strings.Contains(st, "Current generation: 1 ") || strings.Contains(st, "TRIAL") ||
		!strings.Contains(st, "Last trial: generation 1 confirmed") {
		t.Errorf("after the confirmation, status says:\n%s", st)
	}

	// No failsafe port and nothing else lets SSH in: this cuts the controller off.
	cut := "failsafe {\n  inbound  = []\n  outbound = []\n}\n"
	t.Run("refused without force", func(t *testing.T) {
		out, code := ansiblePlaybook(t, l, "trial.yml", vars("failsafe", cut, "8s", false))
		if code == 0 || !strings.Contains(out, "REFUSED") {
			t.Errorf("exit %d, want the lockout check's refusal\n%s", code, out)
		}
		if now := l.table(); now != kept {
			t.Errorf("the refused change reached the kernel:\n%s", now)
		}
		os.Remove(filepath.Join(l.etc, "failsafe.hcl"))
	})

	t.Run("forced, unconfirmed, rolled back by the host", func(t *testing.T) {
		start := time.Now()
		out, code := ansiblePlaybook(t, l, "trial.yml", vars("failsafe", cut, "8s", true))
		if code == 0 || !(strings.Contains(out, "no new connection reached the host") || strings.Contains(out, "rolled back before it could be confirmed")) {
			t.Errorf("exit %d, want the task to fail for want of a confirmation\n%s", code, out)
		}
		if !waitFor(20*time.Second, func() bool { return l.table() == kept }) {
			t.Fatalf("the host did not restore the previous generation; the kernel holds:\n%s", l.table())
		}
		t.Logf("rolled back %s after the playbook started", time.Since(start).Round(100*time.Millisecond))
		if !sshOK(l, dir) {
			t.Error("SSH does not get in after the rollback")
		}
	})
}
