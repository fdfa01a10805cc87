package engine

// The verified record: the last time hostwall knew the kernel to hold
// exactly the ruleset compiled from the configuration (state.Verified),
// with, beside it, the compiled table's sets (the next plan's base) and
// what an incremental apply needs. Every nftables transaction in the
// namespace, by anyone, moves the kernel's ruleset generation; while it
// has not moved since the record, the kernel still holds what the record
// says, and three shortcuts follow:
//
//   - unchanged: neither the files nor the kernel moved: a plan is empty
//     without a compile or a read (plan, and an apply with nothing to do);
//   - from the record: the files compile to the recorded chains and only
//     the elements of existing sets change: the plan is the sets' element
//     differences against the recorded sets, without reading the kernel;
//   - incremental: only nets files changed: their sets are patched or made
//     again from the record, without loading the policy files
//     (incremental.go).
//
// Every command that proved the kernel's state writes the record: an
// apply verified by its generation or by reading back, a plan that found
// nothing to do, the agent after each apply.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sync/errgroup"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// record is the namespace's verified record, with its base read.
type record struct {
	*state.Verified
	sets []*ruleset.Set
	inc  *incremental
	// madeAt is the generation the record was made at, when stillHolds
	// took it to hold at a later one (Generation) by the kernel's events.
	madeAt uint32
}

// recordBase is what the verified record keeps beside it: the compiled
// table's sets and, when some are drawn from nets files, what an
// incremental apply needs. It is written as CBOR; each set, and each
// netip.Prefix of a recipe, as a byte string of its own binary form
// (encoding.BinaryMarshaler: a 100,000-network set is one block of keys,
// ruleset/setcodec.go).
type recordBase struct {
	Sets []*ruleset.Set
	Inc  *incremental
}

// incremental is what the verified record keeps for an incremental apply.
type incremental struct {
	// Files are the SHA-256 of every file the configuration was read from,
	// by path.
	Files   map[string]string
	Recipes []compile.Recipe
	// Chains is the rendering's chains (ruleset.Table.ChainsText).
	Chains string
	// Warnings are the load's and compile's diagnostics.
	Warnings []savedDiag
	// SSHFailsafe: failsafe keeps tcp:22 open from anywhere on this host,
	// so the lockout check passes whatever the networks are.
	SSHFailsafe bool
	// Merged is, by set, what Normalize merged of the networks its recipe
	// made (ruleset.Merged): what changing the set by the lines of its nets
	// files that changed needs. A set it lacks is made again from its recipe.
	Merged map[string]ruleset.Merged
}

// savedDiag is a warning as a record keeps it.
type savedDiag struct {
	Severity hcl.DiagnosticSeverity
	Summary  string
	Detail   string
	Subject  *hcl.Range
}

func saveDiags(diags hcl.Diagnostics) []savedDiag {
	out := make([]savedDiag, 0, len(diags))
	for _, d := range diags {
		out = append(out, savedDiag{d.Severity, d.Summary, d.Detail, d.Subject})
	}
	return out
}

func loadDiags(saved []savedDiag) hcl.Diagnostics {
	out := make(hcl.Diagnostics, 0, len(saved))
	for _, d := range saved {
		out = append(out, &hcl.Diagnostic{Severity: d.Severity, Summary: d.Summary, Detail: d.Detail, Subject: d.Subject})
	}
	return out
}

// baseEncoding writes a recordBase: a Go string as a CBOR byte string (a
// set element's key is bytes, as the merged counts' keys are, and a path
// need not be UTF-8, which a CBOR text string must be), and a type with
// MarshalBinary as its binary form (CBOR's default, named here because the
// sets' speed depends on it). baseDecoding reads one back, with no limit
// on the length of an array or map (CBOR's default, 131,072, is less than
// the inline networks a recipe may hold): the file is this binary's own,
// checked by the SHA-256 its record names.
var baseEncoding, baseDecoding = func() (cbor.UserBufferEncMode, cbor.DecMode) {
	em, err := cbor.EncOptions{String: cbor.StringToByteString, BinaryMarshaler: cbor.BinaryMarshalerByteString}.UserBufferEncMode()
	if err != nil {
		panic(err) // the options are constants
	}
	dm, err := cbor.DecOptions{ByteStringToString: cbor.ByteStringToStringAllowed, BinaryUnmarshaler: cbor.BinaryUnmarshalerByteString,
		MaxArrayElements: math.MaxInt32, MaxMapPairs: math.MaxInt32}.DecMode()
	if err != nil {
		panic(err)
	}
	return em, dm
}()

// rendering is a compiled table's text as the records keep it.
type rendering struct {
	// chains is ruleset.Table.ChainsText, chainsHash its SHA-256: the
	// record compares chains by it.
	chains, chainsHash string
	// text is the whole table (a generation's ruleset.nft), hash its
	// state.HashRuleset.
	text, hash string
}

// renderChains is the rendering of t's chains.
func renderChains(t *ruleset.Table) rendering {
	text := t.ChainsText()
	return rendering{chains: text, chainsHash: sha256Hex(text)}
}

// withSets completes r with the whole text of t, whose chains r rendered
// (hash is left to whoever writes the text).
func (r rendering) withSets(t *ruleset.Table) rendering {
	r.text = t.StringWithChains(r.chains)
	return r
}

// hashed completes r with its text's hash.
func (r rendering) hashed() rendering {
	r.hash = state.HashRuleset(r.text)
	return r
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// binaryID identifies this very binary: path, size, modification time —
// any rebuild changes it — and the version it was built as.
func (e *Engine) binaryID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	bin, err := os.Stat(exe)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d %s", exe, bin.Size(), bin.ModTime().UnixNano(), e.o.Version), nil
}

// recordKey is what a compiled ruleset depends on besides the files: this
// very binary, the namespace (its cookie: a namespace made again under the
// same name starts its generations again), the host name as flag and as
// the kernel says it, the configuration directory and the limits.
func (e *Engine) recordKey(ns state.Namespace) (string, error) {
	bin, err := e.binaryID()
	if err != nil {
		return "", err
	}
	dir, err := filepath.Abs(e.o.ConfigDir)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	h := sha256.New()
	fmt.Fprintf(h, "%s\nns %d\nhost %q %q\ndir %s\nlimits %+v %d %d\n",
		bin, ns.Cookie, e.o.HostName, host, dir, e.o.Limits.WithDefaults(), e.o.Load.MaxFileBytes, e.o.Load.MaxNetsFileBytes)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readRecord reads the namespace's verified record when this binary made
// it for this configuration and host, with its base; nil otherwise.
func (e *Engine) readRecord(ns state.Namespace) *record {
	rec, _ := e.readRecordAnd(ns, false, true)
	return rec
}

// readRecordAnd is readRecord, with its base only if base (the recorded
// sets: 1,000,000 networks take ~90 ms to decode, and an unchanged plan
// needs none of it), and with sources, on another core while the base is
// read, the files of the record's configuration as they are now
// (loader.ReadSources; nil when a file cannot be read: then load the long
// way, which says why).
func (e *Engine) readRecordAnd(ns state.Namespace, sources, base bool) (*record, []loader.Source) {
	v, err := e.run.LoadVerified(ns.Name)
	if err != nil || v == nil {
		return nil, nil
	}
	if key, err := e.recordKey(ns); err != nil || key != v.Key {
		return nil, nil
	}
	var srcs []loader.Source
	var read errgroup.Group
	if sources {
		read.Go(func() error {
			srcs, _ = loader.ReadSources(e.o.ConfigDir, e.o.Load, v.NetsFiles)
			return nil
		})
	}
	rec := &record{Verified: v}
	if base {
		rec = e.withBase(ns, rec)
	}
	read.Wait()
	return rec, srcs
}

// withBase reads rec's base (the recorded sets, and what an incremental
// apply needs) into it; nil when the base is missing or not the one rec
// was saved with.
func (e *Engine) withBase(ns state.Namespace, rec *record) *record {
	if rec == nil {
		return nil
	}
	if base, ok := e.keptBase(rec.Verified.Base); ok {
		rec.sets, rec.inc = base.Sets, base.Inc
		return rec
	}
	data := e.run.LoadVerifiedBase(ns.Name, rec.Verified)
	var base recordBase
	if data == nil || baseDecoding.Unmarshal(data, &base) != nil {
		return nil
	}
	rec.sets, rec.inc = base.Sets, base.Inc
	return rec
}

// unchanged reports whether the record still holds: the same files srcs
// (readRecordAnd) and a kernel whose ruleset generation has not moved
// since. Then the kernel holds exactly what the configuration compiles to,
// and a plan is empty without a compile or a read.
func (e *Engine) unchanged(rec *record, srcs []loader.Source) bool {
	return rec != nil && srcs != nil && !rec.Domains && loader.HashSources(srcs) == rec.ConfigHash && e.stillHolds(rec)
}

// stillHolds reports whether the kernel still holds what rec says: its
// ruleset generation has not moved since, or it moved by transactions that
// did not touch table inet hostwall (Options.Untouched: other programs
// change their tables all day) — then rec is taken as made now, and plans
// made from it carry the generation the kernel is at.
func (e *Engine) stillHolds(rec *record) bool {
	now, err := e.o.Kernel.Generation()
	switch {
	case err != nil:
		return false
	case now == rec.Generation:
		return true
	case e.untouched(rec.Generation, now):
		if rec.madeAt == 0 {
			rec.madeAt = rec.Generation
		}
		rec.Generation = now
		return true
	}
	return false
}

// tableAsAt reports whether table inet hostwall is still what it was at
// generation gen: the kernel is still at gen, or the transactions since
// left the table alone (untouched: on a busy host other programs move the
// generation all the time).
func (e *Engine) tableAsAt(gen uint32) bool {
	now, err := e.o.Kernel.Generation()
	return err == nil && (now == gen || e.untouched(gen, now))
}

// untouched asks Options.Untouched about this namespace.
func (e *Engine) untouched(since, now uint32) bool {
	if e.o.Untouched == nil {
		return false
	}
	ns, err := e.namespace()
	return err == nil && e.o.Untouched(context.Background(), ns.Cookie, since, now)
}

// planFromRecord plans desired, whose chains r rendered, without reading
// the kernel, when the record makes that sound: the kernel is still at its
// generation (so it holds exactly the recorded ruleset), desired has the
// recorded chains, rule for rule, and differs only in the elements of sets
// that exist. Then the recorded sets are the kernel's, and the plan is
// their element differences (a blocklist file changed). Otherwise nil:
// read the kernel.
func (e *Engine) planFromRecord(rec *record, desired *ruleset.Table, r rendering) *planner.Plan {
	if rec == nil || rec.Chains != r.chainsHash || !e.stillHolds(rec) {
		return nil
	}
	p := planner.Diff(setsOnly(desired.Sets), setsOnly(rec.sets))
	if !p.ElementsOnly() {
		return nil
	}
	p.Generation = rec.Generation
	return p
}

// setsOnly is a table of sets and no chains.
func setsOnly(sets []*ruleset.Set) *ruleset.Table {
	t := ruleset.NewTable()
	t.Sets = sets
	return t
}

// newRecord makes the verified record of l's table, rendered as r, and
// stages its base in the run directory; saveRecord makes it the
// namespace's record once the kernel's generation is known.
func (e *Engine) newRecord(ns state.Namespace, l *Loaded, r rendering) (*stagedRecord, error) {
	v := &state.Verified{ConfigHash: loader.HashSources(l.Result.Sources), NetsFiles: l.Result.NetsFiles(), HostName: l.Host,
		Rules: l.Table.RuleCount(), Chains: r.chainsHash, Ruleset: r.hash, Domains: len(l.Names) > 0}
	var inc *incremental
	if len(l.Recipes) > 0 && len(l.Names) == 0 { // (names are resolved by loading the files)
		inc = &incremental{Files: map[string]string{}, Recipes: l.Recipes, Chains: r.chains, Warnings: saveDiags(l.Warnings),
			SSHFailsafe: sshFailsafe(l.Result.Config, l.Host), Merged: mergedOf(l.Recipes, l.Table)}
		for _, s := range l.Result.Sources {
			inc.Files[s.Path] = loader.SourceSum(s)
		}
	}
	return e.stageRecord(ns, v, recordBase{Sets: l.Table.Sets, Inc: inc})
}

// stagedRecord is a verified record made and its base staged, but for the
// kernel's generation.
type stagedRecord struct {
	v    *state.Verified
	base *state.StagedBase
}

// stageRecord keys v and stages base for it.
func (e *Engine) stageRecord(ns state.Namespace, v *state.Verified, base recordBase) (*stagedRecord, error) {
	key, err := e.recordKey(ns)
	if err != nil {
		return nil, err
	}
	v.Key = key
	// Into a buffer of the size it will take: CBOR's own grows by doubling,
	// 60 MB made for a 20 MB base at a million networks, at every change.
	var buf bytes.Buffer
	buf.Grow(base.size())
	if err := baseEncoding.MarshalToBuffer(base, &buf); err != nil {
		return nil, err
	}
	staged, err := e.run.StageVerifiedBase(ns.Name, buf.Bytes())
	if err != nil {
		return nil, err
	}
	if e.o.Memo && staged != nil {
		e.base.Lock()
		e.base.sum, e.base.kept = staged.Sum(), base
		e.base.Unlock()
	}
	return &stagedRecord{v, staged}, nil
}

// size is about the size of the base's encoding, a little more: its
// sets' keys and verdicts, and of the incremental part the recipes'
// networks, what was merged and the chains' text.
func (b recordBase) size() int {
	n := 64 << 10
	for _, s := range b.Sets {
		n += 64 + len(s.Name) + len(s.Comment) + len(s.Elements)*(2*s.Type.KeyLen()+4)
		if s.Map {
			n += len(s.Elements) * (16 + len(s.Name) + 8)
		}
	}
	if inc := b.Inc; inc != nil {
		n += len(inc.Chains)
		for _, r := range inc.Recipes {
			for _, ps := range r.Fixed {
				n += 20 * len(ps)
			}
		}
		for _, m := range inc.Merged {
			n += 24 * len(m)
		}
	}
	return n
}

// keptBase returns the record base staged last when its sum is sum: the
// one a record saved from it names (its sets are the compile's, shared;
// nobody changes them).
func (e *Engine) keptBase(sum string) (recordBase, bool) {
	e.base.Lock()
	defer e.base.Unlock()
	if sum == "" || sum != e.base.sum {
		return recordBase{}, false
	}
	return e.base.kept, true
}

// saveRecord writes a staged record as the kernel's at generation gen; a
// failure is a notice (it costs the next command its shortcut).
func (e *Engine) saveRecord(ns state.Namespace, s *stagedRecord, gen uint32) {
	if s == nil {
		return
	}
	s.v.Generation = gen
	if err := e.run.SaveVerified(ns.Name, s.v, s.base); err != nil {
		e.notice("cannot record the verified state (the next plan reads the kernel): %v", err)
	}
}

// discard drops a staged record whose commit did not happen.
func (s *stagedRecord) discard() {
	if s != nil {
		s.base.Discard()
	}
}
