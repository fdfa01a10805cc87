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
	"github.com/hostwall/hostwall/internal/bincodec"
)

// memCache is a Cache that counts what it is asked.
type memCache struct {
	m          map[string][]byte
	hits, puts int
}

func (c *memCache) Get(key string) []byte {
	if v := c.m[key]; v != nil {
		c.hits++
		return v
	}
	return nil
}

func (c *memCache) Put(key string, v []byte) {
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	c.m[key] = v
	c.puts++
}

// cacheInputs are directories to load: the examples, and each valid
// fixture and Calico corpus file alone in a directory.
func cacheInputs(t *testing.T) []string {
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

// TestCacheSameLoad: a load from the cache gives the very configuration
// and diagnostics of a load without one, for every example, fixture and
// corpus file that loads (with warnings or none).
func TestCacheSameLoad(t *testing.T) {
	kept := 0
	for _, dir := range cacheInputs(t) {
		want, wantDiags := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
		c := &memCache{}
		opts := DirOptions{InsecureSkipPerms: true, Cache: c}
		first, firstDiags := LoadDir(dir, opts)
		second, secondDiags := LoadDir(dir, opts)
		if wantDiags.HasErrors() {
			if c.puts != 0 {
				t.Errorf("%s: a load with errors was kept", dir)
			}
			continue
		}
		kept++
		if c.puts != 1 || c.hits != 1 {
			t.Errorf("%s: %d puts, %d hits; want one of each", dir, c.puts, c.hits)
		}
		for _, got := range []struct {
			res   *Result
			diags hcl.Diagnostics
		}{{first, firstDiags}, {second, secondDiags}} {
			if d := cmp.Diff(want.Config, got.res.Config, byValue()); d != "" {
				t.Errorf("%s: the configuration differs (-without cache +with):\n%s", dir, d)
			}
			if fmt.Sprint(wantDiags) != fmt.Sprint(got.diags) {
				t.Errorf("%s: diagnostics %v, want %v", dir, got.diags, wantDiags)
			}
			if HashSources(got.res.Sources) != HashSources(want.Sources) {
				t.Errorf("%s: the sources differ", dir)
			}
		}
	}
	if kept < 15 {
		t.Errorf("only %d inputs were kept", kept)
	}
}

// TestCacheNetsFileRead: a changed nets file is read from the cache's
// decoding (a hit), a changed policy file is decoded again (a miss), and a
// damaged entry is a miss.
func TestCacheNetsFileRead(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	c := &memCache{}
	opts := DirOptions{InsecureSkipPerms: true, Cache: c}
	nets := func() string {
		t.Helper()
		res, diags := LoadDir(dir, opts)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return fmt.Sprint(res.Config.NetworkSets[0].Nets)
	}
	if got := nets(); got != "[198.51.100.0/24 10.0.0.0/8]" || c.puts != 1 {
		t.Fatalf("first load: %s, %d puts", got, c.puts)
	}
	os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("192.0.2.0/24\n"), 0o644)
	if got := nets(); got != "[198.51.100.0/24 192.0.2.0/24]" || c.hits != 1 || c.puts != 1 {
		t.Errorf("nets file changed: %s, %d hits, %d puts; want the new list from a hit", got, c.hits, c.puts)
	}
	// The hit's configuration is its own: the first load's sets are not
	// grown by the second's nets file.
	if got := nets(); got != "[198.51.100.0/24 192.0.2.0/24]" {
		t.Errorf("third load: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte(`network_set "bl" {
  nets_file = "bl.txt"
}
`), 0o644)
	if got := nets(); got != "[192.0.2.0/24]" || c.puts != 2 {
		t.Errorf("policy file changed: %s, %d puts; want a new decoding", got, c.puts)
	}
	for k, v := range c.m {
		c.m[k] = v[:len(v)/2]
	}
	if got := nets(); got != "[192.0.2.0/24]" || c.puts != 3 {
		t.Errorf("damaged entry: %s, %d puts; want a new decoding", got, c.puts)
	}
}

// kept returns the files whose decodings the cache holds for dir.
func (c *memCache) kept(t *testing.T, dir string, files ...string) map[string]bool {
	t.Helper()
	var b bundle
	if err := bincodec.Unmarshal(c.m[dirKey(dir)], &b); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, name := range files {
		path := filepath.Join(dir, name)
		data, _ := os.ReadFile(path)
		if b.Files[fileKey(Source{Path: path, Data: data})] != nil {
			out[name] = true
		}
	}
	if len(out) != len(b.Files) {
		t.Errorf("the cache holds %d decodings, %d of them for %v", len(b.Files), len(out), files)
	}
	return out
}

// TestCacheErrorsNotKept: a policy file with an error is not kept (the
// others are), and a nets file's error is reported on a hit as without a
// cache.
func TestCacheErrorsNotKept(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"p\" {\n  order = \"x\"\n}\n"), 0o644)
	c := &memCache{}
	opts := DirOptions{InsecureSkipPerms: true, Cache: c}
	if _, diags := LoadDir(dir, opts); !diags.HasErrors() {
		t.Fatal("no error")
	}
	if got := c.kept(t, dir, "a.hcl", "b.hcl"); !got["a.hcl"] || got["b.hcl"] {
		t.Errorf("kept %v, want a.hcl only", got)
	}
	os.Remove(filepath.Join(dir, "b.hcl"))
	LoadDir(dir, opts)
	if got := c.kept(t, dir, "a.hcl"); !got["a.hcl"] {
		t.Errorf("kept %v after b.hcl went, want a.hcl only", got)
	}
	os.WriteFile(filepath.Join(dir, "bl.txt"), []byte("10.0.0.0/8\nbad\n"), 0o644)
	_, want := LoadDir(dir, DirOptions{InsecureSkipPerms: true})
	hits := c.hits
	_, got := LoadDir(dir, opts)
	if c.hits != hits+1 || fmt.Sprint(got) != fmt.Sprint(want) || !got.HasErrors() {
		t.Errorf("%d hits, diagnostics %v, want %v", c.hits-hits, got, want)
	}
}

// TestCacheUnchangedFile: when one policy file changes, the others come
// from the cache: a decoding planted in it under an unchanged file's key
// is what the load returns.
func TestCacheUnchangedFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hcl", "policy \"a\" {\n  order = 0\n}\n")
	write("b.hcl", "policy \"b\" {}\n")
	c := &memCache{}
	opts := DirOptions{InsecureSkipPerms: true, Cache: c}
	if _, diags := LoadDir(dir, opts); diags.HasErrors() {
		t.Fatal(diags)
	}
	// Plant: a.hcl's key, another file's decoding.
	planted, diags, _ := decodeFile(Source{Path: filepath.Join(dir, "a.hcl"), Data: []byte("policy \"planted\" {}\n")})
	var b bundle
	if err := bincodec.Unmarshal(c.m[dirKey(dir)], &b); err != nil || diags.HasErrors() {
		t.Fatal(err, diags)
	}
	aData, _ := os.ReadFile(filepath.Join(dir, "a.hcl"))
	b.Files[fileKey(Source{Path: filepath.Join(dir, "a.hcl"), Data: aData})] = [][]byte{planted.encode(nil)}
	c.m[dirKey(dir)], _ = bincodec.Marshal(b)

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
		t.Errorf("policies %v, want a.hcl's from the cache and b.hcl's anew: [planted b2]", names)
	}
	if got := c.kept(t, dir, "a.hcl", "b.hcl"); !got["a.hcl"] || !got["b.hcl"] {
		t.Errorf("kept %v, want both files", got)
	}
}

// TestCacheDuplicatesAcrossFiles: objects two files declare are errors,
// from the cache as without it.
func TestCacheDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("policy \"web\" {\n  tier = \"t\"\n}\ntier \"t\" {}\nhost {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"web\" {}\nhost {}\npolicy \"x\" {\n  tier = \"none\"\n}\n"), 0o644)
	c := &memCache{}
	opts := DirOptions{InsecureSkipPerms: true, Cache: c}
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
	if c.hits != 1 {
		t.Errorf("%d hits, want 1", c.hits)
	}
}

// TestMemo: with a Memo, an unchanged file's objects are the last load's
// (the same pointers), a changed file's are new, and reading a nets file
// into a shared network set leaves the earlier load's set as it was.
func TestMemo(t *testing.T) {
	dir := netsDir(t, "bl.txt", "10.0.0.0/8\n")
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("policy \"b\" {}\n"), 0o644)
	opts := DirOptions{InsecureSkipPerms: true, Cache: &memCache{}, Memo: &Memo{}}
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

// TestCachePieces: a file decoded in pieces is kept piece by piece, and a
// load from the cache, which decodes the pieces on every core and combines
// them, gives the configuration of a load without one; a damaged piece is
// a miss.
func TestCachePieces(t *testing.T) {
	dir := t.TempDir()
	big := largePolicyFile(40, 50)
	if len(big) < 4*pieceBytes {
		t.Fatalf("the generated file has %d bytes, too few for pieces", len(big))
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
	c := &memCache{}
	opts := DirOptions{InsecureSkipPerms: true, Cache: c}
	check := func(when string) {
		t.Helper()
		got, diags := LoadDir(dir, opts)
		if d := cmp.Diff(want.Config, got.Config, byValue()); d != "" {
			t.Errorf("%s: the configuration differs (-without cache +with):\n%s", when, d)
		}
		if fmt.Sprint(wantDiags) != fmt.Sprint(diags) {
			t.Errorf("%s: diagnostics %v, want %v", when, diags, wantDiags)
		}
	}
	check("first load")
	var b bundle
	if err := bincodec.Unmarshal(c.m[dirKey(dir)], &b); err != nil {
		t.Fatal(err)
	}
	bigKey := fileKey(Source{Path: filepath.Join(dir, "big.hcl"), Data: big})
	if n := len(b.Files[bigKey]); n < 4 {
		t.Fatalf("the big file is kept in %d parts, want its pieces", n)
	}
	hits := c.hits
	check("from the cache")
	if c.hits != hits+1 {
		t.Errorf("the second load did not read the cache")
	}
	b.Files[bigKey][2] = b.Files[bigKey][2][:10]
	c.m[dirKey(dir)], _ = bincodec.Marshal(b)
	check("with a damaged piece")
}
