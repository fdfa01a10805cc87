package loader

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/bincodec"
	"github.com/hostwall/hostwall/internal/cores"
	"github.com/hostwall/hostwall/internal/lastuse"
)

// A Cache keeps what a directory's policy files decode to, so that a load
// skips parsing the files it has seen before: for a large policy most of a
// load is HCL's lexer (docs/performance.md), while the usual change is to a
// nets file, read on every load anyway, or to one policy file of several.
// The loader asks for one value per directory and puts a new one when the
// files changed: each policy file's decoding, by the file's path and
// content, for the files of the last load (a decoding with an error is not
// kept). The value is bincodec, which carries no description of the types
// it was written from: an implementation that outlives the process must
// also key it by the binary that wrote it.
type Cache interface {
	// Get returns the value put under key, or nil.
	Get(key string) []byte
	// Put keeps value under key; failing to is no error, only a miss later.
	Put(key string, value []byte)
}

// cacheFormat names the layout of bundle and fragment; change it with them.
const cacheFormat = "hostwall decoded policy files 3"

// bundle is a Cache's value: each policy file's fragment, encoded, by
// fileKey — for a file decoded in pieces, each piece's, which a load
// decodes on every core and combines as the pieces were (decodeParts).
type bundle struct {
	Files map[string][][]byte
}

// fragment is what one policy file decodes to before nets files are read.
type fragment struct {
	Config *config.Config
	// Declared are the file's named objects, TierRefs its policies' tiers
	// and Nets its nets_file references (Set indexes Config.NetworkSets):
	// merge checks them against the other files.
	Declared []declared
	TierRefs []tierRef
	Nets     []netsRef
	// Warnings are the decoding's diagnostics (never errors: those are
	// not kept).
	Warnings []cachedDiag
}

// netsRef is a network set's nets_file, as written in file From.
type netsRef struct {
	Set   int
	Name  string
	From  string
	Range hcl.Range
}

// cachedDiag is an hcl.Diagnostic without its expression and evaluation
// context, which are interfaces and which a warning of ours never has.
type cachedDiag struct {
	Severity         hcl.DiagnosticSeverity
	Summary, Detail  string
	Subject, Context *hcl.Range
}

func dirKey(dir string) string { return sumHex([]byte(cacheFormat + "\n" + dir)) }

func fileKey(src Source) string {
	return sumHex(fmt.Appendf(nil, "%q %s", src.Path, SourceSum(src)))
}

// Memo keeps the files' decodings in memory between the loads of a
// long-running process (the agent), where even decoding a Cache's bytes
// (~10 ms for W1's policy file) is slow: a load takes an unchanged file's
// decoding as it is. The configurations of successive loads then share
// objects, so their users only read them (compile does).
type Memo struct {
	// files are the decoded policy files, nets the parsed nets files (the
	// slices shared: a load copies them into the network sets it fills),
	// both by fileKey.
	files lastuse.Map[string, memoized]
	nets  lastuse.Map[string, []netip.Prefix]
}

type memoized struct {
	frag  *fragment
	diags hcl.Diagnostics
	parts [][]byte // the fragment encoded (a bundle's value)
}

// The Memo's maps, or nil ones when there is none.

func (m *Memo) filesMap() *lastuse.Map[string, memoized] {
	if m == nil {
		return nil
	}
	return &m.files
}

func (m *Memo) netsMap() *lastuse.Map[string, []netip.Prefix] {
	if m == nil {
		return nil
	}
	return &m.nets
}

// decodeCached decodes the policy files, each from the memo or the cache
// when either holds the file's decoding, and puts the decodings of this
// load back when they are not those the cache held. diags[i] are
// frags[i]'s.
func decodeCached(policies []Source, dir string, cache Cache, memo *Memo) (frags []*fragment, diags []hcl.Diagnostics) {
	var old bundle
	if cache != nil && bincodec.Unmarshal(cache.Get(dirKey(dir)), &old) != nil {
		old = bundle{}
	}
	mem := memo.filesMap()
	next := bundle{Files: map[string][][]byte{}}
	reused := 0
	for _, src := range policies {
		key := fileKey(src)
		m, ok := mem.Get(key)
		if parts := old.Files[key]; !ok && parts != nil {
			if f, d := decodeParts(parts); f != nil {
				m, ok = memoized{f, d, parts}, true
			}
		}
		if !ok {
			f, d, parts := decodeFile(src)
			m = memoized{f, d, parts}
		}
		frags, diags = append(frags, m.frag), append(diags, m.diags)
		if m.parts == nil { // an error: kept nowhere
			continue
		}
		next.Files[key] = m.parts
		mem.Keep(key, m)
		if old.Files[key] != nil {
			reused++
		}
	}
	mem.Done()
	if cache != nil && (reused != len(next.Files) || len(next.Files) != len(old.Files)) {
		if data, err := bincodec.Marshal(next); err == nil {
			cache.Put(dirKey(dir), data)
		}
	}
	return frags, diags
}

// encode is f for a Cache, nil when diags hold an error or f cannot be
// encoded.
func (f *fragment) encode(diags hcl.Diagnostics) []byte {
	if diags.HasErrors() {
		return nil
	}
	for _, d := range diags {
		f.Warnings = append(f.Warnings, cachedDiag{d.Severity, d.Summary, d.Detail, d.Subject, d.Context})
	}
	data, err := bincodec.Marshal(f)
	f.Warnings = nil
	if err != nil {
		return nil
	}
	return data
}

// decodeParts reads a file's encoded parts, each on a core of its own when
// there are several, and combines them as decodeHCLPieces combined the
// pieces; nil when a part cannot be read.
func decodeParts(parts [][]byte) (*fragment, hcl.Diagnostics) {
	if len(parts) == 1 {
		return decodeFragment(parts[0])
	}
	frags := make([]*fragment, len(parts))
	diags := make([]hcl.Diagnostics, len(parts))
	cores.Each(len(parts), func(i int) { frags[i], diags[i] = decodeFragment(parts[i]) })
	if slices.Contains(frags, nil) {
		return nil, nil
	}
	return combine(frags, diags)
}

// decodeFragment reads what encode wrote, nil when it cannot.
func decodeFragment(data []byte) (*fragment, hcl.Diagnostics) {
	var f fragment
	if bincodec.Unmarshal(data, &f) != nil || f.Config == nil {
		return nil, nil
	}
	for _, ref := range f.Nets {
		if ref.Set < 0 || ref.Set >= len(f.Config.NetworkSets) {
			return nil, nil
		}
	}
	var diags hcl.Diagnostics
	for _, w := range f.Warnings {
		diags = append(diags, &hcl.Diagnostic{Severity: w.Severity, Summary: w.Summary, Detail: w.Detail, Subject: w.Subject, Context: w.Context})
	}
	f.Warnings = nil
	return &f, diags
}
