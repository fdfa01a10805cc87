package loader

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/lastuse"
)

// fragment is what one policy file decodes to before nets files are read.
type fragment struct {
	Config *config.Config
	// Declared are the file's named objects, TierRefs its policies' tiers
	// and Nets its nets_file references (Set indexes Config.NetworkSets):
	// merge checks them against the other files.
	Declared []declared
	TierRefs []tierRef
	Nets     []netsRef
}

// netsRef is a network set's nets_file, as written in file From.
type netsRef struct {
	Set   int
	Name  string
	From  string
	Range hcl.Range
}

func fileKey(src Source) string {
	return sumHex(fmt.Appendf(nil, "%q %s", src.Path, SourceSum(src)))
}

// Memo keeps the files' decodings in memory between the loads of a
// long-running process (the agent): a load takes an unchanged policy
// file's decoding, and an unchanged nets file's networks, as they are, so
// a reload decodes only what changed. The configurations of successive
// loads then share objects, so their users only read them (compile does).
type Memo struct {
	// files are the decoded policy files, nets the parsed nets files (the
	// slices shared: a load copies them into the network sets it fills),
	// both by fileKey. A file with an error is kept in neither.
	files lastuse.Map[string, memoized]
	nets  lastuse.Map[string, []netip.Prefix]
}

type memoized struct {
	frag  *fragment
	diags hcl.Diagnostics // warnings only
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

// decodeMemoized decodes the policy files, each from the memo when it
// holds the file's decoding, and keeps this load's error-free decodings in
// it. diags[i] are frags[i]'s.
func decodeMemoized(policies []Source, memo *Memo) (frags []*fragment, diags []hcl.Diagnostics) {
	mem := memo.filesMap()
	for _, src := range policies {
		var key string
		if mem != nil {
			key = fileKey(src)
		}
		m, ok := mem.Get(key)
		if !ok {
			f, d := decodeFile(src)
			m = memoized{f, d}
			if !d.HasErrors() {
				mem.Keep(key, m)
			}
		}
		frags, diags = append(frags, m.frag), append(diags, m.diags)
	}
	mem.Done()
	return frags, diags
}
