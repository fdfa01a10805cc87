package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fxamacker/cbor/v2"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// binaryID identifies this very binary: path, size, modification time —
// any rebuild changes it — and the version it was built as.
func binaryID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	bin, err := os.Stat(exe)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d %s", exe, bin.Size(), bin.ModTime().UnixNano(), version), nil
}

// verifiedKey is what a compiled ruleset depends on besides the files: this
// very binary, the namespace's identity (a namespace made again under the
// same name starts its generations again), the host name as flag and as
// the kernel says it, the configuration directory and the limits.
func (g *globals) verifiedKey() (string, error) {
	bin, err := binaryID()
	if err != nil {
		return "", err
	}
	nsFile := "/proc/self/ns/net"
	if g.netns != "" {
		nsFile = nft.NetNSPath(g.netns)
	}
	ns, err := os.Stat(nsFile)
	if err != nil {
		return "", err
	}
	st, ok := ns.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("no inode for %s", nsFile)
	}
	dir, err := filepath.Abs(g.configDir)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	h := sha256.New()
	fmt.Fprintf(h, "%s\nns %d:%d\nhost %q %q\ndir %s\nlimits %+v %d\n",
		bin, st.Dev, st.Ino, g.hostName, host, dir, g.limits, g.maxFile)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// recordVerified notes that the kernel, at generation gen, holds desired,
// compiled from res for host (found by a full read, or proved by an apply's
// generation), with desired's sets as the base of the next plan. A failure
// only costs the next plan its shortcut, so it is reported as a notice.
func (g *globals) recordVerified(res *loader.Result, desired *ruleset.Table, host string, gen uint32) {
	g.noteVerified(g.verifiedOf(res, desired, host), gen)
}

// verifiedOf starts making the verified record of desired, compiled from
// res for host, and its base (hashes, encoding) on a goroutine: an apply
// starts it before the commit, and noteVerified writes it after.
func (g *globals) verifiedOf(res *loader.Result, desired *ruleset.Table, host string) *future[verifiedNote] {
	incOf := g.incrementalOf(res, host)
	return async(func() (verifiedNote, error) {
		text, _ := g.ahead(desired).chainsText.get()
		var inc *incremental
		if incOf != nil {
			inc = incOf(desired, text)
		}
		v := &state.Verified{ConfigHash: loader.HashSources(res.Sources), NetsFiles: res.NetsFiles(), HostName: host,
			Rules: desired.RuleCount(), Chains: g.chainsHash(desired), Ruleset: g.rulesetHash(desired)}
		return g.verifiedNote(v, verifiedBase{Sets: desired.Sets, Inc: inc})
	})
}

// verifiedNote is a verified record made, keyed and with its base staged,
// but for its generation.
type verifiedNote struct {
	v    *state.Verified
	base *state.StagedBase
}

// verifiedNote keys v and stages base for it.
func (g *globals) verifiedNote(v *state.Verified, base verifiedBase) (verifiedNote, error) {
	key, err := g.verifiedKey()
	if err != nil {
		return verifiedNote{}, err
	}
	v.Key = key
	data, err := baseEncoding.Marshal(base)
	if err != nil {
		return verifiedNote{}, err
	}
	staged, err := g.run().StageVerifiedBase(g.netns, data)
	return verifiedNote{v, staged}, err
}

// noteVerified writes the record made by a verifiedOf as the kernel's at
// generation gen; a failure is a notice (see recordVerified).
func (g *globals) noteVerified(made *future[verifiedNote], gen uint32) {
	n, err := made.get()
	if err == nil {
		n.v.Generation = gen
		err = g.run().SaveVerified(g.netns, n.v, n.base)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "notice: cannot record the verified state (the next plan reads the kernel): %v\n", err)
	}
}

// discardVerified drops the record made by a verifiedOf for a commit that
// did not happen.
func (g *globals) discardVerified(made *future[verifiedNote]) {
	n, _ := made.get()
	n.base.Discard()
}

// verifiedBase is what the verified record keeps beside it: the desired
// table's sets (the next plan's base) and, when some of them are drawn
// from nets files, what an incremental apply needs (incremental.go). It is
// written as CBOR; each set, and each netip.Prefix of a recipe, as a byte
// string of its own binary form (encoding.BinaryMarshaler: a 100,000-network
// set is one block of keys, ruleset/setcodec.go).
type verifiedBase struct {
	Sets []*ruleset.Set
	Inc  *incremental
}

// baseEncoding writes a verifiedBase: a Go string as a CBOR byte string
// (a set element's key is bytes, as the merged counts' keys are, and a
// path need not be UTF-8, which a CBOR text string must be), and a type
// with MarshalBinary as its binary form (CBOR's default, named here because
// the sets' speed depends on it). baseDecoding reads one back, with no
// limit on the length of an array or map (CBOR's default, 131,072, is less
// than the inline networks a recipe may hold): the file is this binary's
// own, checked by the SHA-256 its record names.
var baseEncoding, baseDecoding = func() (cbor.EncMode, cbor.DecMode) {
	em, err := cbor.EncOptions{String: cbor.StringToByteString, BinaryMarshaler: cbor.BinaryMarshalerByteString}.EncMode()
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

// chainsHash identifies a table's chains and rules (a hash of their text;
// see ahead).
func (g *globals) chainsHash(t *ruleset.Table) string {
	h, _ := g.ahead(t).chains.get()
	return h
}

// rendered is t.String() (see ahead).
func (g *globals) rendered(t *ruleset.Table) string {
	s, _ := g.ahead(t).rendered.get()
	return s
}

// rulesetHash is state.HashRuleset of t's rendering (see ahead).
func (g *globals) rulesetHash(t *ruleset.Table) string {
	s, _ := g.ahead(t).rulesetHash.get()
	return s
}

// ahead is what the records of a command's one compiled table need: its
// chains' hash (planFromVerified and recordVerified), its rendering (the
// generation) and its sets as the next plan's base. For W1's table they
// take ~25 ms, which run on the other core while the command plans and
// commits (docs/performance.md).
type ahead struct {
	table *ruleset.Table
	// chainsText is the rendering's chains (ruleset.Table.ChainsText),
	// which the chains' hash covers.
	chainsText *future[string]
	chains     *future[string]
	rendered   *future[string]
	// rulesetHash is the rendering's state.HashRuleset, which the
	// generation and the verified record both keep.
	rulesetHash *future[string]
}

// ahead starts the work for t, or returns it when started.
func (g *globals) ahead(t *ruleset.Table) *ahead {
	if g.started == nil || g.started.table != t {
		text := async(func() (string, error) { return t.ChainsText(), nil })
		rendered := async(func() (string, error) {
			s, _ := text.get()
			return t.StringWithChains(s), nil
		})
		g.started = &ahead{
			table:      t,
			chainsText: text,
			chains: async(func() (string, error) {
				s, _ := text.get()
				return sha256Hex(s), nil // planFromVerified compares it
			}),
			rendered: rendered,
			rulesetHash: async(func() (string, error) {
				s, _ := rendered.get()
				return state.HashRuleset(s), nil
			}),
		}
	}
	return g.started
}

// future is a value computed on a goroutine of its own.
type future[T any] struct {
	done chan struct{}
	v    T
	err  error
}

func async[T any](f func() (T, error)) *future[T] {
	fu := &future[T]{done: make(chan struct{})}
	go func() {
		defer close(fu.done)
		fu.v, fu.err = f()
	}()
	return fu
}

func (f *future[T]) get() (T, error) {
	<-f.done
	return f.v, f.err
}

// planFromVerified plans desired without reading the kernel, when the last
// verified record makes that sound: the kernel is still at its generation
// (so it holds exactly the recorded ruleset), desired has the recorded
// chains, rule for rule, and differs only in the elements of sets that
// exist. Then the recorded sets are the kernel's, and the plan is their
// element differences (a blocklist file changed). Otherwise nil: read the
// kernel.
func (g *globals) planFromVerified(conn *nft.Conn, desired *ruleset.Table) *planner.Plan {
	rec, _ := g.verifiedRecord().get()
	if rec == nil {
		return nil
	}
	v := rec.Verified
	if gen, err := conn.Generation(); err != nil || gen != v.Generation {
		return nil
	}
	if v.Chains != g.chainsHash(desired) {
		return nil
	}
	setsOf := func(s []*ruleset.Set) *ruleset.Table {
		t := ruleset.NewTable()
		t.Sets = s
		return t
	}
	p := planner.Diff(setsOf(desired.Sets), setsOf(rec.sets))
	if !p.ElementsOnly() {
		return nil
	}
	p.Generation = v.Generation
	return p
}

// ownVerified returns the namespace's verified record when it was made
// with this command's key (binary, namespace, host, directory, limits),
// else nil.
func (g *globals) ownVerified() *state.Verified {
	v, err := g.run().LoadVerified(g.netns)
	if err != nil || v == nil {
		return nil
	}
	if key, err := g.verifiedKey(); err != nil || key != v.Key {
		return nil
	}
	return v
}

// record is the verified record with its base.
type record struct {
	*state.Verified
	sets []*ruleset.Set
	inc  *incremental
}

// verifiedRecord reads the namespace's verified record made by this binary
// for this configuration and host, and decodes its base; nil when there
// is none. It is read once per command, on a goroutine of its own: an
// apply starts it before loading the files.
func (g *globals) verifiedRecord() *future[*record] {
	if g.verified == nil {
		g.verified = async(func() (*record, error) {
			v := g.ownVerified()
			if v == nil {
				return nil, nil
			}
			data := g.run().LoadVerifiedBase(g.netns, v)
			var base verifiedBase
			if data == nil || baseDecoding.Unmarshal(data, &base) != nil {
				return nil, nil
			}
			return &record{v, base.Sets, base.Inc}, nil
		})
	}
	return g.verified
}

// unchanged returns the record of the last full check when it still holds:
// same key, same files (read under the loader's checks), and a kernel whose
// ruleset generation has not moved since. Then the kernel holds exactly
// what the configuration compiles to, and a plan is empty without a
// compile or a read. Otherwise nil: plan the long way.
func (g *globals) unchanged() *state.Verified {
	v := g.ownVerified()
	if v == nil {
		return nil
	}
	srcs, err := g.readSources(v.NetsFiles)
	if err != nil || loader.HashSources(srcs) != v.ConfigHash {
		return nil
	}
	conn, err := g.open()
	if err != nil {
		return nil
	}
	defer conn.Close()
	if gen, err := conn.Generation(); err != nil || gen != v.Generation {
		return nil
	}
	return v
}

// unchangedNote tells, under an empty plan, that it comes from unchanged.
func unchangedNote(out io.Writer, command string, gen uint32) {
	fmt.Fprintf(out, "(From hostwall's last full check: neither the files nor the kernel's ruleset (nftables generation %d) have changed since. %s --refresh reads the kernel anyway.)\n", gen, command)
}

// applyUnchanged is a plain apply with nothing to do (appliedUnchanged),
// decided under the lock as every apply is: done is false when the apply
// must go the long way, and then nothing was printed.
func (g *globals) applyUnchanged(out io.Writer) (done bool, err error) {
	lock, err := g.lock()
	if err != nil {
		return true, err
	}
	defer lock.Release()
	v := g.appliedUnchanged()
	if v == nil {
		return false, nil
	}
	views.PlanHuman(out, &planner.Plan{Generation: v.Generation}, g.style(os.Stdout))
	unchangedNote(out, "apply", v.Generation)
	return true, nil
}

// appliedUnchanged reports whether a plain apply has nothing to do: the
// kernel holds what the files compile to (unchanged), and the current
// generation records that very ruleset, so the long way would neither
// commit nor record (recordIfNew). Not while a trial runs: the long way
// refuses then.
func (g *globals) appliedUnchanged() *state.Verified {
	v := g.unchanged()
	if v == nil || v.Ruleset == "" {
		return nil
	}
	if t, _ := g.run().ReadTrial(g.netns); t != nil {
		return nil
	}
	if cur, err := g.store().CurrentMeta(); err != nil || cur == nil || cur.RulesetHash != v.Ruleset {
		return nil
	}
	return v
}
