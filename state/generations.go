package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	Ruleset string `json:"-"`
}

// HashRuleset is the hash recorded for a rendered ruleset.
// It hashes the string through a small buffer: converting a rendering of
// 100,000 networks to bytes would copy 3 MB, in fresh pages.
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

// Record stores g as the next generation and makes it current. It fills
// Number and RulesetHash.
func (s *Store) Record(g *Generation) error {
	p, err := s.Prepare(g)
	if err != nil {
		return err
	}
	if err := p.Commit(); err != nil {
		p.Abort()
		return err
	}
	return nil
}

// Pending is a generation written in full but not yet a generation: a
// temporary directory under the state directory, which Commit makes the
// next generation and Abort removes. An apply prepares its generation
// while the kernel commits (cmd/hostwall) and commits it after.
type Pending struct {
	s   *Store
	g   *Generation
	tmp string
	// kept are the current generation's files by SHA-256: a file it holds
	// as it was is linked, not written again.
	kept map[string]string
}

// Prepare writes g, numbered as the next generation, durably (every file
// synced) into a temporary directory, and fills Number, and RulesetHash
// and each file's SHA256 when empty.
// The caller holds the state lock until Commit or Abort.
func (s *Store) Prepare(g *Generation) (*Pending, error) {
	if err := os.MkdirAll(s.genDir(), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", s.genDir(), err)
	}
	nums, err := s.Numbers()
	if err != nil {
		return nil, err
	}
	g.Number = 1
	if len(nums) > 0 {
		g.Number = nums[len(nums)-1] + 1
	}
	if g.RulesetHash == "" {
		g.RulesetHash = HashRuleset(g.Ruleset)
	}
	for i := range g.Files {
		if g.Files[i].SHA256 == "" {
			g.Files[i].SHA256 = hashHex(g.Files[i].Data)
		}
	}
	tmp, err := os.MkdirTemp(s.genDir(), tmpPrefix)
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
			data, err := os.ReadFile(filepath.Join(s.path(g.Number), "files", fileName(i, f.Path)))
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

// tmpPrefix starts the names of generations being written.
const tmpPrefix = ".tmp-"

func (p *Pending) write() error {
	meta, err := json.MarshalIndent(p.g, "", "  ")
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(p.tmp, "files"), 0o700); err != nil {
		return err
	}
	for i, f := range p.g.Files {
		path := filepath.Join(p.tmp, "files", fileName(i, f.Path))
		if prev, ok := p.kept[f.SHA256]; ok && os.Link(prev, path) == nil {
			continue // already synced; the directory's sync makes the link durable
		}
		if err := writeFileSynced(path, f.Data, 0o600); err != nil {
			return err
		}
	}
	if err := writeFileSynced(filepath.Join(p.tmp, "ruleset.nft"), p.g.Ruleset, 0o600); err != nil {
		return err
	}
	if err := writeFileSynced(filepath.Join(p.tmp, "meta.json"), meta, 0o600); err != nil {
		return err
	}
	if err := syncDir(filepath.Join(p.tmp, "files")); err != nil {
		return err
	}
	return syncDir(p.tmp)
}

// Commit makes the prepared generation the next one and current.
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.s.path(p.g.Number)); err != nil {
		return err
	}
	p.tmp = ""
	if err := syncDir(p.s.genDir()); err != nil {
		return err
	}
	if err := p.s.SetCurrent(p.g.Number); err != nil {
		return err
	}
	return p.s.prune()
}

// Generation is the generation prepared, numbered.
func (p *Pending) Generation() *Generation { return p.g }

// Abort removes a prepared generation that is not to be; after Commit it
// does nothing.
func (p *Pending) Abort() {
	if p.tmp != "" {
		os.RemoveAll(p.tmp)
		p.tmp = ""
	}
}

// SetCurrent records which generation the kernel holds.
func (s *Store) SetCurrent(n int) error {
	return writeFile(s.currentPath(), []byte(strconv.Itoa(n)+"\n"), 0o600)
}

// Current returns the number of the generation the kernel holds, 0 when
// none was recorded.
func (s *Store) Current() (int, error) {
	data, err := os.ReadFile(s.currentPath())
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
	meta, err := os.ReadFile(filepath.Join(s.path(n), "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("generation %d does not exist (hostwall generations lists them)", n)
	}
	if err != nil {
		return nil, err
	}
	g := &Generation{}
	if err := json.Unmarshal(meta, g); err != nil {
		return nil, fmt.Errorf("generation %d: %w", n, err)
	}
	return g, nil
}

// Load reads generation n, files and ruleset included.
func (s *Store) Load(n int) (*Generation, error) {
	g, err := s.Meta(n)
	if err != nil {
		return nil, err
	}
	dir := s.path(n)
	rs, err := os.ReadFile(filepath.Join(dir, "ruleset.nft"))
	if err != nil {
		return nil, err
	}
	g.Ruleset = string(rs)
	for i := range g.Files {
		if g.Files[i].Data, err = os.ReadFile(filepath.Join(dir, "files", fileName(i, g.Files[i].Path))); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// List reads the record of every generation, oldest first, without the
// files' contents or the rulesets (Load reads those): listing 50
// generations of a 100,000-network configuration read 170 MB.
func (s *Store) List() ([]*Generation, error) {
	nums, err := s.Numbers()
	if err != nil {
		return nil, err
	}
	var out []*Generation
	for _, n := range nums {
		g, err := s.Meta(n)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// prune removes the oldest generations beyond Keep, never the current one.
func (s *Store) prune() error {
	// Under the lock no other generation is being written: a temporary
	// directory is a killed process's.
	if stale, _ := filepath.Glob(filepath.Join(s.genDir(), tmpPrefix+"*")); len(stale) > 0 {
		for _, d := range stale {
			os.RemoveAll(d)
		}
	}
	nums, err := s.Numbers()
	if err != nil || len(nums) <= s.keep() {
		return err
	}
	cur, _ := s.Current()
	for _, n := range nums[:len(nums)-s.keep()] {
		if n != cur {
			if err := os.RemoveAll(s.path(n)); err != nil {
				return err
			}
		}
	}
	return syncDir(s.genDir())
}
