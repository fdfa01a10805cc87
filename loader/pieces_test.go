package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

// decodeBoth decodes src whole and in pieces of a few bytes (as many as
// there are top-level items).
func decodeBoth(src Source) (whole, pieces *fragment, wholeDiags, piecesDiags hcl.Diagnostics) {
	defer func(n int) { pieceBytes = n }(pieceBytes)
	pieceBytes = len(src.Data) + 1
	whole, wholeDiags = decodeFile(src)
	pieceBytes = 1
	pieces, piecesDiags = decodeFile(src)
	return whole, pieces, wholeDiags, piecesDiags
}

// samePieces fails unless decoding in pieces is decoding whole: without
// errors, the same fragment and warnings; with errors, errors too, all of
// whole's among them (pieces also decode an object a file declares twice,
// which whole skips, so they may find more errors in it).
func samePieces(t *testing.T, src Source) {
	t.Helper()
	whole, pieces, wd, pd := decodeBoth(src)
	if wd.HasErrors() {
		got := diagTexts(pd)
		for _, d := range diagTexts(wd) {
			if !slices.Contains(got, d) {
				t.Errorf("%s: decoding in pieces misses %s", src.Path, d)
			}
		}
		return
	}
	if d := cmp.Diff(diagTexts(wd), diagTexts(pd)); d != "" {
		t.Errorf("%s: diagnostics differ (-whole +pieces):\n%s", src.Path, d)
	}
	if d := cmp.Diff(whole, pieces, byValue(), cmp.Comparer(func(a, b hcl.Range) bool { return a == b })); d != "" {
		t.Errorf("%s: decoded differently (-whole +pieces):\n%s", src.Path, d)
	}
}

func diagTexts(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		out = append(out, d.Error())
	}
	slices.Sort(out)
	return out
}

// generated is a large policy file of every kind of block.
func generated() []byte {
	var b strings.Builder
	b.WriteString("# generated\nhost {\n  name = \"h\"\n}\nsettings {\n  allow_ipv6_neighbor_discovery = false\n}\n")
	b.WriteString("failsafe {\n  inbound = [\"tcp:22\"]\n}\ntier \"t\" {\n  order = 5\n}\n")
	for i := range 300 {
		fmt.Fprintf(&b, "network_set \"ns%d\" {\n  labels = { n = \"%d\" }\n  nets = [\"10.%d.0.0/16\"]\n}\n", i, i, i%250)
		fmt.Fprintf(&b, "/* policy %d */\npolicy \"p%d\" {\n  tier = \"t\"\n  order = %d\n  selector = \"all()\"\n", i, i, i)
		fmt.Fprintf(&b, "  ingress {\n    action = \"allow\"\n    protocol = \"tcp\"\n    source { selector = \"n == '%d'\" }\n    destination { ports = [%d, \"1000:2000\"] }\n  }\n}\n", i, 1+i)
		fmt.Fprintf(&b, "host_endpoint \"e%d\" {\n  interface = \"eth%d\"\n  expected_ips = [\"192.0.2.%d\"]\n}\n\n", i, i%10, i%250)
	}
	return []byte(b.String())
}

// TestPiecesAsWhole: decoding in pieces is decoding whole (samePieces) for
// every HCL fixture and example, valid or not, and a large generated file.
func TestPiecesAsWhole(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.hcl")
	more, _ := filepath.Glob("testdata/*/*/*.hcl")
	examples, _ := filepath.Glob("../examples/*/*.hcl")
	srcs := []Source{{Path: "generated.hcl", Data: generated()}}
	for _, f := range append(append(files, more...), examples...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, Source{Path: f, Data: data})
	}
	split := 0
	for _, src := range srcs {
		if len(cut(src.Data, 1)) > 1 {
			split++
		}
		samePieces(t, src)
	}
	if split < 8 {
		t.Errorf("only %d files were cut in pieces", split)
	}
}

// seedHCL gives a fuzz target the test files as its first inputs.
func seedHCL(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.hcl")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
}

// FuzzPieces: whatever the file, decoding it in pieces is decoding it whole.
func FuzzPieces(f *testing.F) {
	seedHCL(f)
	f.Add([]byte("x = <<EOT\npolicy \"a\" {}\nEOT\n"))
	f.Add([]byte("/*\npolicy \"a\" {}\n*/\npolicy \"b\" {}\n"))
	f.Add([]byte("policy \"a\" {\norder = 1\n}\npolicy \"a\" {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		samePieces(t, Source{Path: "f.hcl", Data: data})
	})
}
