package loader

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// sameAsHCL checks parseLiteral against hclsyntax.ParseConfig on src: when
// parseLiteral accepts src, hclsyntax must parse it without a diagnostic to
// the very same AST (reflect.DeepEqual, ranges and unexported fields
// included). It returns whether parseLiteral accepted src.
func sameAsHCL(t *testing.T, src []byte, start hcl.Pos) bool {
	t.Helper()
	got, ok := parseLiteral(src, "f.hcl", start)
	if !ok {
		return false
	}
	f, diags := hclsyntax.ParseConfig(src, "f.hcl", start)
	if len(diags) > 0 {
		t.Fatalf("the literal parser accepted what hclsyntax reports (%v):\n%s", diags, src)
	}
	want := f.Body.(*hclsyntax.Body)
	if !reflect.DeepEqual(want, got) {
		diff := cmp.Diff(want, got, cmp.Exporter(func(reflect.Type) bool { return true }),
			cmp.Comparer(func(a, b cty.Value) bool { return a.RawEquals(b) }))
		t.Fatalf("the literal parser's AST differs from hclsyntax's (-hclsyntax +literal):\n%s\nsource:\n%s", diff, src)
	}
	return true
}

func TestLiteralParserMatchesHCL(t *testing.T) {
	cases := []struct {
		name, src string
		literal   bool // whether the literal parser should take it
	}{
		{"empty", "", true},
		{"newlines only", "\n\n", true},
		{"attribute at the end of the file", `a = 1`, true},
		{"block", "policy \"web\" {\n  order = 100\n}\n", true},
		{"block at the end of the file", "policy \"web\" {\n}", true},
		{"empty block", "egress {}\n", true},
		{"empty label", "policy \"\" {}\n", true},
		{"identifier labels", "a b c {}\n", true},
		{"single-line block", "destination { ports = [1024] }\n", true},
		{"nested blocks", "p \"x\" {\n  ingress {\n    action = \"allow\"\n    destination { ports = [80, 443] }\n  }\n}\n", true},
		{"strings", "a = \"x\"\nb = \"\"\nc = \"role == 'web' && !has(x)\"\nd = \"tcp:10.0.0.0/8:22\"\n", true},
		{"tabs", "a\t=\t\"\tx\"\n", true},
		{"numbers", "a = 0\nb = 65535\nc = 100.5\nd = -1\ne = - 2\nf = 007\n", true},
		{"booleans and null", "a = true\nb = false\nc = null\n", true},
		{"tuples", "a = []\nb = [1]\nc = [1, 2,]\nd = [\n  \"x\",\n  \"y\"\n]\ne = [[1], [], [\"a\", [true]]]\nf = [\n[1]\n]\n", true},
		{"tuple with comments", "a = [ # first\n  1, // second\n  /* third */ 2\n]\n", true},
		{"objects", "a = {}\nb = { role = \"web\", env = \"prod\" }\nc = {\n  role = \"web\"\n  env  = \"prod\",\n}\nd = { \"k\" = 1, x: 2 }\ne = { true = 1, null = 2 }\nf = {\n}\n", true},
		{"objects in tuples", "a = [{ x = 1 }, {\n y = 2\n}]\n", true},
		{"line comments", "# top\n// also\na = 1 # after\nb = 2 // after\n# last", true},
		{"comment right after an opening brace", "p \"x\" { # c\n  a = 1\n}\n", true},
		{"block comment", "/* a\n b */ a = 1\np {\n /* x */ }\n", true},
		{"comment after a block", "p {\n} # done\nq {}\n", true},
		{"leading spaces", "   a = 1\n", true},
		{"hyphens in names", "a-b = 1\nc-d \"e-f\" {}\n", true},
		{"start of a piece", "policy \"a\" {\n}\n", true},

		// Outside the subset: hclsyntax parses these (or reports them).
		{"reference", "a = b\n", false},
		{"function call", "a = upper(\"x\")\n", false},
		{"operator", "a = 1 + 2\n", false},
		{"negated string", "a = -\"x\"\n", false},
		{"conditional", "a = true ? 1 : 2\n", false},
		{"traversal", "a = [1][0]\n", false},
		{"interpolation", "a = \"${b}\"\n", false},
		{"percent", "a = \"100%\"\n", false},
		{"escape", "a = \"\\n\"\n", false},
		{"heredoc", "a = <<EOT\nx\nEOT\n", false},
		{"for expression", "a = [for x in y: x]\n", false},
		{"for object", "a = {for k, v in y: k => v}\n", false},
		{"exponent", "a = 1e3\n", false},
		{"non-ASCII", "a = \"Ω\"\n", false},
		{"non-ASCII in a line comment", "# Ωmega — …\na = 1 # ünïcode\n", true},
		{"non-ASCII in a comment at the end", "a = 1 # Ω", false},
		{"non-ASCII in a block comment", "/* Ω */ a = 1\n", false},
		{"non-ASCII name", "ä = 1\n", false},
		{"carriage return", "a = 1\r\n", false},
		{"duplicate attribute", "a = 1\na = 2\n", false},
		{"two attributes on a line", "a = 1 b = 2\n", false},
		{"unclosed block", "p {\n", false},
		{"unclosed string", "a = \"x\n", false},
		{"unclosed tuple", "a = [1\n", false},
		{"attribute after a block on its line", "p {} a = 1\n", false},
		{"block in a single-line block", "p { q {} }\n", false},
		{"two attributes in a single-line block", "p { a = 1, b = 2 }\n", false},
		{"single-line block without its brace", "p { a = 1\n}\n", false},
		{"block header without a brace", "p \"x\"\n{}\n", false},
		{"parenthesized object key", "a = { (k) = 1 }\n", false},
		{"missing value", "a =\n", false},
		{"equals equals", "a == 1\n", false},
		{"stray token", "a = 1\n)\n", false},
		{"unterminated block comment", "/* a", false},
		{"control character", "a = 1\x01\n", false},
		{"object key on its own line", "a = { b\n = 1 }\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, start := range []hcl.Pos{{Line: 1, Column: 1}, {Line: 40, Column: 1, Byte: 1234}} {
				if got := sameAsHCL(t, []byte(tc.src), start); got != tc.literal {
					t.Errorf("literal parser took it: %v, want %v", got, tc.literal)
				}
			}
		})
	}
}

// TestLiteralParserOnRepositoryFiles runs every HCL file of the repository
// through both parsers; the examples and the valid test files must be
// literal.
func TestLiteralParserOnRepositoryFiles(t *testing.T) {
	out, err := exec.Command("git", "-C", "..", "ls-files", "*.hcl").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err) // not a checkout
	}
	files := strings.Fields(string(out))
	if len(files) < 10 {
		t.Fatalf("only %d HCL files found", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		literal := sameAsHCL(t, data, hcl.Pos{Line: 1, Column: 1})
		mustBe := strings.HasPrefix(f, "examples/") || strings.HasPrefix(f, "loader/testdata/valid/") || strings.HasPrefix(f, "packaging/")
		if mustBe && !literal {
			t.Errorf("%s is not taken by the literal parser", f)
		}
	}
}

// TestLiteralParserTakesLargePolicies: a generated policy file like the
// benchmark's, whole and in the loader's pieces.
func TestLiteralParserTakesLargePolicies(t *testing.T) {
	src := largePolicyFile(40, 50)
	if !sameAsHCL(t, src, hcl.Pos{Line: 1, Column: 1}) {
		t.Fatal("the generated policy file is not taken whole")
	}
	pieces := cut(src, 4<<10)
	if len(pieces) < 10 {
		t.Fatalf("only %d pieces", len(pieces))
	}
	for _, p := range pieces {
		if !sameAsHCL(t, src[p.start:p.end], p.pos) {
			t.Fatalf("piece at line %d is not taken", p.pos.Line)
		}
	}
}

// largePolicyFile is a generated policy file like the benchmark's: a host
// block, then policies of rules with nets, ports and port ranges.
func largePolicyFile(policies, rules int) []byte {
	var b strings.Builder
	b.WriteString("# generated\nhost {\n  name   = \"h\"\n  labels = { role = \"web\", blocked = \"true\" }\n}\n")
	for p := range policies {
		fmt.Fprintf(&b, "policy \"svc-%d\" {\n  order    = %d\n  selector = \"role == 'web'\"\n", p, 100+p)
		for r := range rules {
			fmt.Fprintf(&b, "  ingress {\n    action   = \"allow\"\n    protocol = \"tcp\"\n    source { nets = [\"10.%d.%d.0/24\"] }\n    destination { ports = [%d, \"%d:%d\"] }\n  }\n", p%256, r%256, 1024+r, 2000+r, 2100+r)
		}
		b.WriteString("}\n\n")
	}
	return []byte(b.String())
}

// FuzzLiteralParser: on any input, the literal parser either declines or
// builds exactly hclsyntax's AST, and never panics.
func FuzzLiteralParser(f *testing.F) {
	seedHCL(f)
	f.Add([]byte("a = [ # c\n 1, /* d */ 2\n]\nb = { x = 1\n y = \"\" }\np \"q\" r { s = -1 }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsHCL(t, data, hcl.Pos{Line: 1, Column: 1})
	})
}

// TestLiteralParserRandomDocuments: random documents of the literal subset
// — blocks, single-line blocks, attributes, tuples and objects nested, with
// comments, blank lines and spacing wherever they may go — are all taken by
// the literal parser and parse to hclsyntax's AST.
func TestLiteralParserRandomDocuments(t *testing.T) {
	for seed := range int64(3000) {
		g := &docGen{r: rand.New(rand.NewSource(seed))}
		g.body(0)
		if !sameAsHCL(t, []byte(g.b.String()), hcl.Pos{Line: 1 + int(seed%5), Column: 1, Byte: int(seed % 7)}) {
			t.Fatalf("seed %d: a literal document was not taken:\n%s", seed, g.b.String())
		}
	}
}

type docGen struct {
	r *rand.Rand
	b strings.Builder
}

func (g *docGen) pick(options ...string) string { return options[g.r.Intn(len(options))] }

func (g *docGen) sp() { g.b.WriteString(g.pick("", " ", "  ", "\t")) }

// eol ends a line: maybe with a comment, maybe with blank lines after.
func (g *docGen) eol() {
	g.sp()
	g.b.WriteString(g.pick("\n", "\n", "\n", "# c\n", "// c — ü\n", " /* c */\n", "\n\n"))
}

func (g *docGen) name() string {
	return g.pick("a", "order", "labels", "x_y", "a-b", "ports", "in")
}

func (g *docGen) body(depth int) {
	seen := map[string]bool{}
	for range g.r.Intn(4) + map[bool]int{true: 1}[depth == 0] {
		g.b.WriteString(strings.Repeat("  ", depth))
		switch n := g.name(); {
		case g.r.Intn(3) == 0 && !seen[n]:
			seen[n] = true
			g.b.WriteString(n)
			g.sp()
			g.b.WriteString("=")
			g.sp()
			g.expr(depth)
			g.eol()
		case depth < 3 && g.r.Intn(2) == 0:
			g.b.WriteString(n)
			for range g.r.Intn(3) {
				g.b.WriteString(" " + g.pick(`"web"`, `""`, "lbl", `"a b"`))
			}
			g.b.WriteString(" {")
			if g.r.Intn(3) == 0 {
				g.b.WriteString(" " + g.name() + " = ")
				g.expr(depth)
				g.b.WriteString(" }")
			} else {
				g.eol()
				g.body(depth + 1)
				g.b.WriteString(strings.Repeat("  ", depth) + "}")
			}
			g.eol()
		default:
			g.eol()
		}
	}
}

// expr writes a literal.
func (g *docGen) expr(depth int) {
	if depth > 4 {
		g.b.WriteString(g.pick("[]", "{}", "1"))
		return
	}
	switch g.r.Intn(9) {
	case 0:
		g.b.WriteString(g.pick("0", "22", "65535", "100.25", "-1", "- 7"))
	case 1:
		g.b.WriteString(g.pick("true", "false", "null"))
	case 2, 3:
		g.b.WriteString(g.pick(`"allow"`, `""`, `"10.0.0.0/8"`, `"role == 'web'"`, `"tcp:22"`, "\"\tx\""))
	case 4, 5:
		g.b.WriteString("[")
		n := g.r.Intn(4)
		for i := range n {
			g.inList()
			g.expr(depth + 1)
			if i < n-1 || g.r.Intn(2) == 0 {
				g.inList()
				g.b.WriteString(",")
			}
		}
		g.inList()
		g.b.WriteString("]")
	default:
		g.b.WriteString("{")
		n := g.r.Intn(4)
		for i := range n {
			if g.r.Intn(3) == 0 {
				g.eol()
			} else {
				g.sp()
			}
			g.b.WriteString(g.pick("k", "role", `"quoted key"`, "true", "a-b"))
			g.sp()
			g.b.WriteString(g.pick("=", ":"))
			g.sp()
			g.expr(depth + 1)
			if i < n-1 {
				g.sp()
				if g.r.Intn(2) == 0 {
					g.b.WriteString(",")
				} else {
					g.eol()
				}
			}
		}
		g.sp()
		if g.r.Intn(3) == 0 {
			g.eol()
		}
		g.b.WriteString("}")
	}
}

// inList writes what may stand between a list's items: spaces, newlines,
// comments.
func (g *docGen) inList() {
	g.b.WriteString(g.pick("", " ", "\n", " # c\n", " /* c */ ", "\n  "))
}
