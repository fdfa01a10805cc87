package loader

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
)

// memoInputs are directories to load: the examples, and each valid
// fixture and Calico corpus file alone in a directory.
func memoInputs(t *testing.T) []string {
	dirs, _ := filepath.Glob("../examples/*")
	files, _ := filepath.Glob("testdata/valid/*")
	corpus, _ := filepath.Glob("../../shared/corpus/calico/*.yaml")
	for _, f := range append(files, corpus...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) < 20 {
		t.Fatalf("only %d inputs", len(dirs))
	}
	return dirs
}

// sameLoad fails unless got is the load want is: the same configuration,
// diagnostics and sources.
func sameLoad(t *testing.T, what string, want, got *Result, wantDiags, gotDiags hcl.Diagnostics) {
	t.Helper()
	if d := cmp.Diff(want.Config, got.Config, byValue()); d != "" {
		t.Errorf("%s: the configuration differs (-fresh +from the memo):\n%s", what, d)
	}
	if fmt.Sprint(wantDiags) != fmt.Sprint(gotDiags) {
		t.Errorf("%s: diagnostics %v, want %v", what, gotDiags, wantDiags)
	}
	if HashSources(got.Sources) != HashSources(want.Sources) {
		t.Errorf("%s: the sources differ", what)
	}
}

// sharesPolicies reports whether b's policies are a's very objects (b took
// them from the memo a filled).
func sharesPolicies(a, b *config.Config) bool {
	if len(a.Policies) != len(b.Policies) {
		return false
	}
	for i := range a.Policies {
		if a.Policies[i] != b.Policies[i] {
			return false
		}
	}
	return true
}

// TestMemoSameLoad: a load from the memo gives the very configuration,
// diagnostics and sources of a fresh load, for every example, fixture and
// corpus file (with warnings, errors or none); a file with an error is
// not kept.
func TestMemoSameLoad(t *testing.T) {
	kept := 0
	for _, dir := range memoInputs(t) {
		want, wantDiags := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
		memo := &Memo{}
		opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
		first, firstDiags := LoadDir(dir, opts)
		second, secondDiags := LoadDir(dir, opts)
		sameLoad(t, dir+", first load", want, first, wantDiags, firstDiags)
		sameLoad(t, dir+", second load", want, second, wantDiags, secondDiags)
		policies := len(want.Sources) - len(want.NetsFiles())
		if wantDiags.HasErrors() {
			if policies == 1 && memo.files.Len() != 0 {
				t.Errorf("%s: a file with errors was kept", dir)
			}
			continue
		}
		kept++
		if memo.files.Len() != policies {
			t.Errorf("%s: the memo holds %d files, want %d", dir, memo.files.Len(), policies)
		}
		if !sharesPolicies(first.Config, second.Config) {
			t.Errorf("%s: the second load decoded the files again", dir)
		}
	}
	if kept < 15 {
		t.Errorf("only %d inputs were kept", kept)
	}
}

// TestMemoErrorsNotKept: a policy file with an error is not kept (the
// others are) and is reported on every load; a nets file's error is
// reported with a memo as without one.
func TestMemoErrorsNotKept(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"p\" {\n  order = \"x\"\n}\n"), 0o644)
	memo := &Memo{}
	opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
	_, want := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
	for i := range 2 {
		if _, got := LoadDir(dir, opts); !got.HasErrors() || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("load %d: diagnostics %v, want %v", i+1, got, want)
		}
		if n := memo.files.Len(); n != 1 {
			t.Errorf("load %d: the memo holds %d files, want a.hcl only", i+1, n)
		}
	}
	os.Remove(filepath.Join(dir, "b.hcl"))
	if _, diags := LoadDir(dir, opts); diags.HasErrors() || memo.files.Len() != 1 || memo.nets.Len() != 1 {
		t.Errorf("after b.hcl went: %v, the memo holds %d files and %d nets files, want 1 and 1", diags, memo.files.Len(), memo.nets.Len())
	}
	os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("10.0.0.0/8\nbad\n"), 0o644)
	_, want = LoadDir(dir, DirOptions{InsecureSkipPerms: true})
	_, got := LoadDir(dir, opts)
	if fmt.Sprint(got) != fmt.Sprint(want) || !got.HasErrors() {
		t.Errorf("a bad nets file: diagnostics %v, want %v", got, want)
	}
	if memo.nets.Len() != 0 {
		t.Errorf("the memo holds %d nets files, want none (the bad one is not kept)", memo.nets.Len())
	}
}

// TestMemoUnchangedFile: when one policy file changes, the others come
// from the memo: a decoding planted in it under an unchanged file's key
// is what the load returns.
func TestMemoUnchangedFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hcl", "policy \"a\" {\n  order = 0\n}\n")
	write("b.hcl", "policy \"b\" {}\n")
	memo := &Memo{}
	opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
	if _, diags := LoadDir(dir, opts); diags.HasErrors() {
		t.Fatal(diags)
	}
	// Plant: a.hcl's key, another file's decoding.
	planted, diags := decodeFile(Source{Path: filepath.Join(dir, "a.hcl"), Data: []byte("policy \"planted\" {}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	aData, _ := os.ReadFile(filepath.Join(dir, "a.hcl"))
	memo.files.Keep(fileKey(Source{Path: filepath.Join(dir, "a.hcl"), Data: aData}), memoized{planted, nil})
	memo.files.Done()

	write("b.hcl", "policy \"b2\" {}\n")
	res, diags := LoadDir(dir, opts)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, p := range res.Config.Policies {
		names = append(names, p.Name)
	}
	if fmt.Sprint(names) != "[planted b2]" {
		t.Errorf("policies %v, want a.hcl's from the memo and b.hcl's anew: [planted b2]", names)
	}
	if n := memo.files.Len(); n != 2 {
		t.Errorf("the memo holds %d files, want both", n)
	}
}

// TestMemoDuplicatesAcrossFiles: objects two files declare are errors,
// and so is a policy in a tier no file declares, from the memo as
// without it (each file alone is kept: the errors are the merge's).
func TestMemoDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("policy \"web\" {\n  tier = \"t\"\n}\ntier \"t\" {}\nhost {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"web\" {}\nhost {}\npolicy \"x\" {\n  tier = \"none\"\n}\n"), 0o644)
	memo := &Memo{}
	opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
	for _, o := range []DirOptions{{InsecureSkipPerms: true}, opts, opts} {
		_, diags := LoadDir(dir, o)
		var got []string
		for _, d := range diags {
			got = append(got, fmt.Sprintf("%s:%d %s", filepath.Base(d.Subject.Filename), d.Subject.Start.Line, d.Summary))
		}
		if want := "[b.hcl:1 Duplicate policy b.hcl:2 Duplicate host b.hcl:4 Unknown tier]"; fmt.Sprint(got) != want {
			t.Errorf("diagnostics %v, want %s", got, want)
		}
	}
	if n := memo.files.Len(); n != 2 {
		t.Errorf("the memo holds %d files, want 2", n)
	}
}

// TestMemo: with a Memo, an unchanged file's objects are the last load's
// (the same pointers), a changed file's are new, and reading a nets file
// into a shared network set leaves the earlier load's set as it was.
func TestMemo(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"b\" {}\n"), 0o644)
	opts := DirOptions{InsecureSkipPerms: true, Memo: &Memo{}}
	load := func() *config.Config {
		t.Helper()
		res, diags := LoadDir(dir, opts)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return res.Config
	}
	first := load()
	os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("192.0.2.0/24\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"b2\" {}\n"), 0o644)
	second := load()
	if second.Policies[0].Name != "b2" || second.Policies[0] == first.Policies[0] {
		t.Errorf("the changed file: policy %q, shared %v", second.Policies[0].Name, second.Policies[0] == first.Policies[0])
	}
	if fmt.Sprint(first.NetworkSets[0].Nets) != "[198.51.100.0/24 10.0.0.0/8]" || fmt.Sprint(second.NetworkSets[0].Nets) != "[198.51.100.0/24 192.0.2.0/24]" {
		t.Errorf("nets: first load %v, second %v", first.NetworkSets[0].Nets, second.NetworkSets[0].Nets)
	}
	third := load()
	if third.Policies[0] != second.Policies[0] || third.NetworkSets[0].Labels["bad"] != "yes" {
		t.Error("an unchanged file was decoded again")
	}
	if fmt.Sprint(third.NetworkSets[0].Nets) != "[198.51.100.0/24 192.0.2.0/24]" {
		t.Errorf("third load nets %v", third.NetworkSets[0].Nets)
	}
}

// TestMemoNets: with a Memo, an unchanged nets file is not parsed again
// (the memo holds the very slice it parsed), a changed one is, and the
// network sets get copies either way.
func TestMemoNets(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	memo := &Memo{}
	opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
	bl := filepath.Join(dir, "bl.txt")
	// held is the memo's parse of bl.txt as it is now (which the next load
	// then keeps too).
	held := func() *netip.Prefix {
		t.Helper()
		data, _ := os.ReadFile(bl)
		nets, ok := memo.nets.Get(fileKey(Source{Path: bl, Data: data}))
		if !ok {
			t.Fatal("the memo does not hold bl.txt")
		}
		return &nets[0]
	}
	first, _ := LoadDir(dir, opts)
	if n := memo.nets.Len(); n != 1 {
		t.Fatalf("the memo holds %d nets files, want 1", n)
	}
	parsed := held()
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"b\" {}\n"), 0o644)
	second, _ := LoadDir(dir, opts)
	if held() != parsed {
		t.Error("an unchanged nets file was parsed again")
	}
	if &first.Config.NetworkSets[0].Nets[1] == parsed || &second.Config.NetworkSets[0].Nets[1] == parsed {
		t.Error("a network set holds the memo's slice")
	}
	os.WriteFile(bl, []byte("192.0.2.0/24\n"), 0o644)
	third, _ := LoadDir(dir, opts)
	if held() == parsed || fmt.Sprint(third.Config.NetworkSets[0].Nets) != "[198.51.100.0/24 192.0.2.0/24]" {
		t.Errorf("a changed nets file: %v", third.Config.NetworkSets[0].Nets)
	}
	LoadDir(dir, opts)
	if n := memo.nets.Len(); n != 1 {
		t.Errorf("after another load the memo holds %d nets files, want 1 (the old bl.txt forgotten)", n)
	}
}

// TestMemoPieces: a file decoded in pieces is kept as the pieces combined,
// and a load from the memo gives the configuration of a fresh load.
func TestMemoPieces(t *testing.T) {
	dir := t.TempDir()
	big := largePolicyFile(40, 50)
	if n := len(cut(big, pieceBytes)); n < 4 {
		t.Fatalf("the generated file is cut in %d pieces, too few", n)
	}
	for name, data := range map[string][]byte{"big.hcl": big, "small.hcl": []byte("policy \"small\" {}\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, wantDiags := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
	if wantDiags.HasErrors() {
		t.Fatal(wantDiags)
	}
	memo := &Memo{}
	opts := DirOptions{InsecureSkipPerms: true, Memo: memo}
	first, firstDiags := LoadDir(dir, opts)
	sameLoad(t, "first load", want, first, wantDiags, firstDiags)
	second, secondDiags := LoadDir(dir, opts)
	sameLoad(t, "from the memo", want, second, wantDiags, secondDiags)
	if memo.files.Len() != 2 || !sharesPolicies(first.Config, second.Config) {
		t.Errorf("the memo holds %d files (want 2), the second load shares the first's policies: %v", memo.files.Len(), sharesPolicies(first.Config, second.Config))
	}
}
