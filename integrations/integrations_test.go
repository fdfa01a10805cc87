// Package integrations tests the Ansible collection and the Puppet module
// with the real ansible-playbook and puppet from Debian's packages, against
// a network namespace each test creates: the host's own firewall, /etc/hostwall,
// /var/lib/hostwall and /run/hostwall are never touched.
package integrations

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hostwall/hostwall/internal/testns"
)

// binary is hostwall, built once for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostwall-integrations")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "hostwall")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/hostwall").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hostwall: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lab is one host under test: a network namespace, and hostwall's
// configuration, state and run directories of its own.
type lab struct {
	t                         *testing.T
	ns, root, etc, state, run string
	tmp                       string
	// env is more environment for the tools the test runs.
	env []string
	// inventory and controller, when set, make Ansible reach the hosts
	// of that inventory from inside the namespace controller.
	inventory, controller string
}

// hostPolicy labels the host as a web server and protects eth0.
const hostPolicy = `host {
  labels = { role = "web" }
}

host_endpoint "eth0" {
  interface = "eth0"
}
`

// webPolicy lets TCP port %s in.
const webPolicy = `policy "web" {
  selector = "role == 'web'"
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [%s] }
  }
}
`

// extraPolicy is the unmanaged file the purge tests remove.
const extraPolicy = `policy "extra" {
  selector = "all()"
  ingress {
    action   = "allow"
    protocol = "udp"
    destination { ports = [5353] }
  }
}
`

func newLab(t *testing.T) *lab {
	t.Helper()
	ns := testns.New(t)
	root := t.TempDir()
	l := &lab{t: t, ns: ns, root: root, etc: filepath.Join(root, "etc"), state: filepath.Join(root, "state"),
		run: filepath.Join(root, "run"), tmp: filepath.Join(root, "tmp")}
	testns.StopStragglers(t, l.run) // a trial's guard outliving the test
	for _, d := range []string{l.etc, l.tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// counters are the values nft lists, which traffic changes.
var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// table is table inet hostwall in the lab's namespace as nft lists it
// (the independent oracle), counter values left out; "" when there is none.
func (l *lab) table() string {
	l.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.ns, "nft", "list", "table", "inet", "hostwall").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		l.t.Fatalf("nft list table: %v\n%s", err, out)
	}
	return canonical(counters.ReplaceAllString(string(out), "counter"))
}

// canonical orders the table's chains, sets and maps by name: nft lists them
// in the order they were made, which a rollback that remakes some changes.
// The rules within a chain keep their order.
func canonical(table string) string {
	var head, tail string
	var blocks []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(table, "\n") {
		switch {
		case strings.HasPrefix(line, "table "):
			head = line
		case line == "}\n" || line == "}":
			tail = line
		case strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "\t\t") && strings.HasSuffix(line, "{\n"):
			cur.Reset()
			cur.WriteString(line)
		case line == "\t}\n":
			cur.WriteString(line)
			blocks = append(blocks, cur.String())
		default:
			cur.WriteString(line)
		}
	}
	sort.Strings(blocks)
	return head + strings.Join(blocks, "") + tail
}

// files is the configuration directory: name → contents and mode.
func (l *lab) files() map[string]string {
	l.t.Helper()
	entries, err := os.ReadDir(l.etc)
	if err != nil {
		l.t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(l.etc, e.Name()))
		if err != nil {
			l.t.Fatal(err)
		}
		fi, _ := e.Info()
		m[e.Name()] = fmt.Sprintf("%v %s", fi.Mode(), data)
	}
	return m
}

// firstApplied checks what a first run leaves: web.hcl's port 80 in the
// kernel, host.hcl and web.hcl written 0644. It returns the files and the
// table, for later runs to leave as they are.
func (l *lab) firstApplied() (files map[string]string, table string) {
	l.t.Helper()
	table = l.table()
	if !strings.Contains(table, "tcp dport 80 counter") {
		l.t.Fatalf("the kernel lacks the policy after the first run:\n%s", table)
	}
	files = l.files()
	for _, name := range []string{"host.hcl", "web.hcl"} {
		if !strings.HasPrefix(files[name], "-rw-r--r-- ") {
			l.t.Errorf("%s: %q, want a 0644 file", name, files[name])
		}
	}
	return files, table
}

// addUnmanaged puts extraPolicy into the directory as extra.hcl, which no
// tool manages, and applies it with the CLI.
func (l *lab) addUnmanaged(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.etc, "extra.hcl"), []byte(extraPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	l.hostwall("apply", "--auto-approve")
	if !strings.Contains(l.table(), "udp dport 5353") {
		t.Fatal("the unmanaged policy did not reach the kernel")
	}
}

// purged checks that extra.hcl is gone, and its rules with it, while
// web.hcl's stay.
func (l *lab) purged(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(l.etc, "extra.hcl")); !os.IsNotExist(err) {
		t.Errorf("extra.hcl is still there: %v", err)
	}
	if now := l.table(); strings.Contains(now, "5353") || !strings.Contains(now, "tcp dport 80 counter") {
		t.Errorf("after the purge the kernel holds:\n%s", now)
	}
	l.converged(t)
}

// converged fails the test unless a plan that reads the kernel in full
// finds it holding exactly the configuration directory: what every
// apply the tools ran must leave.
func (l *lab) converged(t *testing.T) {
	t.Helper()
	all := []string{"--no-color", "--config", l.etc, "--state-dir", l.state, "--run-dir", l.run, "--netns", l.ns, "--host-name", "web-1",
		"plan", "--refresh", "--detailed-exitcode"}
	if out, err := exec.Command(binary, all...).CombinedOutput(); err != nil {
		t.Errorf("plan --refresh after the tools' applies: %v\n%s", err, out)
	}
}

// write puts a file into the lab's scratch directory and returns its path.
func (l *lab) write(name, data string) string {
	l.t.Helper()
	p := filepath.Join(l.tmp, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// hostwall runs the CLI on the lab and fails the test if it fails.
func (l *lab) hostwall(args ...string) string {
	l.t.Helper()
	all := append([]string{"--no-color", "--config", l.etc, "--state-dir", l.state, "--run-dir", l.run, "--netns", l.ns, "--host-name", "web-1"}, args...)
	out, err := exec.Command(binary, all...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("hostwall %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// unchanged fails the test when the files or the kernel differ from before.
func (l *lab) unchanged(what string, files map[string]string, table string) {
	l.t.Helper()
	if now := l.files(); fmt.Sprint(now) != fmt.Sprint(files) {
		l.t.Errorf("%s changed the configuration directory:\nbefore %v\nafter  %v", what, files, now)
	}
	if now := l.table(); now != table {
		l.t.Errorf("%s changed the kernel:\nbefore\n%s\nafter\n%s", what, table, now)
	}
}

// run runs a command with extra environment; it returns combined output
// and the exit code (-1 when it could not start).
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), 0
}

// tool fails the test when a program the test needs is missing: make test
// installs them (scripts/deps.sh).
func tool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (make test installs it: scripts/deps.sh)", name)
	}
}
