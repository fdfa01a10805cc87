package loader

import (
	"strings"
	"testing"
)

// nested is open, n times, then inner, then close n times.
func nested(n int, open, inner, close string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// TestNesting: each way of nesting HCL and YAML is counted, up to the
// limit and one past it, and what only looks like nesting (in strings,
// comments, heredocs, block scalars) is not.
func TestNesting(t *testing.T) {
	const n = MaxNesting
	hcl := func(depth int) map[string]string {
		return map[string]string{
			"lists":             "x = " + nested(depth, "[", "1", "]") + "\n",
			"objects":           "x = " + nested(depth-1, "{a=", "1", "}") + "\n",
			"blocks":            nested(depth, "b {\n", "", "}\n"),
			"parens":            "x = " + nested(depth, "(", "1", ")") + "\n",
			"templates":         "x = " + nested(depth/2, `"${`, `1`, `}"`) + "\n",
			"heredoc templates": "x = " + strings.Repeat("<<EOT\n${", depth/2) + "1" + strings.Repeat("}\nEOT\n", depth/2),
		}
	}
	yaml := func(depth int) map[string]string {
		var ind strings.Builder
		for i := range depth {
			ind.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		return map[string]string{
			"flow":        "a: " + nested(depth-1, "[", "1", "]") + "\n",
			"indentation": ind.String(),
			// A sequence entry counts as a level of its own (yamlTooDeep).
			"compact": strings.Repeat("- ", depth-1) + "x\n",
			"mixed":   "a:\n  - " + nested(depth-3, "{b: ", "1", "}") + "\n",
		}
	}
	for name, src := range hcl(n) {
		if at := hclTooDeep([]byte(src), n); at >= 0 {
			t.Errorf("HCL %s %d deep refused at %d", name, n, at)
		}
	}
	for name, src := range hcl(n + 2) {
		if at := hclTooDeep([]byte(src), n); at < 0 {
			t.Errorf("HCL %s %d deep not refused", name, n+2)
		}
	}
	for name, src := range yaml(n) {
		if at := yamlTooDeep([]byte(src), n); at >= 0 {
			t.Errorf("YAML %s %d deep refused at %d", name, n, at)
		}
	}
	for name, src := range yaml(n + 1) {
		if at := yamlTooDeep([]byte(src), n); at < 0 {
			t.Errorf("YAML %s %d deep not refused", name, n+1)
		}
	}
	deep := strings.Repeat("[", 3*n)
	for name, src := range map[string]string{
		"string":           "x = \"" + deep + "\"\n",
		"escaped template": "x = \"" + strings.Repeat("$${", 3*n) + "\"\n",
		"comment":          "# " + deep + "\n// " + deep + "\n/* " + deep + " */\nx = 1\n",
		"heredoc":          "x = <<-EOT\n  " + deep + "\n  EOT\ny = 1\n",
	} {
		if at := hclTooDeep([]byte(src), n); at >= 0 {
			t.Errorf("HCL %s: refused at %d", name, at)
		}
	}
	for name, src := range map[string]string{
		"after an unclosed /*": "x = 1 /*\ny = " + deep + "\n",
	} {
		if at := hclTooDeep([]byte(src), n); at < 0 {
			t.Errorf("HCL %s: not refused", name)
		}
	}
	for name, src := range map[string]string{
		"after a quote in a plain scalar":  "a: b 'c\nx: " + deep + "\n",
		"after a double quote in one":      "a: b \"c\nx: " + deep + "\n",
		"after a quote that ends a scalar": "a: b-'c\nx: " + deep + "\n",
	} {
		if at := yamlTooDeep([]byte(src), n); at < 0 {
			t.Errorf("YAML %s: not refused", name)
		}
	}
	if at := yamlTooDeep([]byte(strings.Repeat("- ", 100)+"x\n"), n); at != 2*(n-1) {
		t.Errorf("a chain of 100 entries refused at %d; want %d, where the level too deep opens", at, 2*(n-1))
	}
	for name, src := range map[string]string{
		"it's in a plain scalar": "a: it's fine\nb: [x]\n",
		"double-quoted":          "a: \"" + deep + "\"\n",
		"single-quoted":          "a: '" + deep + " it''s'\n",
		"multi-line":             "a: \"x\n  " + deep + "\n  y\"\nb: 1\n",
		"comment":                "# " + deep + "\na: 1 # " + deep + "\n",
		"block scalar":           "a: |-\n  " + deep + "\n  " + deep + "\nb: 1\n",
		"documents":              strings.Repeat("---\n"+yaml(n - 1)["indentation"], 3),
	} {
		if at := yamlTooDeep([]byte(src), n); at >= 0 {
			t.Errorf("YAML %s: refused at %d", name, at)
		}
	}
}

// TestNestingRefusedWhere: the refusal names the file, line and column
// where the nesting goes too deep, and nothing of the file is parsed.
func TestNestingRefusedWhere(t *testing.T) {
	src := "policy \"p\" {\n  ingress { action = \"allow\" }\n}\nx = " + nested(100, "[", "1", "]") + "\n"
	_, diags := Load([]Source{{Path: "deep.hcl", Data: []byte(src)}})
	if len(diags) != 1 || diags[0].Summary != "Nested too deep" || diags[0].Subject.Start.Line != 4 || diags[0].Subject.Start.Column != 5+MaxNesting {
		t.Errorf("diagnostics %v; want one, Nested too deep at line 4 column %d", diags, 5+MaxNesting)
	}
}
