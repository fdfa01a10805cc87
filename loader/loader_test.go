package loader

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// loadFixture loads one fixture: a file alone, or a directory as a whole
// configuration.
func loadFixture(t *testing.T, path string) (*Result, hcl.Diagnostics) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.IsDir() {
		return LoadDir(path, DirOptions{InsecureSkipPerms: true}) // the checkout may belong to anyone
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Load([]Source{{Path: path, Data: data}})
}

func TestValidFixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/valid/*")
	if len(paths) == 0 {
		t.Fatal("no valid fixtures")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			_, diags := loadFixture(t, p)
			for _, d := range diags {
				t.Errorf("unexpected diagnostic: %s", d.Error())
			}
		})
	}
}

var errorMarker = regexp.MustCompile(`# ERROR: (.+)$`)

// TestInvalidFixtures checks that every `# ERROR: <summary>` marker is
// reported at its file and line with that summary, and that nothing else is
// reported as an error.
func TestInvalidFixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/invalid/*")
	if len(paths) == 0 {
		t.Fatal("no invalid fixtures")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want := markers(t, p)
			if len(want) == 0 {
				t.Fatal("fixture has no # ERROR: markers")
			}
			_, diags := loadFixture(t, p)
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil {
					t.Errorf("diagnostic without a position: %s", d.Error())
					continue
				}
				got = append(got, fmt.Sprintf("%s:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Summary))
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("diagnostics mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// markers collects "file:line: summary" for every marker under path.
func markers(t *testing.T, path string) []string {
	t.Helper()
	var files []string
	if st, _ := os.Stat(path); st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*"))
	} else {
		files = []string{path}
	}
	var out []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for line := 1; sc.Scan(); line++ {
			if m := errorMarker.FindStringSubmatch(sc.Text()); m != nil {
				out = append(out, fmt.Sprintf("%s:%d: %s", f, line, strings.TrimSpace(m[1])))
			}
		}
		fh.Close()
	}
	slices.Sort(out)
	return out
}
