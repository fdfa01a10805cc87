package loader

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
)

// Nesting. Both parsers recurse once per level of nesting and hold every
// level at once: a 600 KB file nested 300,000 deep overflows the stack of
// hclsyntax (a crash no recover stops), and a 60 KB YAML file 30,000 deep
// costs goccy/go-yaml 1.4 GB. So the bytes are scanned first, in one pass
// that keeps nothing but a stack bounded by the limit, and a file nested
// deeper than MaxNesting is refused where it goes too deep, before any
// parser sees it. A configuration needs about six levels (a policy, its
// ingress, its source, a list); 32 leaves room for any reasonable layout.

// MaxNesting is how deep brackets, blocks, templates or YAML collections
// may nest in a policy file.
const MaxNesting = 32

// checkNesting refuses a policy file nested deeper than MaxNesting.
func checkNesting(src Source) *hcl.Diagnostic {
	var at int
	if filepath.Ext(src.Path) == ".hcl" {
		at = hclTooDeep(src.Data, MaxNesting)
	} else {
		at = yamlTooDeep(src.Data, MaxNesting)
	}
	if at < 0 {
		return nil
	}
	pos := posAt(src.Data, at)
	what := "brackets, blocks or templates"
	if filepath.Ext(src.Path) != ".hcl" {
		what = "mappings, sequences or flow collections"
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Nested too deep",
		Detail: fmt.Sprintf("The file nests %s more than %d levels deep here; a configuration needs about six. Nothing of this file was parsed: flatten it.",
			what, MaxNesting),
		Subject: &hcl.Range{Filename: src.Path, Start: pos, End: pos},
	}
}

// posAt is the line and column (in bytes, from 1) of offset at.
func posAt(data []byte, at int) hcl.Pos {
	line := 1 + bytes.Count(data[:at], []byte{'\n'})
	col := at - bytes.LastIndexByte(data[:at], '\n')
	return hcl.Pos{Line: line, Column: col, Byte: at}
}

// hclTooDeep returns the offset at which src, read as HCL's native
// syntax, first nests deeper than max — counting brackets, braces and
// parentheses, quoted strings and heredocs, and the templates (${ %{) in
// them — or -1. Comments are skipped; a closer that matches nothing open
// is left to the parser to report.
func hclTooDeep(src []byte, max int) int {
	const (
		str     = '"' // a quoted string
		heredoc = '<' // a heredoc; markers holds its end marker
		tmpl    = '$' // a template sequence, closed by }
	)
	var stack []byte
	var markers [][]byte
	top := func() byte {
		if len(stack) == 0 {
			return 0
		}
		return stack[len(stack)-1]
	}
	push := func(c byte) bool {
		stack = append(stack, c)
		return len(stack) > max
	}
	lineStart := true
	for i := 0; i < len(src); i++ {
		c := src[i]
		atLineStart := lineStart
		lineStart = c == '\n'
		switch top() {
		case str:
			switch {
			case c == '\\':
				i++
			case c == '"' || c == '\n':
				stack = stack[:len(stack)-1] // a string ends at its line's end too
			case (c == '$' || c == '%') && bytes.HasPrefix(src[i+1:], []byte{c, '{'}):
				i += 2 // $${ and %%{ are escapes
			case (c == '$' || c == '%') && i+1 < len(src) && src[i+1] == '{':
				i++
				if push(tmpl) {
					return i
				}
			}
			continue
		case heredoc:
			if atLineStart {
				end := bytes.IndexByte(src[i:], '\n')
				if end < 0 {
					end = len(src) - i
				}
				if bytes.Equal(bytes.TrimSpace(src[i:i+end]), markers[len(markers)-1]) {
					stack, markers = stack[:len(stack)-1], markers[:len(markers)-1]
					i += end - 1
					continue
				}
			}
			switch {
			case (c == '$' || c == '%') && bytes.HasPrefix(src[i+1:], []byte{c, '{'}):
				i += 2
			case (c == '$' || c == '%') && i+1 < len(src) && src[i+1] == '{':
				i++
				if push(tmpl) {
					return i
				}
			}
			continue
		}
		// An expression, a body or a template sequence.
		switch c {
		case '#':
			i = skipLine(src, i)
			lineStart = true
		case '/':
			if i+1 < len(src) && src[i+1] == '/' {
				i = skipLine(src, i)
				lineStart = true
			} else if i+1 < len(src) && src[i+1] == '*' {
				// An unclosed /* is no comment to hclsyntax: it reads on,
				// and so does the scan.
				if end := bytes.Index(src[i+2:], []byte("*/")); end >= 0 {
					i += end + 3
				}
			}
		case '"':
			if push(str) {
				return i
			}
		case '<':
			if m, n := heredocMarker(src[i:]); m != nil {
				markers = append(markers, m)
				if push(heredoc) {
					return i
				}
				i += n - 1
				lineStart = true
			}
		case '{', '[', '(':
			if push(c) {
				return i
			}
		case '}':
			if t := top(); t == '{' || t == tmpl {
				stack = stack[:len(stack)-1]
			}
		case ']':
			if top() == '[' {
				stack = stack[:len(stack)-1]
			}
		case ')':
			if top() == '(' {
				stack = stack[:len(stack)-1]
			}
		}
	}
	return -1
}

// skipLine returns the offset of the newline ending the line at i (or the
// end of src).
func skipLine(src []byte, i int) int {
	if nl := bytes.IndexByte(src[i:], '\n'); nl >= 0 {
		return i + nl
	}
	return len(src)
}

// heredocMarker reads a heredoc's opening (<<ID or <<-ID, then a newline)
// at the start of b: its marker, and the length of the opening with the
// newline; nil when b does not open one.
func heredocMarker(b []byte) ([]byte, int) {
	n := 2
	if !bytes.HasPrefix(b, []byte("<<")) {
		return nil, 0
	}
	if n < len(b) && b[n] == '-' {
		n++
	}
	start := n
	for n < len(b) && (b[n] == '_' || b[n] == '-' || b[n] >= 'a' && b[n] <= 'z' || b[n] >= 'A' && b[n] <= 'Z' || b[n] >= '0' && b[n] <= '9') {
		n++
	}
	if n == start {
		return nil, 0
	}
	marker := b[start:n]
	if n < len(b) && b[n] == '\r' {
		n++
	}
	if n >= len(b) || b[n] != '\n' {
		return nil, 0
	}
	return marker, n + 1
}

// yamlTooDeep returns the offset at which src, read as YAML, first nests
// deeper than max, or -1. A level is an indentation deeper than the one
// it is in, a sequence entry ("- ", "? " or ": " with more on its line),
// or a flow collection ({ [). Quoted scalars (across lines too), comments
// and block scalars (| >) are skipped; a closer that matches nothing open
// is left to the parser.
func yamlTooDeep(src []byte, max int) int {
	var indents []int // the indentation of each open block level
	flow := 0         // open flow collections
	var quote byte    // the quote of a scalar spanning lines, or 0
	block := -1       // the indentation a block scalar's lines go deeper than, or -1
	for i := 0; i < len(src); {
		end := skipLine(src, i)
		line := src[i:end]
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		rest := bytes.TrimRight(line[indent:], " \t\r")
		switch {
		case block >= 0 && (len(rest) == 0 || indent > block):
			i = end + 1
			continue // the content of a block scalar
		case quote == 0 && flow == 0 && (bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("..."))):
			indents, block = indents[:0], -1
			i = end + 1
			continue
		case quote == 0 && flow == 0 && (len(rest) == 0 || rest[0] == '#'):
			i = end + 1
			continue
		}
		block = -1
		depth := 0
		j := indent
		if quote == 0 && flow == 0 {
			for len(indents) > 0 && indents[len(indents)-1] >= indent {
				indents = indents[:len(indents)-1]
			}
			indents = append(indents, indent)
			depth = len(indents)
			// Compact nested entries: "- - - x", "? - x", "- a: - x"
			// (the last is invalid, but costs the parser all the same).
			for j < len(line) && (line[j] == '-' || line[j] == '?' || line[j] == ':') && (j+1 == len(line) || line[j+1] == ' ') {
				if depth++; depth > max {
					return i + j // where the level too deep opens
				}
				for j++; j < len(line) && line[j] == ' '; j++ {
				}
			}
		}
		if depth+flow > max {
			return i + j
		}
		for ; j < len(line); j++ {
			c := line[j]
			if quote != 0 {
				switch {
				case quote == '"' && c == '\\':
					j++
				case c == quote && quote == '\'' && j+1 < len(line) && line[j+1] == '\'':
					j++ // '' in a single-quoted scalar
				case c == quote:
					quote = 0
				}
				continue
			}
			switch c {
			case '"', '\'':
				if scalarStart(line, j) {
					quote = c
				}
			case '#':
				if j == 0 || line[j-1] == ' ' || line[j-1] == '\t' {
					j = len(line)
				}
			case '{', '[':
				flow++
				if depth+flow > max {
					return i + j
				}
			case '}', ']':
				if flow > 0 {
					flow--
				}
			case '|', '>':
				if flow == 0 && (j == 0 || line[j-1] == ' ') && blockIndicator(line[j+1:]) {
					block = indent
					j = len(line)
				}
			}
		}
		i = end + 1
	}
	return -1
}

// blockIndicator reports whether what follows a | or > makes it a block
// scalar's indicator: chomping and indentation indicators, then nothing
// but a comment.
func blockIndicator(b []byte) bool {
	k := 0
	for k < len(b) && (b[k] == '-' || b[k] == '+' || b[k] >= '1' && b[k] <= '9') {
		k++
	}
	rest := bytes.TrimLeft(b[k:], " \t")
	return len(bytes.TrimRight(rest, " \t\r")) == 0 || rest[0] == '#'
}

// scalarStart reports whether a scalar may start at line[j]: a quote
// there opens a quoted scalar, and anywhere else it is text of a plain
// one ("a: b 'c"). A scalar starts the line's content, or follows "[",
// "{", "," or an indicator ("- ", "? ", ": ").
func scalarStart(line []byte, j int) bool {
	k := j - 1
	for k >= 0 && (line[k] == ' ' || line[k] == '\t') {
		k--
	}
	if k < 0 {
		return true
	}
	switch line[k] {
	case '[', '{', ',':
		return true
	case ':', '-', '?':
		return k+1 < j // followed by a space: an indicator
	}
	return false
}
