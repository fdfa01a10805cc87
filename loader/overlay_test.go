package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOverlay: the directory is loaded as it would be after a change —
// replaced files are read from elsewhere but named by their place in the
// directory, new files join, removed ones (policy or nets file) are left
// out — and the directory itself is not touched.
func TestOverlay(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("network_set \"b\" {\n  nets = [\"192.0.2.0/24\"]\n}\n"), 0o644)
	elsewhere := t.TempDir()
	put := func(name, data string) string {
		p := filepath.Join(elsewhere, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sets := func(res *Result) string {
		var out []string
		for _, s := range res.Config.NetworkSets {
			var nets []string
			for _, n := range s.Nets {
				nets = append(nets, n.String())
			}
			out = append(out, s.Name+"="+strings.Join(nets, ","))
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		name    string
		overlay map[string]string
		want    string // sets, or an error's text
	}{
		{"none", nil, "bl=198.51.100.0/24,10.0.0.0/8 b=192.0.2.0/24"},
		{"replace policy", map[string]string{"b.hcl": put("new-b", "network_set \"b2\" {\n  nets = [\"203.0.113.0/24\"]\n}\n")},
			"bl=198.51.100.0/24,10.0.0.0/8 b2=203.0.113.0/24"},
		{"add policy", map[string]string{"c.yaml": put("c", "network_set:\n  c:\n    nets: [\"192.0.2.128/25\"]\n")},
			"bl=198.51.100.0/24,10.0.0.0/8 b=192.0.2.0/24 c=192.0.2.128/25"},
		{"remove policy", map[string]string{"b.hcl": ""}, "bl=198.51.100.0/24,10.0.0.0/8"},
		{"replace nets file", map[string]string{"bl.txt": put("bl", "172.16.0.0/12\n")}, "bl=198.51.100.0/24,172.16.0.0/12 b=192.0.2.0/24"},
		{"remove nets file", map[string]string{"bl.txt": ""}, "bl.txt is removed by the change being validated"},
		{"error named in place", map[string]string{"b.hcl": put("broken", "network_set \"b\" {\n  nets = [\"nope\"]\n}\n")},
			filepath.Join(dir, "b.hcl") + ":2,"},
		{"outside", map[string]string{"../x.hcl": put("x", "")}, "is not a file name inside"},
		{"the directory itself", map[string]string{".": put("y", "")}, "is not a file name inside"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, diags := LoadDir(dir, DirOptions{InsecureSkipPerms: true, Overlay: c.overlay})
			if diags.HasErrors() {
				var msgs []string
				for _, d := range diags {
					msgs = append(msgs, d.Error())
				}
				if got := strings.Join(msgs, "; "); !strings.Contains(got, c.want) {
					t.Errorf("errors %q, want %q", got, c.want)
				}
				return
			}
			if got := sets(res); got != c.want {
				t.Errorf("sets %q, want %q", got, c.want)
			}
		})
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 3 {
		t.Errorf("the directory changed: %v", names)
	}
}
