package loader

import (
	"bytes"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/internal/cores"
)

// A large HCL file is parsed and decoded in pieces, on every core. HCL's
// lexer gathers all of a file's tokens in one growing slice: W1's 950 KB
// policy file took 170 ms to parse whole, and its pieces of ~64 KB, two at
// a time, ~75 ms (docs/performance.md). A piece ends before a line that
// starts with a letter, where a top-level block most likely begins; if any
// piece does not parse on its own (the cut fell inside a block, a heredoc
// or a comment) or has a top-level attribute (never valid here), the file
// is parsed whole instead, so its diagnostics are HCL's own. Pieces that
// all parse are the file: each is a sequence of complete top-level blocks.

// pieceBytes is the size a piece grows to before it looks for its end;
// tests make it tiny.
var pieceBytes = 64 << 10

type piece struct {
	start, end int
	pos        hcl.Pos
}

// cut returns the pieces of data.
func cut(data []byte, size int) []piece {
	var out []piece
	line := 1
	for start := 0; start < len(data); {
		end := len(data)
		for i := start + size; i < len(data); {
			nl := bytes.IndexByte(data[i:], '\n')
			if nl < 0 {
				break
			}
			i += nl + 1
			if i < len(data) && (isLetter(rune(data[i])) || data[i] == '_') {
				end = i
				break
			}
		}
		out = append(out, piece{start, end, hcl.Pos{Line: line, Column: 1, Byte: start}})
		line += bytes.Count(data[start:end], []byte{'\n'})
		start = end
	}
	return out
}

// decodeHCLPieces decodes src piece by piece, each on a core of its own,
// and combines the pieces; ok is false when a piece does not parse on its
// own.
func decodeHCLPieces(src Source) (_ *fragment, _ hcl.Diagnostics, ok bool) {
	pieces := cut(src.Data, pieceBytes)
	if len(pieces) < 2 {
		return nil, nil, false
	}
	frags := make([]*fragment, len(pieces))
	diags := make([]hcl.Diagnostics, len(pieces))
	var failed atomic.Bool
	cores.Each(len(pieces), func(i int) {
		p := pieces[i]
		body, d := parseHCL(src.Data[p.start:p.end], src.Path, p.pos)
		// A top-level attribute is an error anyway, and one set in two
		// pieces is an error only the whole file shows.
		if d.HasErrors() || body == nil || len(body.Attributes) > 0 {
			failed.Store(true)
			return
		}
		b := newBuilder()
		b.diags = d
		b.decodeBody(body)
		frags[i], diags[i] = b.fragment(), b.diags
	})
	if failed.Load() {
		return nil, nil, false
	}
	f, all := combine(frags, diags)
	return f, all, true
}
