// Package packaging_test checks the systemd unit with systemd's own tools.
package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// tool returns the path of systemd-analyze (Debian's systemd package; it
// works without systemd running), failing under CI when it is missing.
func tool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("HOSTWALL_REQUIRE_ROOT_TESTS") != "" {
			t.Fatal("systemd-analyze is missing: apt-get install -y systemd (make test does)")
		}
		t.Skip("systemd-analyze is missing: apt-get install -y systemd")
	}
	return p
}

// TestUnitVerifies: systemd-analyze verify prints nothing. It checks that
// ExecStart= and ExecReload= exist, so they are looked up in a root
// holding the built binary and kill, as the package installs them.
func TestUnitVerifies(t *testing.T) {
	analyze := tool(t)
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(root, "usr/bin/hostwall"), "../cmd/hostwall").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kill, err := filepath.EvalSymlinks("/bin/kill")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, kill, filepath.Join(root, "bin/kill"), 0o755)
	unit := filepath.Join(root, "etc/systemd/system/hostwall.service")
	copyFile(t, "hostwall.service", unit, 0o644)
	out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for hostwall\.service: ([0-9.]+)`)

// TestUnitExposure: systemd-analyze security rates the unit 2.0 or better,
// alone, with the drop-in that lets the agent serve and write metrics
// (metrics.conf), and with the one that lets it reach etcd (etcd.conf).
func TestUnitExposure(t *testing.T) {
	t.Run("unit", func(t *testing.T) { exposure(t, "") })
	t.Run("with metrics.conf", func(t *testing.T) { exposure(t, "metrics.conf") })
	t.Run("with etcd.conf", func(t *testing.T) { exposure(t, "etcd.conf") })
}

func exposure(t *testing.T, dropIn string) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(filepath.Join(dir, "hostwall.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "hostwall.service", filepath.Join(dir, "hostwall.service"), 0o644)
	if dropIn != "" {
		copyFile(t, dropIn, filepath.Join(dir, "hostwall.service.d", dropIn), 0o644)
	}
	out, err := exec.Command(tool(t), "security", "--offline=true", "--root="+root, "hostwall.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if dropIn != "" && !regexp.MustCompile(`(?m)^✗ RestrictAddressFamilies=~AF_\(INET\|INET6\)`).Match(out) {
		t.Errorf("the drop-in %s was not read: the unit still denies AF_INET:\n%s", dropIn, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", level)
	if level > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", level, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}
