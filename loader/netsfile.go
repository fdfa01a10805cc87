package loader

import (
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
	data, ok := b.files[path]
	if !ok {
		if b.disk == nil {
			b.diags = append(b.diags, errAt(ref.Range, "nets_file not found", "%s is not among the files given.", path))
			return "", "", nil
		}
		var err error
		if data, err = b.disk(path); err != nil {
			b.diags = append(b.diags, errAt(ref.Range, "Cannot read nets_file", "%v.", err))
			return "", "", nil
		}
		b.files[path] = data
		b.extra = append(b.extra, Source{Path: path, Data: data})
	}
	memoized := b.memo.netsMap()
	if memoized != nil { // hashing 1.5 MB costs ~1 ms: only to look it up
		key = fileKey(Source{Path: path, Data: data})
		if nets, ok := memoized.Get(key); ok {
			return path, key, nets
		}
	}
	nets, diags := ParseNetsFile(path, data)
	b.diags = append(b.diags, diags...)
	if !diags.HasErrors() {
		memoized.Keep(key, nets)
	}
	return path, key, nets
}
