package loader

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// A nets file lists a network set's addresses as plain text: one address
// or CIDR per line, `#` starts a comment. Big blocklists belong here
// rather than in HCL, whose list evaluation is slow at that size; a line
// scanner reads 100k lines in milliseconds.

// ParseNetsFile reads a nets file as a load does; errors name file:line:col. The lines
// are slices of one copy of data, a line that is just an IPv4 network
// parses without trimming or netip, and a line's range is made only for an
// error: 100k lines parse in ~6 ms (8.5 before the IPv4 path).
func ParseNetsFile(path string, data []byte) ([]netip.Prefix, hcl.Diagnostics) {
	rest := string(data)
	nets := make([]netip.Prefix, 0, strings.Count(rest, "\n")+1)
	var diags hcl.Diagnostics
	for line := 1; rest != ""; line++ {
		var text string
		text, rest, _ = strings.Cut(rest, "\n")
		if p, ok := parseCIDR4(text); ok { // the usual line: just a network
			nets = append(nets, p)
			continue
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		trimmed := strings.TrimSpace(text)
		if trimmed == "" {
			continue
		}
		p, err := parseNetFast(trimmed)
		if err == nil {
			nets = append(nets, p)
			continue
		}
		col := 1 + len(text) - len(strings.TrimLeft(text, " \t"))
		rng := hcl.Range{Filename: path, Start: hcl.Pos{Line: line, Column: col}, End: hcl.Pos{Line: line, Column: col + len(trimmed)}}
		_, d := parseNet(trimmed, rng)
		d.Detail += " A nets file holds one address or CIDR per line; # starts a comment."
		diags = append(diags, d)
		if len(diags) >= 20 {
			diags = append(diags, errAt(rng, "Too many errors", "Stopped after 20 invalid lines in %s.", path))
			break
		}
	}
	return nets, diags
}

// netsFile resolves, reads and parses the nets_file of a network set
// (parsed ones come from the memo). The path is relative to the directory
// of the policy file naming it (ref.From) and must stay inside the
// configuration directory. Files come
// from the sources already given (a recorded generation holds them) or,
// when loading a directory, from disk, under the same trust checks and size
// limit as policy files; either way they join the result's sources, so
// generations and the agent's content hash cover them.
func (b *builder) netsFile(ref netsRef) (path, key string, nets []netip.Prefix) {
	name, from := ref.Name, ref.From
	root := b.dir
	if root == "" {
		root = filepath.Dir(from)
	}
	path = name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(from), name)
	}
	path = filepath.Clean(path)
	if rel, err := filepath.Rel(root, path); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		b.diags = append(b.diags, errAt(ref.Range, "nets_file outside the configuration directory",
			"%q resolves to %s, outside %s. Keep nets files in the configuration directory (or below it), where the same ownership checks apply.", name, path, root))
		return "", "", nil
	}
	src, ok := b.files[path]
	if !ok {
		if b.disk == nil {
			b.diags = append(b.diags, errAt(ref.Range, "nets_file not found", "%s is not among the files given.", path))
			return "", "", nil
		}
		data, err := b.disk(path)
		if err != nil {
			b.diags = append(b.diags, errAt(ref.Range, "Cannot read nets_file", "%v.", err))
			return "", "", nil
		}
		src = newSource(path, data)
		b.files[path] = src
		b.extra = append(b.extra, src)
	}
	memoized := b.memo.netsMap()
	if memoized != nil {
		key = fileKey(src)
		if nets, ok := memoized.Get(key); ok {
			return path, key, nets
		}
	}
	nets, diags := ParseNetsFile(path, src.Data)
	b.diags = append(b.diags, diags...)
	if !diags.HasErrors() {
		memoized.Keep(key, nets)
	}
	return path, key, nets
}

// ChangedLines returns what changed from old to now as the lines that
// went (gone) and those that came, as multisets: taking gone's lines from
// old's and adding came's gives now's, and no line is in both. A nets
// file's order does not matter (its networks are a set), so a line that
// only moved is no change. What the two start and end with alike is
// skipped a block at a time; the lines between are matched by a hash of
// each, so a file whose first and last lines both changed (a generated
// header, a network appended) costs one pass, not a rewrite. For a nets
// file changed by a few lines it is the few lines.
func ChangedLines(old, now []byte) (gone, came []byte) {
	p := commonPrefix(old, now)
	p = bytes.LastIndexByte(old[:p], '\n') + 1 // back to the start of the line
	s := commonSuffix(old[p:], now[p:])
	// Forward to the start of a line in both: the same bytes follow in
	// each, so past the first of them only the first newline matters.
	startsLine := func(b []byte, i int) bool { return i == p || b[i-1] == '\n' }
	for s > 0 && !(startsLine(old, len(old)-s) && startsLine(now, len(now)-s)) {
		s--
	}
	gone, came = old[p:len(old)-s], now[p:len(now)-s]
	if len(gone) == 0 || len(came) == 0 {
		return gone, came
	}
	left := map[string]int{} // lines of gone not (yet) matched in came
	for line := range lines(gone) {
		left[string(line)]++
	}
	var outCame []byte
	for line := range lines(came) {
		if left[string(line)] > 0 {
			left[string(line)]--
			continue
		}
		outCame = append(append(outCame, line...), '\n')
	}
	var outGone []byte
	for line := range lines(gone) {
		if left[string(line)] > 0 {
			left[string(line)]--
			outGone = append(append(outGone, line...), '\n')
		}
	}
	return outGone, outCame
}

// lines yields the lines of b without their newlines.
func lines(b []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			line := b
			if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
				line, b = b[:nl], b[nl+1:]
			} else {
				b = nil
			}
			if !yield(line) {
				return
			}
		}
	}
}

// commonPrefix is the length of what a and b start with alike, compared a
// block at a time (bytes.Equal is the machine's memcmp): a 1.5 MB nets file
// byte by byte took 1.1 ms.
func commonPrefix(a, b []byte) int {
	const block = 256
	n := 0
	for n+block <= len(a) && n+block <= len(b) && bytes.Equal(a[n:n+block], b[n:n+block]) {
		n += block
	}
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// commonSuffix is the length of what a and b end with alike (commonPrefix).
func commonSuffix(a, b []byte) int {
	const block = 256
	n := 0
	for n+block <= len(a) && n+block <= len(b) && bytes.Equal(a[len(a)-n-block:len(a)-n], b[len(b)-n-block:len(b)-n]) {
		n += block
	}
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}
