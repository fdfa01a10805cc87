package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultKeep is how many generations are kept.
const DefaultKeep = 50

// Store is the state directory.
type Store struct {
	Dir string
	// Keep is how many generations are kept; 0 means DefaultKeep.
	Keep int
}

// File is one configuration file as read.
type File struct {
	Path string `json:"path"`
	Data []byte `json:"-"`
	// SHA256 of Data, hex: Prepare computes it when empty (a file the
	// loader read comes with it).
	SHA256 string `json:"sha256"`
	// Size is len(Data) (0 in records of older versions, which List then
	// does not check).
	Size int64 `json:"size,omitempty"`
}

// Generation is the record of one successful apply.
type Generation struct {
	Number int       `json:"number"`
	Time   time.Time `json:"time"`
	UID    int       `json:"uid"`
	// SSHConnection is $SSH_CONNECTION of the applying process, if any.
	SSHConnection string `json:"ssh_connection,omitempty"`
	HostName      string `json:"host_name"`
	NetNS         string `json:"netns,omitempty"`
	ConfigDir     string `json:"config_dir"`
	// RulesetHash is the SHA-256 of Ruleset.
	RulesetHash string `json:"ruleset_hash"`
	// Reason says how it came about: "apply", "rollback to N".
	Reason string `json:"reason"`
	Files  []File `json:"files"`
	// Ruleset is the rendered desired table, as nft syntax (ruleset.nft).
	Ruleset     string `json:"-"`
	RulesetSize int64  `json:"ruleset_size,omitempty"`
	// Names are the addresses its domain names resolved to when it was
	// applied, by name: compiling it again (rollback, repair) uses them,
	// offline and exactly.
	Names map[string][]string `json:"names,omitempty"`
	// Limits are the configuration limits it was compiled under, which
	// compiling it again (rollback, repair) uses: a configuration the
	// limits of its apply admitted must stay one that can be rolled back to.
	Limits *Limits `json:"limits,omitempty"`
	// Datastore is where its datastore resources came from (its files
	// named loader.DatastorePrefix + key); nil for files alone.
	Datastore *Datastore `json:"datastore,omitempty"`
	// Damaged says why the generation cannot be used, in List's answer
	// (never recorded).
	Damaged string `json:"damaged,omitempty"`
}

// Datastore is the datastore a generation's resources were read from, and
// the etcd revision they are as of.
type Datastore struct {
	Type      string   `json:"type"`
	Endpoints []string `json:"endpoints"`
	CA        string   `json:"ca,omitempty"`
	Cert      string   `json:"cert,omitempty"`
	Key       string   `json:"key,omitempty"`
	Revision  int64    `json:"revision"`
	// Files are the resources, one per key (as the loader names them),
	// their contents in the generation's datastore.json: one file written
	// and synced, not one per resource (2,000 resources took 1.8 s to
	// write one by one). At is where they stood among the sources loaded:
	// before Generation.Files[At].
	Files []File `json:"files"`
	At    int    `json:"at"`
}

// datastoreFile holds a generation's datastore resources.
const datastoreFile = "datastore.json"

// Limits are compile.Limits, as a generation records them.
type Limits struct {
	MaxPolicies    int `json:"max_policies"`
	MaxRules       int `json:"max_rules"`
	MaxSetElements int `json:"max_set_elements"`
	// The sharding of large address sets (compile.Limits.Sharding); zero
	// in generations made before it: the defaults.
	ShardMin       int  `json:"shard_min,omitempty"`
	ShardSlots     int  `json:"shard_slots,omitempty"`
	ShardChunkBits uint `json:"shard_chunk_bits,omitempty"`
}

// DamagedError says a generation's record or files are not what was
// written: it is never applied.
type DamagedError struct {
	Number int
	Detail string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("generation %d is damaged: %s; it is never applied", e.Number, e.Detail)
}

// HashRuleset is the hash recorded for a rendered ruleset. It hashes the
// string through a small buffer, not converted to bytes: a rendering of a
// large blocklist is megabytes.
func HashRuleset(rendered string) string {
	h := sha256.New()
	var buf [32 << 10]byte
	for len(rendered) > 0 {
		n := copy(buf[:], rendered)
		h.Write(buf[:n])
		rendered = rendered[n:]
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashHex is the SHA-256 of data, in hex, as every record here names files.
func hashHex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func (s *Store) genDir() string      { return filepath.Join(s.Dir, "generations") }
func (s *Store) path(n int) string   { return filepath.Join(s.genDir(), fmt.Sprintf("%06d", n)) }
func (s *Store) currentPath() string { return filepath.Join(s.Dir, "current") }
func (s *Store) keep() int {
	if s.Keep > 0 {
		return s.Keep
	}
	return DefaultKeep
}

// Numbers lists the stored generations, oldest first. Half-written ones
// (temporary directories of a killed process) are not listed.
func (s *Store) Numbers() ([]int, error) {
	entries, err := os.ReadDir(s.genDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// Record stores g, its ruleset rendered, as the next generation and makes
// it current. It fills Number and RulesetHash.
func (s *Store) Record(g *Generation) error {
	p, err := s.Prepare(g)
	if err != nil {
		return err
	}
	if err := p.WriteRuleset(g.Ruleset); err != nil {
		p.Abort()
		return err
	}
	if err := p.Place(); err != nil {
		p.Abort()
		return err
	}
	return s.MakeCurrent(g.Number)
}

// Pending is a generation written in full: first in a temporary directory
// under the state directory, which Place renames into place as the next
// generation (not yet current), and Abort removes wherever it is. An
// apply prepares and places its generation before the kernel sees the
// change, and makes it current (MakeCurrent) once the kernel holds it.
type Pending struct {
	s   *Store
	g   *Generation
	tmp string
	// placed is set once Place renamed it into place, ruleset once
	// WriteRuleset wrote it.
	placed, ruleset bool
	// kept are the current generation's files by SHA-256: a file it holds
	// as it was is linked, not written again.
	kept map[string]string
}

// Prepare writes g's files durably (every file synced) into a temporary
// directory, and fills each file's SHA256 and Size; WriteRuleset adds the
// ruleset, and Place numbers the generation. It needs no lock: a temporary
// directory is its writer's alone.
func (s *Store) Prepare(g *Generation) (*Pending, error) {
	if err := os.MkdirAll(s.genDir(), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", s.genDir(), err)
	}
	for _, files := range [][]File{g.Files, g.datastoreFiles()} {
		for i := range files {
			if files[i].SHA256 == "" {
				files[i].SHA256 = hashHex(files[i].Data)
			}
			files[i].Size = int64(len(files[i].Data))
		}
	}
	tmp, err := os.MkdirTemp(s.genDir(), tempPattern("", "tmp"))
	if err != nil {
		return nil, err
	}
	p := &Pending{s: s, g: g, tmp: tmp, kept: s.currentFiles()}
	if err := p.write(); err != nil {
		p.Abort()
		return nil, err
	}
	return p, nil
}

// WriteRuleset adds the rendered ruleset to the prepared generation,
// durably, and fills RulesetHash (hashed while it is written) and
// RulesetSize. The text itself is not kept (Ruleset stays empty): with a
// million networks it is ~20 MB, which the caller drops once it is on
// disk; Load reads it back.
func (p *Pending) WriteRuleset(rendered string) error {
	hashed := make(chan string, 1)
	go func() { hashed <- HashRuleset(rendered) }()
	err := writeFileSynced(filepath.Join(p.tmp, "ruleset.nft"), rendered, 0o600)
	hash := <-hashed
	if err != nil {
		return err
	}
	p.g.RulesetHash, p.g.RulesetSize, p.ruleset = hash, int64(len(rendered)), true
	return nil
}

// intact reports whether the file at path still has SHA-256 sum: a copy
// damaged on disk is written afresh, not linked into a new generation.
func intact(path, sum string) bool {
	data, err := readFile(path, -1)
	return err == nil && hashHex(data) == sum
}

// fileName is the name of a generation's file i, read from path.
func fileName(i int, path string) string { return fmt.Sprintf("%03d-%s", i, filepath.Base(path)) }

// currentFiles maps the SHA-256 of each file of the current generation to
// its copy there; nil when there is none. Generations are never changed
// once written, so their files can be shared by links.
func (s *Store) currentFiles() map[string]string {
	g, err := s.CurrentMeta()
	if err != nil || g == nil {
		return nil
	}
	out := map[string]string{}
	for i, f := range g.Files {
		out[f.SHA256] = filepath.Join(s.path(g.Number), "files", fileName(i, f.Path))
	}
	return out
}

// CurrentFile returns the current generation's copy of the file it read
// from path, when that copy's SHA-256 is sum: the file as it was when
// recorded. An error when there is none, or the copy is not that.
func (s *Store) CurrentFile(path, sum string) ([]byte, error) {
	g, err := s.CurrentMeta()
	if err != nil {
		return nil, err
	}
	if g != nil {
		for i, f := range g.Files {
			if f.Path != path || f.SHA256 != sum {
				continue
			}
			data, err := readFile(filepath.Join(s.path(g.Number), "files", fileName(i, f.Path)), -1)
			if err != nil {
				return nil, err
			}
			if hashHex(data) != sum {
				return nil, fmt.Errorf("generation %d's copy of %s is damaged (its SHA-256 is not the one recorded)", g.Number, path)
			}
			return data, nil
		}
	}
	return nil, fmt.Errorf("the current generation holds no copy of %s with SHA-256 %s", path, sum)
}

func (p *Pending) write() error {
	if err := os.Mkdir(filepath.Join(p.tmp, "files"), 0o700); err != nil {
		return err
	}
	for i, f := range p.g.Files {
		path := filepath.Join(p.tmp, "files", fileName(i, f.Path))
		if prev, ok := p.kept[f.SHA256]; ok && intact(prev, f.SHA256) && os.Link(prev, path) == nil {
			continue // already synced; the directory's sync makes the link durable
		}
		if err := writeFileSynced(path, f.Data, 0o600); err != nil {
			return err
		}
	}
	if ds := p.g.datastoreFiles(); len(ds) > 0 {
		data := make([][]byte, len(ds))
		for i, f := range ds {
			data[i] = f.Data
		}
		bundle, err := json.Marshal(data)
		if err != nil {
			return err
		}
		if err := writeFileSynced(filepath.Join(p.tmp, datastoreFile), bundle, 0o600); err != nil {
			return err
		}
	}
	return syncDir(filepath.Join(p.tmp, "files"))
}

// datastoreFiles are the generation's datastore resources (none: nil).
func (g *Generation) datastoreFiles() []File {
	if g.Datastore == nil {
		return nil
	}
	return g.Datastore.Files
}

// Place numbers the prepared generation as the next one, writes its
// record and renames it into place, durably: it is the next generation
// from then on, though not current. The caller holds the namespace's lock
// until MakeCurrent or Abort.
func (p *Pending) Place() error {
	if !p.ruleset {
		return errors.New("placing a generation without its ruleset")
	}
	if _, err := p.Number(); err != nil {
		return err
	}
	meta, err := json.MarshalIndent(p.g, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSynced(filepath.Join(p.tmp, "meta.json"), meta, 0o600); err != nil {
		return err
	}
	if err := syncDir(p.tmp); err != nil {
		return err
	}
	if err := os.Rename(p.tmp, p.s.path(p.g.Number)); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("generation %d was written meanwhile by another hostwall using %s: each network namespace needs a state directory of its own", p.g.Number, p.s.Dir)
		}
		return err
	}
	p.placed, p.tmp = true, ""
	return syncDir(p.s.genDir())
}

// Number numbers the prepared generation as the next one, if it is not
// yet, and returns the number: what an intent names before Place. The
// caller holds the namespace's lock.
func (p *Pending) Number() (int, error) {
	if p.g.Number > 0 {
		return p.g.Number, nil
	}
	nums, err := p.s.Numbers()
	if err != nil {
		return 0, err
	}
	p.g.Number = 1
	if len(nums) > 0 {
		p.g.Number = nums[len(nums)-1] + 1
	}
	return p.g.Number, nil
}

// Generation is the generation prepared (numbered once placed).
func (p *Pending) Generation() *Generation { return p.g }

// Abort removes a prepared generation that is not to be, placed or not;
// once it is current, the caller does not call it.
func (p *Pending) Abort() {
	if p.placed {
		p.s.Remove(p.g.Number)
		p.placed = false
		return
	}
	if p.tmp != "" {
		os.RemoveAll(p.tmp)
		p.tmp = ""
	}
}

// Has reports whether generation n is in place (damaged or not).
func (s *Store) Has(n int) bool {
	_, err := os.Stat(s.path(n))
	return err == nil
}

// Remove removes generation n, durably (a generation that never reached
// the kernel).
func (s *Store) Remove(n int) error {
	if err := os.RemoveAll(s.path(n)); err != nil {
		return err
	}
	return syncDir(s.genDir())
}

// MakeCurrent records, durably, that the kernel holds generation n (0:
// none), and prunes the generations beyond Keep, keeping n and keep.
func (s *Store) MakeCurrent(n int, keep ...int) error {
	if err := s.SetCurrent(n); err != nil {
		return err
	}
	return s.prune(append(keep, n)...)
}

// PreparedCurrent is a record of the current generation written ahead,
// beside the one in force: making it current is then a rename, which a
// full disk does not refuse.
type PreparedCurrent struct {
	s    *Store
	n    int
	temp string
}

// PrepareCurrent writes ahead, durably, the record that generation n is
// current (Commit puts it in force; Abort drops it): a change writes it
// before the kernel sees the change, so that a full state directory
// refuses the change rather than the record of a change made.
func (s *Store) PrepareCurrent(n int) (*PreparedCurrent, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	temp, err := writeTemp(s.currentPath(), "tmp", []byte(strconv.Itoa(n)+"\n"), 0o600, true)
	if err != nil {
		return nil, fmt.Errorf("recording generation %d as current ahead of the change: %w", n, err)
	}
	return &PreparedCurrent{s: s, n: n, temp: temp}, nil
}

// Commit makes the prepared record current, and prunes old generations
// but keep (a failure to prune changes nothing recorded).
func (p *PreparedCurrent) Commit(keep ...int) error {
	if err := os.Rename(p.temp, p.s.currentPath()); err != nil {
		return err
	}
	p.temp = ""
	if err := syncDir(p.s.Dir); err != nil {
		return err
	}
	return p.s.prune(append(keep, p.n)...)
}

// Abort drops the prepared record, if not committed.
func (p *PreparedCurrent) Abort() {
	if p != nil && p.temp != "" {
		os.Remove(p.temp)
		p.temp = ""
	}
}

// SetCurrent records which generation the kernel holds.
func (s *Store) SetCurrent(n int) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	return writeFile(s.currentPath(), []byte(strconv.Itoa(n)+"\n"), 0o600)
}

// Current returns the number of the generation the kernel holds, 0 when
// none was recorded.
func (s *Store) Current() (int, error) {
	data, err := readFile(s.currentPath(), recordLimit)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a generation number", s.currentPath(), data)
	}
	return n, nil
}

// CurrentMeta returns the current generation's record without its files'
// contents or its ruleset; nil when none was recorded.
func (s *Store) CurrentMeta() (*Generation, error) {
	n, err := s.Current()
	if err != nil || n == 0 {
		return nil, err
	}
	return s.Meta(n)
}

// Meta reads generation n's record, without its files' contents or its
// ruleset (each file's SHA-256 is in the record).
func (s *Store) Meta(n int) (*Generation, error) {
	if _, err := os.Stat(s.path(n)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("generation %d does not exist (hostwall generations lists them)", n)
	}
	meta, err := readFile(filepath.Join(s.path(n), "meta.json"), recordLimit)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &DamagedError{n, "its record meta.json is missing"}
	}
	if err != nil {
		return nil, err
	}
	g := &Generation{}
	if err := json.Unmarshal(meta, g); err != nil {
		return nil, &DamagedError{n, fmt.Sprintf("its record meta.json does not read (%v)", err)}
	}
	if g.Number != n {
		return nil, &DamagedError{n, fmt.Sprintf("its record meta.json is generation %d's", g.Number)}
	}
	return g, nil
}

// checkSizes reports a damaged generation whose files' or ruleset's sizes
// are not the recorded ones (a cheap check, for List; Load hashes).
func (s *Store) checkSizes(g *Generation) error {
	dir := s.path(g.Number)
	if g.RulesetSize > 0 {
		if fi, err := os.Stat(filepath.Join(dir, "ruleset.nft")); err != nil || fi.Size() != g.RulesetSize {
			return &DamagedError{g.Number, "its ruleset.nft is missing or not the size recorded"}
		}
	}
	for i, f := range g.Files {
		fi, err := os.Stat(filepath.Join(dir, "files", fileName(i, f.Path)))
		if err != nil || f.Size > 0 && fi.Size() != f.Size {
			return &DamagedError{g.Number, fmt.Sprintf("its copy of file %s is missing or not the size recorded", f.Path)}
		}
	}
	if len(g.datastoreFiles()) > 0 {
		if _, err := os.Stat(filepath.Join(dir, datastoreFile)); err != nil {
			return &DamagedError{g.Number, fmt.Sprintf("its %s is missing", datastoreFile)}
		}
	}
	return nil
}

// Load reads generation n, files and ruleset included, and checks each
// against the SHA-256 its record keeps: a *DamagedError names what does
// not match.
func (s *Store) Load(n int) (*Generation, error) {
	g, err := s.Meta(n)
	if err != nil {
		return nil, err
	}
	dir := s.path(n)
	rs, err := readFile(filepath.Join(dir, "ruleset.nft"), -1)
	if err != nil {
		return nil, &DamagedError{n, fmt.Sprintf("its ruleset.nft does not read (%v)", err)}
	}
	g.Ruleset = string(rs)
	if HashRuleset(g.Ruleset) != g.RulesetHash {
		return nil, &DamagedError{n, "its ruleset.nft does not match its recorded SHA-256"}
	}
	for i := range g.Files {
		f := &g.Files[i]
		if f.Data, err = readFile(filepath.Join(dir, "files", fileName(i, f.Path)), -1); err != nil {
			return nil, &DamagedError{n, fmt.Sprintf("its copy of file %s does not read (%v)", f.Path, err)}
		}
		if hashHex(f.Data) != f.SHA256 {
			return nil, &DamagedError{n, fmt.Sprintf("file %s does not match its recorded SHA-256", f.Path)}
		}
	}
	if ds := g.datastoreFiles(); len(ds) > 0 {
		bundle, err := readFile(filepath.Join(dir, datastoreFile), -1)
		var data [][]byte
		if err == nil {
			err = json.Unmarshal(bundle, &data)
		}
		if err == nil && len(data) != len(ds) {
			err = fmt.Errorf("%d resources, not the %d recorded", len(data), len(ds))
		}
		if err != nil {
			return nil, &DamagedError{n, fmt.Sprintf("its %s does not read (%v)", datastoreFile, err)}
		}
		for i := range ds {
			if ds[i].Data = data[i]; hashHex(ds[i].Data) != ds[i].SHA256 {
				return nil, &DamagedError{n, fmt.Sprintf("datastore resource %s does not match its recorded SHA-256", ds[i].Path)}
			}
		}
	}
	return g, nil
}

// List reads the record of every generation, oldest first, without the
// files' contents or the rulesets (Load reads those: for large
// configurations, hundreds of megabytes over 50 generations). A damaged
// generation (a record that does not read, a file of another size than
// recorded) is listed with only its number and Damaged saying why.
func (s *Store) List() ([]*Generation, error) {
	nums, err := s.Numbers()
	if err != nil {
		return nil, err
	}
	var out []*Generation
	for _, n := range nums {
		g, err := s.Meta(n)
		if err == nil {
			err = s.checkSizes(g)
		}
		var damaged *DamagedError
		switch {
		case errors.As(err, &damaged):
			g = &Generation{Number: n, Damaged: damaged.Detail}
		case err != nil:
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// NamesReason is what the agent's applies that follow domain names say
// (Generation.Reason ends with it): such generations are pruned first.
const NamesReason = "domain names due to be resolved again"

// DatastoreReason is what the agent's applies of a change of the etcd
// datastore say: those whose ruleset the next generation has too changed
// nothing on this host (a write for other hosts), and are pruned first.
const DatastoreReason = "the etcd datastore changed"

// prune removes the generations beyond Keep, never one of keep nor the
// newest: first the oldest of those that followed domain names alone
// (NamesReason: a name whose answer rotates would push every other one
// out) or a datastore's change that left this host's ruleset as it was
// (DatastoreReason: a fleet's writes for other hosts would), then the
// oldest of the rest.
func (s *Store) prune(keep ...int) error {
	nums, err := s.Numbers()
	if err != nil || len(nums) <= s.keep() {
		return err
	}
	var names, rest []int
	next, _ := s.Meta(nums[len(nums)-1])
	for i := len(nums) - 2; i >= 0; i-- {
		n := nums[i]
		g, err := s.Meta(n)
		reason := ""
		if err == nil {
			reason = strings.TrimSuffix(g.Reason, " (trial)")
		}
		switch {
		case slices.Contains(keep, n):
		case err == nil && strings.HasSuffix(reason, NamesReason),
			err == nil && strings.HasSuffix(reason, DatastoreReason) && next != nil && next.RulesetHash == g.RulesetHash:
			names = append(names, n)
		default:
			rest = append(rest, n)
		}
		next = g
	}
	slices.Reverse(names)
	slices.Reverse(rest)
	order := append(names, rest...)
	for _, n := range order[:min(len(nums)-s.keep(), len(order))] {
		if err := os.RemoveAll(s.path(n)); err != nil {
			return err
		}
	}
	return syncDir(s.genDir())
}
