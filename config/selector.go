package config

import (
	"fmt"
	"slices"
	"strings"
)

// Selector is a parsed Calico label selector.
//
// Grammar (Calico's): `all()`, `has(k)`, `k == "v"`, `k != "v"` (true when
// k is absent), `k in {"a", "b"}`, `k not in {…}` (true when absent),
// `global()`, `k contains "s"`, `k starts with "s"`, `k ends with "s"` (also
// `startswith`, `endswith`), `!`, `&&`, `||` and parentheses. Values are
// quoted with ' or ". An empty selector means all().
type Selector struct {
	root node
}

// MaxLabelLength is the longest label key a selector may name (Calico's).
const MaxLabelLength = 512

// Limits on selectors, far beyond any real one, so that a hostile or
// generated selector fails with an error rather than exhausting memory or
// the stack.
const (
	MaxSelectorLength = 64 << 10
	MaxSelectorDepth  = 100 // nested parentheses and negations
)

// ParseSelector parses a selector; the error says what is wrong and where
// (as a byte offset into s).
func ParseSelector(s string) (*Selector, error) {
	if len(s) > MaxSelectorLength {
		return nil, fmt.Errorf("the selector is %d bytes long, above the limit of %d", len(s), MaxSelectorLength)
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tokEOF {
		return &Selector{root: allNode{}}, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("unexpected %s at offset %d", t, t.pos)
	}
	return &Selector{root: n}, nil
}

// All returns the selector that matches everything.
func All() *Selector { return &Selector{root: allNode{}} }

// Matches evaluates the selector against a set of labels.
func (s *Selector) Matches(labels map[string]string) bool { return s.root.eval(labels) }

// String is the canonical form: whitespace normalised, `in` sets sorted and
// deduplicated, values double-quoted unless they contain a double quote.
func (s *Selector) String() string { return s.root.str(true) }

// MarshalText is the canonical form, which ParseSelector reads back as the
// same selector: an encoder that honours encoding.TextMarshaler, such as
// encoding/json, writes a selector so, not as a struct with no exported
// fields.
func (s *Selector) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a selector written by MarshalText.
func (s *Selector) UnmarshalText(text []byte) error {
	p, err := ParseSelector(string(text))
	if err != nil {
		return err
	}
	*s = *p
	return nil
}

// IsAll reports whether the selector is all().
func (s *Selector) IsAll() bool { _, ok := s.root.(allNode); return ok }

type node interface {
	eval(map[string]string) bool
	str(root bool) string
}

type (
	allNode    struct{}
	globalNode struct{} // global(): true outside a namespace context, as in Calico
	hasNode    struct{ key string }
	notNode    struct{ op node }
	andNode    struct{ ops []node }
	orNode     struct{ ops []node }
	cmpNode    struct {
		key, op string // op: == != contains "starts with" "ends with"
		val     string
	}
	inNode struct {
		key    string
		vals   []string
		negate bool
	}
)

func (allNode) eval(map[string]string) bool     { return true }
func (n hasNode) eval(l map[string]string) bool { _, ok := l[n.key]; return ok }
func (n notNode) eval(l map[string]string) bool { return !n.op.eval(l) }
func (n andNode) eval(l map[string]string) bool {
	for _, o := range n.ops {
		if !o.eval(l) {
			return false
		}
	}
	return true
}
func (n orNode) eval(l map[string]string) bool {
	for _, o := range n.ops {
		if o.eval(l) {
			return true
		}
	}
	return false
}
func (n cmpNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	switch n.op {
	case "==":
		return ok && v == n.val
	case "!=":
		return !ok || v != n.val
	case "contains":
		return ok && strings.Contains(v, n.val)
	case "starts with":
		return ok && strings.HasPrefix(v, n.val)
	case "ends with":
		return ok && strings.HasSuffix(v, n.val)
	}
	panic("config: unknown selector operator " + n.op)
}
func (n inNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	in := ok && slices.Contains(n.vals, v)
	if n.negate {
		return !in
	}
	return in
}

func (allNode) str(bool) string                { return "all()" }
func (globalNode) str(bool) string             { return "global()" }
func (globalNode) eval(map[string]string) bool { return true }
func (n hasNode) str(bool) string              { return "has(" + n.key + ")" }
func (n notNode) str(bool) string              { return "!" + n.op.str(false) }
func (n andNode) str(root bool) string {
	return joinOps(n.ops, " && ", root)
}
func (n orNode) str(root bool) string {
	return joinOps(n.ops, " || ", root)
}
func (n cmpNode) str(bool) string { return n.key + " " + n.op + " " + quote(n.val) }
func (n inNode) str(bool) string {
	q := make([]string, len(n.vals))
	for i, v := range n.vals {
		q[i] = quote(v)
	}
	op := " in {"
	if n.negate {
		op = " not in {"
	}
	return n.key + op + strings.Join(q, ", ") + "}"
}

func joinOps(ops []node, sep string, root bool) string {
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = o.str(false)
	}
	s := strings.Join(parts, sep)
	if root {
		return s
	}
	return "(" + s + ")"
}

func quote(v string) string {
	if strings.Contains(v, `"`) {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}

// Tokens.

type tokKind int

const (
	tokEOF tokKind = iota
	tokLabel
	tokString
	tokOp   // == != && || ! ( ) { } ,
	tokWord // contains, starts with, ends with, in, not in, all(, has(
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of selector"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_./-", c) >= 0
}

// keywords that follow a label, longest first.
var wordOps = []string{"starts with", "ends with", "startswith", "endswith", "not in", "contains", "in"}

func tokenize(s string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
		if i >= len(s) {
			return append(toks, token{kind: tokEOF, pos: i}), nil
		}
		start := i
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "all("), strings.HasPrefix(rest, "has("), strings.HasPrefix(rest, "global("):
			word := rest[:strings.IndexByte(rest, '(')+1]
			toks = append(toks, token{tokWord, word, start})
			i += len(word)
		case rest[0] == '"' || rest[0] == '\'':
			end := strings.IndexByte(rest[1:], rest[0])
			if end < 0 {
				return nil, fmt.Errorf("unterminated string starting at offset %d", start)
			}
			toks = append(toks, token{tokString, rest[1 : end+1], start})
			i += end + 2
		case strings.HasPrefix(rest, "=="), strings.HasPrefix(rest, "!="), strings.HasPrefix(rest, "&&"), strings.HasPrefix(rest, "||"):
			toks = append(toks, token{tokOp, rest[:2], start})
			i += 2
		case strings.IndexByte("!(){},", rest[0]) >= 0:
			toks = append(toks, token{tokOp, rest[:1], start})
			i++
		case isLabelChar(rest[0]):
			// After a label may come a word operator; a label itself may not
			// be one of those words only where an operator is expected, so
			// decide by position: previous token a label means operator.
			if n := len(toks); n > 0 && toks[n-1].kind == tokLabel {
				if w := matchWord(rest); w != "" {
					toks = append(toks, token{tokWord, w, start})
					i += len(w)
					continue
				}
			}
			j := i
			for j < len(s) && isLabelChar(s[j]) {
				j++
			}
			if j-i > MaxLabelLength {
				return nil, fmt.Errorf("label at offset %d is longer than %d characters", start, MaxLabelLength)
			}
			toks = append(toks, token{tokLabel, s[i:j], start})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q at offset %d", rest[0], start)
		}
	}
}

func matchWord(rest string) string {
	for _, w := range wordOps {
		if strings.HasPrefix(rest, w) && (len(rest) == len(w) || !isLabelChar(rest[len(w)])) {
			return w
		}
	}
	return ""
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) expect(kind tokKind, text string) error {
	t := p.next()
	if t.kind != kind || (text != "" && t.text != text) {
		want := text
		if kind == tokString {
			want = "a quoted value"
		} else if kind == tokLabel {
			want = "a label name"
		}
		return fmt.Errorf("expected %s at offset %d, found %s", want, t.pos, t)
	}
	return nil
}

func (p *parser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	ops := []node{first}
	for p.peek().kind == tokOp && p.peek().text == "||" {
		p.next()
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	if len(ops) == 1 {
		return first, nil
	}
	return orNode{ops}, nil
}

func (p *parser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	ops := []node{first}
	for p.peek().kind == tokOp && p.peek().text == "&&" {
		p.next()
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		ops = append(ops, n)
	}
	if len(ops) == 1 {
		return first, nil
	}
	return andNode{ops}, nil
}

func (p *parser) parseUnary() (node, error) {
	t := p.next()
	if t.kind == tokOp && (t.text == "!" || t.text == "(") {
		if p.depth++; p.depth > MaxSelectorDepth {
			return nil, fmt.Errorf("the selector nests deeper than %d levels at offset %d", MaxSelectorDepth, t.pos)
		}
		defer func() { p.depth-- }()
	}
	switch {
	case t.kind == tokOp && t.text == "!":
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case t.kind == tokOp && t.text == "(":
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		return n, p.expect(tokOp, ")")
	case t.kind == tokWord && t.text == "all(":
		return allNode{}, p.expect(tokOp, ")")
	case t.kind == tokWord && t.text == "global(":
		return globalNode{}, p.expect(tokOp, ")")
	case t.kind == tokWord && t.text == "has(":
		k := p.next()
		if k.kind != tokLabel {
			return nil, fmt.Errorf("expected a label name in has() at offset %d, found %s", k.pos, k)
		}
		return hasNode{k.text}, p.expect(tokOp, ")")
	case t.kind == tokLabel:
		return p.parseComparison(t.text)
	}
	return nil, fmt.Errorf("unexpected %s at offset %d", t, t.pos)
}

func (p *parser) parseComparison(key string) (node, error) {
	op := p.next()
	switch {
	case op.kind == tokOp && (op.text == "==" || op.text == "!="),
		op.kind == tokWord && (op.text == "contains" || strings.HasPrefix(op.text, "starts") || strings.HasPrefix(op.text, "ends")):
		v := p.next()
		if v.kind != tokString {
			return nil, fmt.Errorf("expected a quoted value after %q at offset %d, found %s", op.text, v.pos, v)
		}
		name := op.text
		switch name {
		case "startswith":
			name = "starts with"
		case "endswith":
			name = "ends with"
		}
		return cmpNode{key: key, op: name, val: v.text}, nil
	case op.kind == tokWord && (op.text == "in" || op.text == "not in"):
		vals, err := p.parseSet()
		if err != nil {
			return nil, err
		}
		return inNode{key: key, vals: vals, negate: op.text == "not in"}, nil
	}
	return nil, fmt.Errorf("expected an operator (==, !=, in, not in, contains, starts with, ends with) after label %q at offset %d, found %s", key, op.pos, op)
}

func (p *parser) parseSet() ([]string, error) {
	if err := p.expect(tokOp, "{"); err != nil {
		return nil, err
	}
	var vals []string
	if t := p.peek(); t.kind == tokOp && t.text == "}" {
		p.next()
		return vals, nil
	}
	for {
		v := p.next()
		if v.kind != tokString {
			return nil, fmt.Errorf("expected a quoted value in set at offset %d, found %s", v.pos, v)
		}
		vals = append(vals, v.text)
		t := p.next()
		if t.kind == tokOp && t.text == "}" {
			break
		}
		if t.kind != tokOp || t.text != "," {
			return nil, fmt.Errorf("expected , or } at offset %d, found %s", t.pos, t)
		}
	}
	slices.Sort(vals)
	return slices.Compact(vals), nil
}
