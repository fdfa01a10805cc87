package loader

import (
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostwall/hostwall/internal/testns"
)

const netsPolicy = "network_set \"bl\" {\n  labels    = { bad = \"yes\" }\n  nets      = [\"198.51.100.0/24\"]\n  nets_file = %q\n}\n"

func netsDir(t *testing.T, netsFile, list string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte(strings.Replace(netsPolicy, "%q", `"`+netsFile+`"`, 1)), 0o644)
	if list != "" {
		os.WriteFile(filepath.Join(dir, "bl.txt"), []byte(list), 0o644)
	}
	return dir
}

// TestNetsFile: a nets file's lines join the set's nets (comments, blank
// lines, single addresses); it becomes a source of the result, so a
// generation loaded from the sources alone gives the same set.
func TestNetsFile(t *testing.T) {
	dir := netsDir(t, "bl.txt", "# blocklist\n10.0.0.0/8\n192.0.2.1   # one host\n\n\t2001:db8::/32\n")
	res, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, p := range res.Config.NetworkSets[0].Nets {
		got = append(got, p.String())
	}
	if want := "198.51.100.0/24 10.0.0.0/8 192.0.2.1/32 2001:db8::/32"; strings.Join(got, " ") != want {
		t.Errorf("nets = %v, want %s", got, want)
	}
	if len(res.Sources) != 2 || filepath.Base(res.Sources[1].Path) != "bl.txt" {
		t.Fatalf("sources = %d, want the policy file and bl.txt", len(res.Sources))
	}
	again, diags := Load(res.Sources) // as a generation is loaded, without the disk
	if diags.HasErrors() || len(again.Config.NetworkSets[0].Nets) != 4 {
		t.Errorf("reloaded from the sources: %v, %d nets", diags, len(again.Config.NetworkSets[0].Nets))
	}
	if HashSources(again.Sources) != HashSources(res.Sources) {
		t.Error("the content hash changed on reload")
	}
}

// TestNetsFileRefusals: bad lines are named file:line:col; paths leaving
// the configuration directory, missing files and (as root) untrusted
// files are refused.
func TestNetsFileRefusals(t *testing.T) {
	for _, c := range []struct{ name, file, list, want string }{
		{"bad line", "bl.txt", "10.0.0.0/8\n  not-an-address\n", "bl.txt:2,3-17: Invalid network"},
		{"host bits", "bl.txt", "10.0.0.1/8\n", "bl.txt:1,1-11: Network has host bits set"},
		{"dot-dot", "../bl.txt", "", "nets_file outside the configuration directory"},
		{"absolute elsewhere", "/etc/hosts", "", "nets_file outside the configuration directory"},
		{"missing", "nope.txt", "", "Cannot read nets_file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := netsDir(t, c.file, c.list)
			_, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
				t.Errorf("got %v, want %q", diags, c.want)
			}
		})
	}
	t.Run("absolute inside", func(t *testing.T) {
		dir := netsDir(t, "", "10.0.0.0/8\n")
		os.WriteFile(filepath.Join(dir, "a.hcl"), []byte(strings.Replace(netsPolicy, "%q", `"`+filepath.Join(dir, "bl.txt")+`"`, 1)), 0o644)
		if _, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true}); diags.HasErrors() {
			t.Errorf("an absolute path inside the directory was refused: %v", diags)
		}
	})
	t.Run("world-writable", func(t *testing.T) {
		testns.RequireRoot(t)
		dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
		os.Chmod(filepath.Join(dir, "bl.txt"), 0o666)
		_, diags := LoadDir(dir, DirOptions{})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "bl.txt is writable by group or others (mode 0666)") {
			t.Errorf("a world-writable nets file was loaded: %v", diags)
		}
	})
	t.Run("too large", func(t *testing.T) {
		dir := netsDir(t, "bl.txt", strings.Repeat("10.0.0.0/8\n", 100))
		fi, _ := os.Stat(filepath.Join(dir, "a.hcl"))
		// The nets file's own limit, not the policy files'.
		if _, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true, MaxFileBytes: fi.Size(), MaxNetsFileBytes: 1100}); diags.HasErrors() {
			t.Errorf("a nets file at its limit: %v", diags)
		}
		_, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true, MaxFileBytes: 1 << 20, MaxNetsFileBytes: 1099})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "bl.txt is 1100 bytes, above the limit of 1099 (raise it with --max-nets-file-bytes)") {
			t.Errorf("an oversized nets file was loaded: %v", diags)
		}
	})
}

// FuzzNetsFile: any content parses without panic into masked prefixes or
// errors that name the file and a line.
func FuzzNetsFile(f *testing.F) {
	f.Add([]byte("# c\n10.0.0.0/8\n192.0.2.1 # x\n\n2001:db8::/32\n"))
	f.Add([]byte("10.0.0.1/8\n::ffff:1.2.3.4\nfe80::1%eth0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nets, diags := ParseNetsFile("bl.txt", data)
		for _, p := range nets {
			if p.Masked() != p {
				t.Errorf("%s has host bits", p)
			}
		}
		for _, d := range diags {
			if d.Subject == nil || d.Subject.Filename != "bl.txt" || d.Subject.Start.Line < 1 {
				t.Errorf("diagnostic without file:line: %v", d)
			}
		}
	})
}

// TestParseCIDR4: the IPv4 fast path takes only what netip parses, and
// gives netip's answer, on forms near the canonical ones and on random
// strings of the characters involved; every canonical form is taken.
func TestParseCIDR4(t *testing.T) {
	general := func(s string) (netip.Prefix, bool) {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				return netip.Prefix{}, false
			}
			return netip.PrefixFrom(a, 32), true
		}
		p, err := netip.ParsePrefix(s)
		return p, err == nil && p.Addr().Is4() && p.Masked() == p
	}
	check := func(s string) bool { // whether the fast path took s
		got, ok := parseCIDR4(s)
		want, wantOK := general(s)
		if ok && (!wantOK || got != want) {
			t.Fatalf("parseCIDR4(%q) = %v, netip: %v %v", s, got, want, wantOK)
		}
		return ok
	}
	for _, s := range []string{"0.0.0.0", "0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/8", "192.168.1.0/24",
		"10.0.0.1/8", "010.0.0.0/8", "10.0.0.0/08", "10.0.0.0/33", "256.0.0.0", "1.2.3", "1.2.3.4.5", "1.2.3.4/", "1.2.3.4/ 8",
		" 1.2.3.4", "1.2.3.4 ", "::1", "::ffff:1.2.3.4", "1.2.3.4%eth0", "1.2.3.4/+8", "1.2.3.4/-8", "", "/8", "1..2.3", "1.2.3.4/1234"} {
		check(s)
	}
	rng := rand.New(rand.NewSource(1))
	const chars = "0123456789./"
	for range 200000 {
		b := make([]byte, 1+rng.Intn(18))
		for i := range b {
			b[i] = chars[rng.Intn(len(chars))]
		}
		check(string(b))
	}
	for range 100000 {
		a := netip.AddrFrom4([4]byte{byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))})
		p := netip.PrefixFrom(a, rng.Intn(33)).Masked()
		if !check(p.String()) {
			t.Fatalf("the canonical %v is not taken", p)
		}
	}
}

// checkChangedLines holds ChangedLines to its promise: gone and came are
// whole lines of old and now, no line both went and came, and taking
// gone's lines from old's and adding came's gives now's (as multisets, as
// a set's sources are).
func checkChangedLines(t *testing.T, old, now []byte) {
	t.Helper()
	gone, came := ChangedLines(old, now)
	inGone := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(gone), "\n"), "\n") {
		inGone[l] = len(gone) > 0
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(came), "\n"), "\n") {
		if len(came) > 0 && inGone[l] {
			t.Fatalf("%q → %q: line %q both went (%q) and came (%q)", old, now, l, gone, came)
		}
	}
	count := map[string]int{}
	lines := func(b []byte, n int) {
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if l != "" {
				count[strings.TrimSuffix(l, "\n")] += n
			}
		}
	}
	lines(old, 1)
	lines(gone, -1)
	lines(came, 1)
	lines(now, -1)
	for l, n := range count {
		if n != 0 {
			t.Fatalf("%q → %q (gone %q, came %q): line %q off by %d", old, now, gone, came, l, n)
		}
	}
}

// TestChangedLines: the usual edits of a nets file, and random ones, give
// the lines edited (or fewer: an edit that leaves a line as it was).
func TestChangedLines(t *testing.T) {
	for _, tc := range []struct{ old, now, gone, came string }{
		{"a\nb\nc\n", "a\nx\nc\n", "b\n", "x\n"},
		{"a\nb\n", "a\nb\nc\n", "", "c\n"},
		{"a\nb\nc\n", "b\nc\n", "a\n", ""},
		{"a\nb", "a\nc", "b\n", "c\n"},
		{"a\nb", "a\nb\nc", "", "c\n"},
		{"# generated 1\na\nb\nc\n", "# generated 2\na\nb\nc\nd\n", "# generated 1\n", "# generated 2\nd\n"},
		{"a\nb\nc\n", "c\nb\na\n", "", ""},
		{"a\na\nb\n", "b\na\n", "a\n", ""},
		{"ab\n", "b\n", "ab\n", "b\n"},
		{"10.0.0.0/30\n10.0.0.8/30\n", "11.0.0.0/30\n10.0.0.8/30\n", "10.0.0.0/30\n", "11.0.0.0/30\n"},
		{"10.0.0.1/32\n", "10.0.0.11/32\n", "10.0.0.1/32\n", "10.0.0.11/32\n"},
		{"same\n", "same\n", "", ""},
		{"", "a\n", "", "a\n"},
	} {
		gone, came := ChangedLines([]byte(tc.old), []byte(tc.now))
		if string(gone) != tc.gone || string(came) != tc.came {
			t.Errorf("%q → %q: gone %q, came %q; want %q, %q", tc.old, tc.now, gone, came, tc.gone, tc.came)
		}
		checkChangedLines(t, []byte(tc.old), []byte(tc.now))
	}
	rng := rand.New(rand.NewSource(5))
	words := []string{"10.0.0.0/30", "10.0.0.0/3", "10.0.0.4/30", "# x", "", "1.2.3.4"}
	for i := range 20000 {
		n := 8
		if i%10 == 0 {
			n = 400 // past commonPrefix's blocks
		}
		var lines []string
		for range rng.Intn(n) {
			lines = append(lines, words[rng.Intn(len(words))])
		}
		old := strings.Join(lines, "\n")
		for range 1 + rng.Intn(3) {
			i := rng.Intn(len(lines) + 1)
			switch rng.Intn(3) {
			case 0:
				lines = append(lines[:i:i], append([]string{words[rng.Intn(len(words))]}, lines[i:]...)...)
			case 1:
				if i < len(lines) {
					lines = append(lines[:i:i], lines[i+1:]...)
				}
			default:
				if i < len(lines) {
					lines[i] = words[rng.Intn(len(words))]
				}
			}
		}
		now := strings.Join(lines, "\n")
		if rng.Intn(2) == 0 {
			old, now = old+"\n", now+"\n"
		}
		checkChangedLines(t, []byte(old), []byte(now))
	}
}

// FuzzChangedLines: checkChangedLines for any two contents.
func FuzzChangedLines(f *testing.F) {
	f.Add([]byte("10.0.0.0/30\n10.0.0.8/30\n"), []byte("11.0.0.0/30\n10.0.0.8/30\n"))
	f.Add([]byte("a\nb"), []byte("a\nb\nc"))
	f.Fuzz(func(t *testing.T, old, now []byte) {
		checkChangedLines(t, old, now)
	})
}

// BenchmarkChangedLinesHeaderTail: a 100,000-line nets file whose header
// line changed and which gained a network at the end — both ends differ,
// as a list generator's output does.
func BenchmarkChangedLinesHeaderTail(b *testing.B) {
	var old strings.Builder
	old.WriteString("# generated 1\n")
	for i := range 100_000 {
		fmt.Fprintf(&old, "10.%d.%d.0/24\n", i>>8&255, i&255)
	}
	now := strings.Replace(old.String(), "# generated 1", "# generated 2", 1) + "11.0.0.0/24\n"
	o, n := []byte(old.String()), []byte(now)
	b.SetBytes(int64(len(n)))
	for b.Loop() {
		gone, came := ChangedLines(o, n)
		if len(gone) != len("# generated 1\n") || len(came) != len("# generated 2\n11.0.0.0/24\n") {
			b.Fatalf("gone %q, came %q", gone, came)
		}
	}
}
