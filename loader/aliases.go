package loader

import (
	"fmt"

	"github.com/goccy/go-yaml/ast"
	"github.com/hashicorp/hcl/v2"
)

// MaxAliasNodes is how many nodes YAML aliases may add to a file, beyond
// those it writes out. An alias stands for its anchor's whole value, and
// the decoder makes that value again at each: 20,000 aliases of a rule
// with 10,000 networks made 200 million of them from 385 KB (14 GB).
// Aliases of a few defaults, as configurations use them, add thousands.
const MaxAliasNodes = 1_000_000

// checkAliases refuses a YAML file whose aliases expand it by more than
// MaxAliasNodes nodes, at the alias that goes past it. The nesting scan
// bounds the recursion; each anchor's size is worked out once.
func checkAliases(file string, docs []ast.Node) *hcl.Diagnostic {
	sizes := map[string]int{}
	added := 0
	var over ast.Node
	var size func(n ast.Node) int
	size = func(n ast.Node) int {
		if n == nil || over != nil {
			return 0
		}
		switch v := n.(type) {
		case *ast.DocumentNode:
			return size(v.Body)
		case *ast.MappingNode:
			total := 1
			for _, kv := range v.Values {
				total += size(kv)
			}
			return total
		case *ast.MappingValueNode:
			return 1 + size(v.Key) + size(v.Value)
		case *ast.MappingKeyNode:
			return 1 + size(v.Value)
		case *ast.SequenceNode:
			total := 1
			for _, item := range v.Values {
				total += size(item)
			}
			return total
		case *ast.TagNode:
			return 1 + size(v.Value)
		case *ast.AnchorNode:
			s := size(v.Value)
			sizes[v.Name.String()] = s
			return 1 + s
		case *ast.AliasNode:
			s := sizes[v.Value.String()]
			if added += s; added > MaxAliasNodes && over == nil {
				over = v
			}
			return 1 + s
		}
		return 1
	}
	for _, d := range docs {
		size(d)
		if over != nil {
			rng := nodeRange(file, over)
			return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Aliases expand too far",
				Detail:  fmt.Sprintf("The aliases up to this one stand for more than %d values in all, beyond what the file writes out; write the values out (or use a nets_file for long lists of networks), or use fewer aliases.", MaxAliasNodes),
				Subject: &rng}
		}
	}
	return nil
}
