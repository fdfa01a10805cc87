package state

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hostwall/hostwall/internal/testns"
)

func TestGenerations(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Keep: 3}
	for i := 0; i < 5; i++ {
		g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n",
			Files: []File{{Path: "/etc/hostwall/a.hcl", Data: []byte("policy \"p\" {}\n")}}}
		if err := s.Record(g); err != nil {
			t.Fatal(err)
		}
		if g.Number != i+1 {
			t.Errorf("generation numbered %d, want %d", g.Number, i+1)
		}
	}
	// A process killed while recording leaves a temporary directory behind.
	os.Mkdir(filepath.Join(s.Dir, "generations", ".tmp-1-123"), 0o700)
	nums, err := s.Numbers()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{3, 4, 5}, nums); diff != "" {
		t.Errorf("kept generations (-want +got):\n%s", diff)
	}
	if cur, _ := s.Current(); cur != 5 {
		t.Errorf("current = %d, want 5", cur)
	}
	g, err := s.Load(4)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Files[0].Data) != "policy \"p\" {}\n" || g.RulesetHash != HashRuleset(g.Ruleset) {
		t.Errorf("generation 4 did not load back: %+v", g)
	}
	// Pruning never removes the current generation, even an old one (after
	// a rollback to it).
	s.SetCurrent(3)
	s.Keep = 1
	if err := s.prune(3); err != nil {
		t.Fatal(err)
	}
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{3, 5}) {
		t.Errorf("after pruning to 1 with generation 3 current: %v, want [3 5]", nums)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, "generations")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("generations directory mode %v, want 0700: it records SSH_CONNECTION addresses", fi.Mode().Perm())
	}
}

// TestPruneNamesFirst: the generations that only followed domain names go
// before the others, whatever their age; the newest stays.
func TestPruneNamesFirst(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Keep: 3}
	for _, reason := range []string{"apply", "agent: " + NamesReason, "apply", "agent: " + NamesReason + " (trial)", "agent: " + NamesReason, "agent: " + NamesReason} {
		if err := s.Record(&Generation{Time: time.Now(), Reason: reason, Ruleset: "table inet hostwall {}\n"}); err != nil {
			t.Fatal(err)
		}
	}
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{1, 3, 6}) {
		t.Errorf("kept %v, want the two applies and the newest: [1 3 6]", nums)
	}
}

// TestPruneUnchangedDatastoreFirst: the generations a datastore change made
// without changing this host's ruleset (the next generation has the same)
// go first; one that changed it stays.
func TestPruneUnchangedDatastoreFirst(t *testing.T) {
	s := &Store{Dir: t.TempDir(), Keep: 3}
	for _, g := range []struct{ reason, ruleset string }{
		{"apply", "a"}, {"agent: " + DatastoreReason, "b"}, {"agent: " + DatastoreReason, "b"},
		{"agent: " + DatastoreReason, "b"}, {"agent: " + DatastoreReason, "c"}, {"agent: " + DatastoreReason, "c"},
	} {
		if err := s.Record(&Generation{Time: time.Now(), Reason: g.reason, Ruleset: "table inet hostwall { comment \"" + g.ruleset + "\" }\n"}); err != nil {
			t.Fatal(err)
		}
	}
	// 2 and 3 have 4's ruleset, 5 has 6's: they go, oldest first, until 3 are left.
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{1, 4, 6}) {
		t.Errorf("kept %v, want the apply, the last of ruleset b and the newest: [1 4 6]", nums)
	}
}

// TestPreparePlaceAbort: a prepared generation is no generation until it
// is placed, and not current until made so; an aborted one leaves
// nothing, placed or not; Clean removes what a killed writer left, and
// only a dead writer's.
func TestPreparePlaceAbort(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	gen := func() *Generation {
		return &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n",
			Files: []File{{Path: "/etc/hostwall/a.hcl", Data: []byte("policy \"p\" {}\n")}}}
	}
	if err := s.Record(gen()); err != nil {
		t.Fatal(err)
	}
	p, err := s.Prepare(gen())
	if err != nil {
		t.Fatal(err)
	}
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{1}) {
		t.Errorf("a prepared generation is listed: %v", nums)
	}
	p.Abort()
	if left, _ := filepath.Glob(filepath.Join(s.Dir, "generations", ".*")); len(left) != 0 {
		t.Errorf("an aborted generation left %v", left)
	}

	g := gen()
	if p, err = s.Prepare(g); err != nil {
		t.Fatal(err)
	}
	if err := p.Place(); err == nil {
		t.Error("a generation was placed without its ruleset")
	}
	if err := p.WriteRuleset(g.Ruleset); err != nil {
		t.Fatal(err)
	}
	if err := p.Place(); err != nil {
		t.Fatal(err)
	}
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{1, 2}) || g.Number != 2 {
		t.Errorf("after Place: %v (numbered %d), want [1 2]", nums, g.Number)
	}
	if cur, _ := s.Current(); cur != 1 {
		t.Errorf("current = %d while 2 is only placed", cur)
	}
	p.Abort()
	if nums, _ := s.Numbers(); !cmp.Equal(nums, []int{1}) {
		t.Errorf("a placed generation aborted is still listed: %v", nums)
	}

	dead := filepath.Join(s.Dir, "generations", ".tmp-999999999-x")
	live := filepath.Join(s.Dir, "generations", fmt.Sprintf(".tmp-%d-y", os.Getpid()))
	deadFile := filepath.Join(s.Dir, ".current.tmp-999999999-z")
	os.Mkdir(dead, 0o700)
	os.Mkdir(live, 0o700)
	os.WriteFile(deadFile, nil, 0o600)
	s.Clean()
	for path, want := range map[string]bool{dead: false, live: true, deadFile: false} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("after Clean, %s exists = %v, want %v", path, err == nil, want)
		}
	}
	if back, err := s.Load(1); err != nil || string(back.Files[0].Data) != "policy \"p\" {}\n" {
		t.Errorf("generation 1 does not load back: %v", err)
	}
}

// TestUnchangedFilesLinked: a generation links the files the current one
// holds unchanged instead of writing them again; each reads back as
// recorded, also once the older generation is pruned.
func TestUnchangedFilesLinked(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	record := func(blocklist string) *Generation {
		t.Helper()
		g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n", Files: []File{
			{Path: "/etc/hostwall/policy.hcl", Data: []byte("policy \"p\" {}\n")},
			{Path: "/etc/hostwall/bl.txt", Data: []byte(blocklist)},
		}}
		if err := s.Record(g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	inode := func(n, i int, path string) uint64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(s.path(n), "files", fileName(i, path)))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	record("10.0.0.0/8\n")
	record("10.0.0.0/8\n192.0.2.0/24\n")
	if inode(1, 0, "policy.hcl") != inode(2, 0, "policy.hcl") {
		t.Error("the unchanged policy file was written again, not linked")
	}
	if inode(1, 1, "bl.txt") == inode(2, 1, "bl.txt") {
		t.Error("the changed nets file shares the old one's inode")
	}
	s.Keep = 1
	if err := s.prune(2); err != nil {
		t.Fatal(err)
	}
	g, err := s.Load(2)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Files[0].Data) != "policy \"p\" {}\n" || string(g.Files[1].Data) != "10.0.0.0/8\n192.0.2.0/24\n" {
		t.Errorf("generation 2 after pruning 1: %q, %q", g.Files[0].Data, g.Files[1].Data)
	}
}

// TestCurrentFile: the current generation's copy of a file, found by path
// and SHA-256, and refused when either does not match or the copy was
// changed on disk.
func TestCurrentFile(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if _, err := s.CurrentFile("/etc/hostwall/bl.txt", hashHex(nil)); err == nil {
		t.Error("a file of no generation")
	}
	data := []byte("10.0.0.0/8\n")
	g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n", Files: []File{
		{Path: "/etc/hostwall/policy.hcl", Data: []byte("policy \"p\" {}\n")},
		{Path: "/etc/hostwall/bl.txt", Data: data},
	}}
	if err := s.Record(g); err != nil {
		t.Fatal(err)
	}
	sum := hashHex(data)
	if got, err := s.CurrentFile("/etc/hostwall/bl.txt", sum); err != nil || string(got) != string(data) {
		t.Errorf("CurrentFile = %q, %v", got, err)
	}
	if _, err := s.CurrentFile("/etc/hostwall/other.txt", sum); err == nil {
		t.Error("another path with the same content")
	}
	if _, err := s.CurrentFile("/etc/hostwall/bl.txt", hashHex([]byte("10.0.0.0/9\n"))); err == nil {
		t.Error("the path with another content")
	}
	copyPath := filepath.Join(s.path(1), "files", fileName(1, "/etc/hostwall/bl.txt"))
	if err := os.WriteFile(copyPath, []byte("10.0.0.0/9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CurrentFile("/etc/hostwall/bl.txt", sum); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged copy: %v", err)
	}
}

// TestListRecordsOnly: List gives every generation's record, files named
// and hashed, without reading their contents or the rulesets; a
// generation whose copy of a file is gone, or emptied, is listed as
// damaged, the others as they are, and Load of it fails naming the file.
func TestListRecordsOnly(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for _, list := range []string{"10.0.0.0/8\n", "10.0.0.0/8\n192.0.2.0/24\n", "192.0.2.0/24\n"} {
		g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n",
			Files: []File{{Path: "/etc/hostwall/bl.txt", Data: []byte(list)}}}
		if err := s.Record(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(s.path(1), "files", fileName(0, "/etc/hostwall/bl.txt"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.path(2), "files", fileName(0, "/etc/hostwall/bl.txt")), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	gens, err := s.List()
	if err != nil || len(gens) != 3 {
		t.Fatalf("List = %d generations, %v", len(gens), err)
	}
	for i, g := range gens {
		damaged := i < 2
		if g.Number != i+1 || (g.Damaged != "") != damaged {
			t.Errorf("generation %d listed as %+v, damaged %v", i+1, g, damaged)
		}
		if !damaged && (len(g.Files) != 1 || g.Files[0].SHA256 == "" || g.Files[0].Data != nil || g.Ruleset != "" || g.RulesetHash == "") {
			t.Errorf("generation %d listed as %+v", i+1, g)
		}
	}
	for _, n := range []int{1, 2} {
		var d *DamagedError
		if _, err := s.Load(n); !errors.As(err, &d) || !strings.Contains(err.Error(), "bl.txt") {
			t.Errorf("Load of generation %d without its file: %v, want a DamagedError naming bl.txt", n, err)
		}
	}
}

// TestDamagedRecord: a generation whose record is cut short, or whose file
// has the recorded size but not the content, is named as damaged and
// never loads; the others still list.
func TestDamagedRecord(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for _, list := range []string{"10.0.0.0/8\n", "10.0.0.0/9\n", "10.0.0.0/10\n"} {
		g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n",
			Files: []File{{Path: "/etc/hostwall/bl.txt", Data: []byte(list)}}}
		if err := s.Record(g); err != nil {
			t.Fatal(err)
		}
	}
	meta := filepath.Join(s.path(1), "meta.json")
	data, _ := os.ReadFile(meta)
	os.WriteFile(meta, data[:len(data)/2], 0o600)
	os.WriteFile(filepath.Join(s.path(2), "files", fileName(0, "/etc/hostwall/bl.txt")), []byte("10.0.0.0/7\n"), 0o600)
	gens, err := s.List()
	if err != nil || len(gens) != 3 || gens[0].Damaged == "" || gens[1].Damaged != "" || gens[2].Damaged != "" {
		t.Fatalf("List = %+v, %v; want 1 damaged, 2 and 3 listed (2's damage shows on Load)", gens, err)
	}
	for n, want := range map[int]string{1: "meta.json", 2: "file /etc/hostwall/bl.txt does not match its recorded SHA-256"} {
		var d *DamagedError
		if _, err := s.Load(n); !errors.As(err, &d) || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%d) = %v, want a DamagedError saying %q", n, err, want)
		}
	}
	if _, err := s.Load(3); err != nil {
		t.Errorf("Load(3): %v", err)
	}
}

// TestSpecialFilesAsRecords: a FIFO, a directory or a symbolic link in the
// place of a record is an error naming it, at once — never a read that
// blocks (a FIFO) or one that follows a link out of the state directory.
func TestSpecialFilesAsRecords(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if err := syscall.Mkfifo(s.currentPath(), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Current(); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO as current: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO as current blocks")
	}
	os.Remove(s.currentPath())
	os.WriteFile(filepath.Join(s.Dir, "elsewhere"), []byte("4\n"), 0o600)
	os.Symlink(filepath.Join(s.Dir, "elsewhere"), s.currentPath())
	if _, err := s.Current(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a symbolic link as current: %v", err)
	}
	os.Remove(s.currentPath())
	os.Mkdir(s.currentPath(), 0o700)
	if _, err := s.Current(); err == nil {
		t.Error("a directory as current read")
	}
	ns := Namespace{Dir: filepath.Join(t.TempDir(), "ns"), Cookie: 1}
	os.MkdirAll(ns.Dir, 0o700)
	syscall.Mkfifo(filepath.Join(ns.Dir, "agent"), 0o600)
	syscall.Mkfifo(filepath.Join(ns.Dir, "lock"), 0o600)
	go func() { ns.Agent(); _, err := ns.Lock(0, NewHolder("")); done <- err }()
	select {
	case err := <-done:
		// The directory is keyed by an inode later namespaces get again:
		// a lock that is not a file is a leftover, replaced.
		if fi, serr := os.Lstat(filepath.Join(ns.Dir, "lock")); err != nil || serr != nil || !fi.Mode().IsRegular() {
			t.Errorf("a FIFO as the lock: %v, %v", err, serr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a FIFO as the agent's registration or the lock blocks")
	}
}

// TestFailedWriteLeavesNoTemp: a record that cannot be written (a full
// file system) leaves no temporary file behind.
func TestFailedWriteLeavesNoTemp(t *testing.T) {
	testns.RequireRoot(t) // to mount a small tmpfs
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	if err := writeFile(filepath.Join(dir, "big"), make([]byte, 64<<10), 0o600); err == nil {
		t.Fatal("64 KiB written to an 8 KiB file system")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed write left %v", left)
	}
}

// TestDatastoreResources: a generation's datastore resources are kept in
// one file, datastore.json, and load back whole with their recorded
// place and sums; a damaged one is a DamagedError naming the resource.
func TestDatastoreResources(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	var res []File
	for i := range 3 {
		res = append(res, File{Path: fmt.Sprintf("etcd:/calico/resources/v3/projectcalico.org/hostendpoints/h%d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	g := &Generation{Time: time.Now(), Reason: "apply", Ruleset: "table inet hostwall {}\n",
		Files:     []File{{Path: "/etc/hostwall/a.hcl", Data: []byte("x")}, {Path: "/etc/hostwall/bl.txt", Data: []byte("10.0.0.0/8\n")}},
		Datastore: &Datastore{Type: "etcdv3", Endpoints: []string{"http://127.0.0.1:2379"}, Revision: 42, Files: res, At: 1}}
	if err := s.Record(g); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.path(1), "files")); len(entries) != 2 {
		t.Errorf("files: %d entries, want the 2 files alone", len(entries))
	}
	back, err := s.Load(1)
	if err != nil {
		t.Fatal(err)
	}
	d := back.Datastore
	if d == nil || d.Revision != 42 || d.At != 1 || len(d.Files) != 3 || string(d.Files[2].Data) != `{"n":2}` || d.Files[2].Path != res[2].Path {
		t.Fatalf("loaded back: %+v", d)
	}
	bundle := filepath.Join(s.path(1), datastoreFile)
	data, _ := os.ReadFile(bundle)
	os.WriteFile(bundle, []byte(strings.Replace(string(data), "eyJuIjoxfQ==", "eyJuIjo5fQ==", 1)), 0o600) // {"n":1} → {"n":9}
	if _, err := s.Load(1); err == nil || !strings.Contains(err.Error(), "hostendpoints/h1 does not match") {
		t.Errorf("a damaged resource: %v", err)
	}
	os.Remove(bundle)
	if gens, _ := s.List(); len(gens) != 1 || !strings.Contains(gens[0].Damaged, datastoreFile) {
		t.Errorf("without its datastore.json: %+v", gens[0])
	}
}
