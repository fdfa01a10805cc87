package loader

import (
	"fmt"
	"github.com/hostwall/hostwall/internal/suggest"
	"math/big"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Native YAML has the HCL schema: a labelled block is a mapping keyed by its
// label (`policy: {web: {...}}`), repeated blocks are a sequence of mappings
// (`ingress: [{...}, {...}]`), attributes are keys. yamlBody implements
// hcl.Body over the YAML syntax tree — as HCL's own JSON syntax does — so
// one decoder, with the same diagnostics, serves both syntaxes, and every
// position is the YAML file's own line and column.

// parseYAML parses a file into its documents.
func parseYAML(src Source) ([]ast.Node, hcl.Diagnostics) {
	f, err := parser.ParseBytes(src.Data, 0)
	if err != nil {
		rng := hcl.Range{Filename: src.Path, Start: hcl.InitialPos, End: hcl.InitialPos}
		msg := err.Error()
		if e, ok := err.(interface {
			GetToken() *token.Token
			GetMessage() string
		}); ok {
			msg = e.GetMessage()
			if tok := e.GetToken(); tok != nil && tok.Position != nil {
				rng = tokenRange(src.Path, tok)
			}
		}
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid YAML", Detail: msg + ".", Subject: &rng}}
	}
	var docs []ast.Node
	for _, d := range f.Docs {
		if d.Body != nil {
			docs = append(docs, d.Body)
		}
	}
	return docs, nil
}

func tokenRange(file string, tok *token.Token) hcl.Range {
	p := tok.Position
	start := hcl.Pos{Line: p.Line, Column: p.Column, Byte: p.Offset}
	end := start
	end.Column += len(tok.Value)
	end.Byte += len(tok.Value)
	return hcl.Range{Filename: file, Start: start, End: end}
}

// nodeRange is the range of a node's first token.
func nodeRange(file string, n ast.Node) hcl.Range {
	tok := n.GetToken()
	if tok == nil || tok.Position == nil {
		return hcl.Range{Filename: file, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	return tokenRange(file, tok)
}

// unwrap follows anchors, tags and aliases to the node that holds the value.
func unwrap(n ast.Node, anchors map[string]ast.Node) ast.Node {
	for i := 0; i < 100 && n != nil; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			anchors[v.Name.String()] = v.Value
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := anchors[v.Value.String()]
			if !ok {
				return v
			}
			n = target
		default:
			return n
		}
	}
	return n
}

type yamlBody struct {
	file    string
	node    ast.Node // a mapping, or nil for an empty body
	at      hcl.Range
	anchors map[string]ast.Node
	// fold matches keys to the schema's names in any case, an exact
	// match first: calicoctl reads a resource as encoding/json does, so
	// "Metadata" and "Order" are "metadata" and "order" there.
	fold bool
}

// entries returns the key/value pairs of the body's mapping.
func (b *yamlBody) entries() ([]*ast.MappingValueNode, hcl.Diagnostics) {
	n := unwrap(b.node, b.anchors)
	switch m := n.(type) {
	case nil, *ast.NullNode:
		return nil, nil
	case *ast.MappingNode:
		return m.Values, nil
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, nil
	}
	return nil, hcl.Diagnostics{errAt(nodeRange(b.file, n), "Expected a mapping", "This must be a mapping of names to values (key: value lines).")}
}

// keyOf is a mapping key's text, without the quotes of a quoted key.
func keyOf(kv *ast.MappingValueNode) string {
	if s, ok := kv.Key.(*ast.StringNode); ok {
		return s.Value
	}
	return strings.TrimSpace(kv.Key.String())
}

func (b *yamlBody) Content(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	content, rest, diags := b.PartialContent(schema)
	for _, kv := range rest.(*yamlBody).remaining(schema) {
		name := keyOf(kv)
		var names []string
		for _, a := range schema.Attributes {
			names = append(names, a.Name)
		}
		for _, bl := range schema.Blocks {
			names = append(names, bl.Type)
		}
		sort.Strings(names)
		hint := ""
		if s := suggest.Name(name, names); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, errAt(nodeRange(b.file, kv.Key), "Unsupported key",
			"The key %q is not expected here; this mapping takes %s.%s", name, strings.Join(names, ", "), hint))
	}
	return content, diags
}

// remaining returns the entries the schema does not name.
func (b *yamlBody) remaining(schema *hcl.BodySchema) []*ast.MappingValueNode {
	entries, _ := b.entries()
	var out []*ast.MappingValueNode
	for _, kv := range entries {
		if !inSchema(schema, keyOf(kv), b.fold) {
			out = append(out, kv)
		}
	}
	return out
}

func inSchema(schema *hcl.BodySchema, name string, fold bool) bool {
	return schemaName(schema, name, fold) != ""
}

// schemaName is the name in schema that key name stands for: the same
// name, or with fold one that differs in case only; "" when none.
func schemaName(schema *hcl.BodySchema, name string, fold bool) string {
	var names []string
	for _, a := range schema.Attributes {
		names = append(names, a.Name)
	}
	for _, bl := range schema.Blocks {
		names = append(names, bl.Type)
	}
	if slices.Contains(names, name) {
		return name
	}
	if fold {
		for _, n := range names {
			if strings.EqualFold(n, name) {
				return n
			}
		}
	}
	return ""
}

func (b *yamlBody) PartialContent(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	content := &hcl.BodyContent{Attributes: hcl.Attributes{}, MissingItemRange: b.at}
	entries, diags := b.entries()
	seen := map[string]bool{}
	for _, kv := range entries {
		name := keyOf(kv)
		keyRange := nodeRange(b.file, kv.Key)
		if n := schemaName(schema, name, b.fold); n != "" && n != name {
			name = n // "Spec" for "spec", as calicoctl reads it
		}
		if seen[name] {
			diags = append(diags, errAt(keyRange, "Duplicate key", "%q appears twice in this mapping (in any case, as calicoctl reads it); keep one.", name))
			continue
		}
		seen[name] = true
		for _, a := range schema.Attributes {
			if a.Name == name {
				content.Attributes[name] = &hcl.Attribute{
					Name: name, NameRange: keyRange,
					Expr:  &yamlExpr{file: b.file, node: kv.Value, anchors: b.anchors},
					Range: hcl.RangeBetween(keyRange, nodeRange(b.file, kv.Value)),
				}
			}
		}
		for _, bs := range schema.Blocks {
			if bs.Type == name {
				blocks, d := b.blocks(bs, kv)
				diags = append(diags, d...)
				content.Blocks = append(content.Blocks, blocks...)
			}
		}
	}
	for _, a := range schema.Attributes {
		if a.Required && content.Attributes[a.Name] == nil {
			diags = append(diags, errAt(b.at, "Missing required key", "The key %q is required in this mapping, and it has none.", a.Name))
		}
	}
	return content, &yamlBody{file: b.file, node: b.node, at: b.at, anchors: b.anchors, fold: b.fold}, diags
}

// blocks turns one key into blocks: for a labelled type, a mapping keyed by
// label; otherwise a mapping (one block) or a sequence of mappings.
func (b *yamlBody) blocks(bs hcl.BlockHeaderSchema, kv *ast.MappingValueNode) (hcl.Blocks, hcl.Diagnostics) {
	typeRange := nodeRange(b.file, kv.Key)
	val := unwrap(kv.Value, b.anchors)
	if len(bs.LabelNames) == 0 {
		if seq, ok := val.(*ast.SequenceNode); ok {
			var out hcl.Blocks
			for _, item := range seq.Values {
				at := nodeRange(b.file, item)
				out = append(out, &hcl.Block{Type: bs.Type, TypeRange: typeRange, DefRange: at,
					Body: &yamlBody{file: b.file, node: item, at: at, anchors: b.anchors, fold: b.fold}})
			}
			return out, nil
		}
		return hcl.Blocks{{Type: bs.Type, TypeRange: typeRange, DefRange: typeRange,
			Body: &yamlBody{file: b.file, node: kv.Value, at: typeRange, anchors: b.anchors, fold: b.fold}}}, nil
	}
	outer := &yamlBody{file: b.file, node: kv.Value, at: typeRange, anchors: b.anchors, fold: b.fold}
	entries, diags := outer.entries()
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{errAt(nodeRange(b.file, val), "Expected a mapping of names",
			"%s must map each %s's %s to its settings, such as %s: {web: {...}}.", bs.Type, strings.ReplaceAll(bs.Type, "_", " "), bs.LabelNames[0], bs.Type)}
	}
	var out hcl.Blocks
	for _, e := range entries {
		labelRange := nodeRange(b.file, e.Key)
		out = append(out, &hcl.Block{Type: bs.Type, Labels: []string{keyOf(e)}, TypeRange: typeRange, LabelRanges: []hcl.Range{labelRange},
			DefRange: labelRange, Body: &yamlBody{file: b.file, node: e.Value, at: labelRange, anchors: b.anchors, fold: b.fold}})
	}
	return out, nil
}

func (b *yamlBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	return nil, hcl.Diagnostics{errAt(b.at, "Unexpected attributes", "hostwall decodes YAML with a schema.")}
}

func (b *yamlBody) MissingItemRange() hcl.Range { return b.at }

// yamlExpr is a YAML value seen as an HCL expression with no variables.
type yamlExpr struct {
	file    string
	node    ast.Node
	anchors map[string]ast.Node
}

// entry is the value of key in the mapping e holds, nil when there is none.
func (e *yamlExpr) entry(key string) ast.Node {
	entries, _ := (&yamlBody{file: e.file, node: e.node, anchors: e.anchors}).entries()
	for _, kv := range entries {
		if keyOf(kv) == key {
			return kv.Value
		}
	}
	return nil
}

func (e *yamlExpr) Value(*hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return e.value(e.node, 0)
}

func (e *yamlExpr) value(n ast.Node, depth int) (cty.Value, hcl.Diagnostics) {
	n = unwrap(n, e.anchors)
	if depth > 64 {
		return cty.NilVal, hcl.Diagnostics{errAt(nodeRange(e.file, n), "Value nested too deeply", "YAML values nest at most 64 levels here.")}
	}
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return cty.NullVal(cty.DynamicPseudoType), nil
	case *ast.StringNode:
		return cty.StringVal(v.Value), nil
	case *ast.LiteralNode:
		return cty.StringVal(v.Value.Value), nil
	case *ast.BoolNode:
		return cty.BoolVal(v.Value), nil
	case *ast.IntegerNode:
		f, _ := new(big.Float).SetString(fmt.Sprint(v.Value))
		if f == nil {
			return cty.NilVal, hcl.Diagnostics{errAt(nodeRange(e.file, n), "Invalid number", "%s is not a number.", v.Token.Value)}
		}
		return cty.NumberVal(f), nil
	case *ast.FloatNode:
		return cty.NumberFloatVal(v.Value), nil
	case *ast.SequenceNode:
		if len(v.Values) == 0 {
			return cty.EmptyTupleVal, nil
		}
		vals := make([]cty.Value, len(v.Values))
		for i, item := range v.Values {
			val, diags := e.value(item, depth+1)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			vals[i] = val
		}
		return cty.TupleVal(vals), nil
	case *ast.MappingNode, *ast.MappingValueNode:
		body := &yamlBody{file: e.file, node: v, anchors: e.anchors}
		entries, diags := body.entries()
		if diags.HasErrors() {
			return cty.NilVal, diags
		}
		attrs := map[string]cty.Value{}
		for _, kv := range entries {
			val, diags := e.value(kv.Value, depth+1)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			attrs[keyOf(kv)] = val
		}
		return cty.ObjectVal(attrs), nil
	}
	return cty.NilVal, hcl.Diagnostics{errAt(nodeRange(e.file, n), "Unsupported YAML value", "This kind of YAML value (%s) is not accepted here.", n.Type())}
}

func (e *yamlExpr) Variables() []hcl.Traversal { return nil }
func (e *yamlExpr) Range() hcl.Range           { return nodeRange(e.file, unwrap(e.node, e.anchors)) }
func (e *yamlExpr) StartRange() hcl.Range      { return e.Range() }

// ElementRanges gives each element of a sequence its own range, so a bad
// CIDR in a list is reported on its own line.
func (e *yamlExpr) ElementRanges() []hcl.Range {
	seq, ok := unwrap(e.node, e.anchors).(*ast.SequenceNode)
	if !ok {
		return nil
	}
	out := make([]hcl.Range, len(seq.Values))
	for i, item := range seq.Values {
		out[i] = nodeRange(e.file, unwrap(item, e.anchors))
	}
	return out
}
