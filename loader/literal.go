package loader

// A parser for the literal subset of HCL's native syntax, producing exactly
// the AST hclsyntax.ParseConfig produces for the same bytes.
//
// Policy files are blocks of attributes whose values are literals: quoted
// strings, numbers, true/false/null, and lists and maps of them. hclsyntax
// lexes a file into one growing slice of tokens before it parses: for W1's
// 950 KB policy file that is ~130 MB allocated and copied per load, most of
// a cold load's time (docs/performance.md). parseLiteral reads the bytes
// once, building hclsyntax's own AST nodes as it goes, with the same
// ranges; everything after parsing (decoding, diagnostics) is unchanged. It
// gives up — and the caller parses with hclsyntax — at anything outside the
// subset: non-ASCII bytes (but in line comments), carriage returns, escapes and template sequences
// in strings, heredocs, references, function calls, operators, for
// expressions, and any syntax error (so every diagnostic is hclsyntax's).
// TestLiteralParserMatchesHCL and FuzzLiteralParser compare the two ASTs.
//
// Each function names the hclsyntax parser function it follows.

import (
	"bytes"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// parseHCL parses an HCL file, or a piece of one starting at start: with
// the literal parser when it takes the bytes, with hclsyntax otherwise.
func parseHCL(src []byte, filename string, start hcl.Pos) (*hclsyntax.Body, hcl.Diagnostics) {
	if body, ok := parseLiteral(src, filename, start); ok {
		return body, nil
	}
	f, diags := hclsyntax.ParseConfig(src, filename, start)
	body, _ := f.Body.(*hclsyntax.Body)
	return body, diags
}

type litKind uint8

const (
	litEOF litKind = iota
	litNewline
	litIdent
	litNumber
	litString
	litEqual
	litColon
	litComma
	litMinus
	litOBrace
	litCBrace
	litOBrack
	litCBrack
	litOther // anything outside the subset
)

// A litToken is one token, as hclsyntax's lexer would cut it. A string is
// one token here: its quotes and its content have ranges of their own.
type litToken struct {
	kind  litKind
	rng   hcl.Range
	start int // byte offset in src of the token's text
	end   int
	// A string's parts: the content (empty when the string is "") and the
	// closing quote; rng is the opening quote.
	content, cquote hcl.Range
}

type litParser struct {
	src      []byte
	filename string
	i        int     // next byte to lex
	pos      hcl.Pos // position of src[i]
	base     int     // pos.Byte - i

	peeked   bool
	peekNL   bool // whether the peeked token was lexed including newlines
	next     litToken
	nextI    int // lexer state after next
	nextPos  hcl.Pos
	prev     hcl.Range // the last token read (hclsyntax's PrevRange)
	consumed bool
}

// errLiteral unwinds a parse that left the subset.
type errLiteral struct{}

// parseLiteral parses src as hclsyntax.ParseConfig(src, filename, start)
// would, when src is literal HCL without errors; ok is false otherwise.
func parseLiteral(src []byte, filename string, start hcl.Pos) (body *hclsyntax.Body, ok bool) {
	if bytes.IndexByte(src, '\r') >= 0 {
		return nil, false
	}
	p := &litParser{src: src, filename: filename, pos: start, base: start.Byte}
	defer func() {
		if r := recover(); r != nil {
			if _, ours := r.(errLiteral); !ours {
				panic(r)
			}
			body, ok = nil, false
		}
	}()
	return p.body(litEOF, 0), true
}

func (p *litParser) fail() { panic(errLiteral{}) }

// peek returns the next token without reading it. With nl, newlines are
// tokens, and a line comment stands for the newline that ends it (with the
// comment's range); without, both are skipped (hclsyntax's peeker).
func (p *litParser) peek(nl bool) litToken {
	if p.peeked && p.peekNL == nl {
		return p.next
	}
	i, pos := p.i, p.pos
	for {
		t, ni, npos := p.lex(i, pos)
		if t.kind == litNewline && !nl {
			i, pos = ni, npos
			continue
		}
		if t.kind == litOther && t.end > t.start && p.isComment(t.start) {
			endsLine := p.src[t.end-1] == '\n'
			if !nl || !endsLine {
				i, pos = ni, npos
				continue
			}
			t.kind = litNewline // the comment's newline, with its range
		}
		p.next, p.nextI, p.nextPos, p.peeked, p.peekNL = t, ni, npos, true, nl
		return t
	}
}

func (p *litParser) isComment(at int) bool {
	c := p.src[at]
	return c == '#' || (c == '/' && at+1 < len(p.src) && (p.src[at+1] == '/' || p.src[at+1] == '*'))
}

// read consumes the next token.
func (p *litParser) read(nl bool) litToken {
	t := p.peek(nl)
	p.i, p.pos, p.peeked = p.nextI, p.nextPos, false
	p.prev, p.consumed = t.rng, true
	if t.kind == litString {
		p.prev = t.cquote
	}
	return t
}

// prevRange is hclsyntax's PrevRange: the last token read, or the next one
// when none was.
func (p *litParser) prevRange() hcl.Range {
	if !p.consumed {
		return p.peek(true).rng
	}
	return p.prev
}

// advance moves pos over src[from:to], which holds no newline but in
// comments.
func (p *litParser) advance(pos hcl.Pos, from, to int) hcl.Pos {
	for _, c := range p.src[from:to] {
		if c == '\n' {
			pos.Line++
			pos.Column = 1
		} else {
			pos.Column++
		}
	}
	pos.Byte = to + p.base
	return pos
}

func (p *litParser) rangeOf(start, end hcl.Pos) hcl.Range {
	return hcl.Range{Filename: p.filename, Start: start, End: end}
}

// punctuation is the kind of each one-byte token but = and :.
var punctuation = [256]litKind{',': litComma, '-': litMinus, '{': litOBrace, '}': litCBrace, '[': litOBrack, ']': litCBrack}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentByte(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '-' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lex cuts the token at src[i:] (pos is src[i]'s position) as hclsyntax's
// scanner does, returning it and the state after it. Comments come back as
// litOther; peek tells them apart.
func (p *litParser) lex(i int, pos hcl.Pos) (litToken, int, hcl.Pos) {
	src := p.src
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
		pos.Column++
	}
	pos.Byte = i + p.base
	if i == len(src) {
		return litToken{kind: litEOF, rng: p.rangeOf(pos, pos), start: i, end: i}, i, pos
	}
	j := i + 1
	kind := litOther
	switch c := src[i]; {
	case c == '\n':
		end := hcl.Pos{Line: pos.Line + 1, Column: 1, Byte: pos.Byte + 1}
		return litToken{kind: litNewline, rng: p.rangeOf(pos, end), start: i, end: j}, j, end
	case c == '#' || c == '/' && j < len(src) && src[j] == '/':
		ascii := true
		for ; j < len(src) && src[j] != '\n'; j++ {
			ascii = ascii && src[j] < 0x80
		}
		switch {
		case !ascii && !utf8.Valid(src[i:j]):
			p.fail() // hclsyntax's character scan may take the newline into a character
		case j < len(src):
			j++ // a line comment takes its newline, which ends its range
		case !ascii:
			p.fail() // columns after it would count characters, not bytes
		}
	case c == '/' && j < len(src) && src[j] == '*':
		k := j + 1
		for ; k+1 < len(src) && !(src[k] == '*' && src[k+1] == '/'); k++ {
			if src[k] >= 0x80 {
				p.fail()
			}
		}
		if k+1 >= len(src) {
			p.fail() // unterminated
		}
		j = k + 2
	case isIdentStart(c):
		for j < len(src) && isIdentByte(src[j]) {
			j++
		}
		kind = litIdent
	case isDigit(c):
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
			for j += 2; j < len(src) && isDigit(src[j]); j++ {
			}
		}
		// Exponents, "1." and numbers run into letters lex otherwise.
		if j < len(src) && (isIdentByte(src[j]) || src[j] == '.') {
			p.fail()
		}
		kind = litNumber
	case c == '"':
		return p.lexString(i, pos)
	case c == '=':
		if j < len(src) && (src[j] == '=' || src[j] == '>') {
			p.fail() // == and =>
		}
		kind = litEqual
	case c == ':':
		if j < len(src) && src[j] == ':' {
			p.fail()
		}
		kind = litColon
	case punctuation[c] != 0:
		kind = punctuation[c]
	case c < ' ' && c != '\t':
		p.fail()
	}
	end := p.advance(pos, i, j)
	return litToken{kind: kind, rng: p.rangeOf(pos, end), start: i, end: j}, j, end
}

// lexString cuts a quoted string without escapes or template sequences.
func (p *litParser) lexString(i int, pos hcl.Pos) (litToken, int, hcl.Pos) {
	src := p.src
	j := i + 1
	for ; j < len(src) && src[j] != '"'; j++ {
		switch c := src[j]; {
		case c == '\\' || c == '$' || c == '%' || c == '\n' || c < ' ' && c != '\t' || c >= 0x80:
			p.fail()
		}
	}
	if j == len(src) {
		p.fail()
	}
	at := func(k int) hcl.Pos {
		return hcl.Pos{Line: pos.Line, Column: pos.Column + k - i, Byte: pos.Byte + k - i}
	}
	t := litToken{kind: litString, rng: p.rangeOf(pos, at(i+1)), start: i + 1, end: j,
		content: p.rangeOf(at(i+1), at(j)), cquote: p.rangeOf(at(j), at(j+1))}
	return t, j + 1, at(j + 1)
}

func (p *litParser) text(t litToken) string { return string(p.src[t.start:t.end]) }

// body follows ParseBody: items up to end (litEOF or litCBrace).
func (p *litParser) body(end litKind, depth int) *hclsyntax.Body {
	attrs := hclsyntax.Attributes{}
	blocks := hclsyntax.Blocks{}
	startRange := p.prevRange()
	var endRange hcl.Range
	for {
		next := p.peek(true)
		if next.kind == end {
			endRange = next.rng
			p.read(true)
			break
		}
		switch next.kind {
		case litNewline:
			p.read(true)
		case litIdent:
			ident := p.read(true)
			switch p.peek(true).kind {
			case litEqual:
				a := p.attribute(ident, false, depth)
				if _, dup := attrs[a.Name]; dup {
					p.fail() // "Attribute redefined" is hclsyntax's to say
				}
				attrs[a.Name] = a
			case litString, litOBrace, litIdent:
				blocks = append(blocks, p.block(ident, depth))
			default:
				p.fail()
			}
		default:
			p.fail()
		}
	}
	return &hclsyntax.Body{
		Attributes: attrs,
		Blocks:     blocks,
		SrcRange:   hcl.RangeBetween(startRange, endRange),
		EndRange:   hcl.Range{Filename: endRange.Filename, Start: endRange.End, End: endRange.End},
	}
}

// attribute follows finishParsingBodyAttribute; ident is read.
func (p *litParser) attribute(ident litToken, singleLine bool, depth int) *hclsyntax.Attribute {
	eq := p.read(true)
	expr := p.expression(true)
	endRange := p.prevRange()
	if !singleLine {
		switch p.peek(true).kind {
		case litNewline:
			p.read(true)
		case litEOF:
			if depth > 0 {
				p.fail() // an unclosed block
			}
			p.read(true)
		default:
			p.fail()
		}
	}
	return &hclsyntax.Attribute{
		Name:        p.text(ident),
		Expr:        expr,
		SrcRange:    hcl.RangeBetween(ident.rng, endRange),
		NameRange:   ident.rng,
		EqualsRange: eq.rng,
	}
}

// block follows finishParsingBodyBlock; ident is read.
func (p *litParser) block(ident litToken, depth int) *hclsyntax.Block {
	var labels []string
	var labelRanges []hcl.Range
	var oBrace litToken
labels:
	for {
		switch t := p.peek(true); t.kind {
		case litOBrace:
			oBrace = p.read(true)
			break labels
		case litString:
			p.read(true)
			labels = append(labels, p.text(t))
			labelRanges = append(labelRanges, hcl.RangeBetween(t.rng, t.cquote))
		case litIdent:
			p.read(true)
			labels = append(labels, p.text(t))
			labelRanges = append(labelRanges, t.rng)
		default:
			p.fail()
		}
	}
	var body *hclsyntax.Body
	switch p.peek(true).kind {
	case litNewline, litCBrace:
		body = p.body(litCBrace, depth+1)
	case litIdent:
		body = p.singleAttrBody(depth + 1)
		if p.peek(true).kind != litCBrace {
			p.fail()
		}
		p.read(true)
	default:
		p.fail() // EOF: an unclosed block
	}
	cBraceRange := p.prevRange()
	switch p.peek(true).kind {
	case litNewline:
		p.read(true)
	case litEOF:
		if depth > 0 {
			p.fail()
		}
		p.read(true)
	default:
		p.fail()
	}
	return &hclsyntax.Block{
		Type:            p.text(ident),
		Labels:          labels,
		Body:            body,
		TypeRange:       ident.rng,
		LabelRanges:     labelRanges,
		OpenBraceRange:  oBrace.rng,
		CloseBraceRange: cBraceRange,
	}
}

// singleAttrBody follows parseSingleAttrBody: `name { a = v }`.
func (p *litParser) singleAttrBody(depth int) *hclsyntax.Body {
	ident := p.read(true)
	if p.peek(true).kind != litEqual {
		p.fail()
	}
	attr := p.attribute(ident, true, depth)
	return &hclsyntax.Body{
		Attributes: hclsyntax.Attributes{attr.Name: attr},
		SrcRange:   attr.SrcRange,
		EndRange:   hcl.Range{Filename: attr.SrcRange.Filename, Start: attr.SrcRange.End, End: attr.SrcRange.End},
	}
}

// expression follows ParseExpression down to parseExpressionTerm, for the
// literal terms; nl is whether newlines are tokens where it stands. What
// follows it is the caller's to check: an operator, a traversal or a
// conditional there would have made hclsyntax build more than the term.
func (p *litParser) expression(nl bool) hclsyntax.Expression {
	switch t := p.peek(nl); t.kind {
	case litNumber:
		p.read(nl)
		return p.number(t)
	case litIdent:
		p.read(nl)
		switch p.text(t) {
		case "true":
			return &hclsyntax.LiteralValueExpr{Val: cty.True, SrcRange: t.rng}
		case "false":
			return &hclsyntax.LiteralValueExpr{Val: cty.False, SrcRange: t.rng}
		case "null":
			return &hclsyntax.LiteralValueExpr{Val: cty.NullVal(cty.DynamicPseudoType), SrcRange: t.rng}
		}
		p.fail() // a reference or a function call
	case litString:
		p.read(nl)
		return p.template(t)
	case litMinus:
		p.read(nl)
		n := p.peek(nl)
		if n.kind != litNumber {
			p.fail()
		}
		p.read(nl)
		val := p.number(n)
		return &hclsyntax.UnaryOpExpr{Op: hclsyntax.OpNegate, Val: val,
			SrcRange: hcl.RangeBetween(t.rng, val.SrcRange), SymbolRange: t.rng}
	case litOBrack:
		return p.tuple(nl)
	case litOBrace:
		return p.object(nl)
	}
	p.fail()
	return nil
}

// number follows numberLitValue.
func (p *litParser) number(t litToken) *hclsyntax.LiteralValueExpr {
	v, err := cty.ParseNumberVal(p.text(t))
	if err != nil {
		p.fail()
	}
	return &hclsyntax.LiteralValueExpr{Val: v, SrcRange: t.rng}
}

// template follows parseExpressionTerm's quoted template, for one literal
// part; an empty string's part is the zero-width range after its closing
// quote (parseTemplateParts starts from the token after the opening one).
func (p *litParser) template(t litToken) *hclsyntax.TemplateExpr {
	part := t.content
	if t.end == t.start {
		part = hcl.Range{Filename: p.filename, Start: t.cquote.End, End: t.cquote.End}
	}
	return &hclsyntax.TemplateExpr{
		Parts:    []hclsyntax.Expression{&hclsyntax.LiteralValueExpr{Val: cty.StringVal(p.text(t)), SrcRange: part}},
		SrcRange: hcl.RangeBetween(t.rng, t.cquote),
	}
}

// opener reads a tuple's or object's opening bracket, which a for
// expression may follow (hclsyntax looks for "for" past newlines).
func (p *litParser) opener(nl bool) litToken {
	open := p.read(nl)
	if n := p.peek(false); n.kind == litIdent && p.text(n) == "for" {
		p.fail()
	}
	return open
}

// tuple follows parseTupleCons: newlines do not count inside. nl is the
// mode its opening bracket was peeked in.
func (p *litParser) tuple(nl bool) *hclsyntax.TupleConsExpr {
	open := p.opener(nl)
	var exprs []hclsyntax.Expression
	var closer litToken
	for {
		if p.peek(false).kind == litCBrack {
			closer = p.read(false)
			break
		}
		exprs = append(exprs, p.expression(false))
		if t, done := p.after(false, litCBrack); done {
			closer = t
			break
		}
	}
	return &hclsyntax.TupleConsExpr{Exprs: exprs, SrcRange: hcl.RangeBetween(open.rng, closer.rng), OpenRange: open.rng}
}

// after reads what follows an item of a tuple or an object: the closing
// bracket (done), or a comma or — where newlines count — a newline.
func (p *litParser) after(nl bool, closer litKind) (litToken, bool) {
	switch k := p.peek(nl).kind; k {
	case closer:
		return p.read(nl), true
	case litComma, litNewline:
		p.read(nl)
		return litToken{}, false
	}
	p.fail()
	return litToken{}, false
}

// object follows parseObjectCons: newlines count, and separate items as
// commas do. nl is the mode its opening brace was peeked in.
func (p *litParser) object(nl bool) *hclsyntax.ObjectConsExpr {
	open := p.opener(nl)
	var items []hclsyntax.ObjectConsItem
	var closer litToken
	for {
		next := p.peek(true)
		if next.kind == litNewline {
			p.read(true)
			continue
		}
		if next.kind == litCBrace {
			closer = p.read(true)
			break
		}
		var key hclsyntax.Expression
		if next.kind == litIdent {
			switch p.text(next) {
			case "true", "false", "null":
				key = p.expression(true)
			default:
				p.read(true)
				key = &hclsyntax.ScopeTraversalExpr{
					Traversal: hcl.Traversal{hcl.TraverseRoot{Name: p.text(next), SrcRange: next.rng}},
					SrcRange:  next.rng,
				}
			}
		} else {
			key = p.expression(true)
		}
		if k := p.peek(true).kind; k != litEqual && k != litColon {
			p.fail()
		}
		p.read(true)
		items = append(items, hclsyntax.ObjectConsItem{
			KeyExpr:   &hclsyntax.ObjectConsKeyExpr{Wrapped: key},
			ValueExpr: p.expression(true),
		})
		if t, done := p.after(true, litCBrace); done {
			closer = t
			break
		}
	}
	return &hclsyntax.ObjectConsExpr{Items: items, SrcRange: hcl.RangeBetween(open.rng, closer.rng), OpenRange: open.rng}
}
