package loader

import (
	"fmt"
	"strings"
	"testing"
)

// TestAliasExpansion: aliases that would make the decoder build a million
// values more than the file writes are refused where they go past it —
// many aliases of a large value, or aliases of aliases ("billion laughs")
// — and the usual few aliases of defaults load.
func TestAliasExpansion(t *testing.T) {
	var many strings.Builder
	many.WriteString("policy:\n  p:\n    ingress:\n      - &r {action: allow, source: {nets: [")
	for i := range 1000 {
		if i > 0 {
			many.WriteString(", ")
		}
		fmt.Fprintf(&many, "\"10.%d.%d.0/24\"", i/256, i%256)
	}
	many.WriteString("]}}\n")
	for range 2000 {
		many.WriteString("      - *r\n")
	}
	var laughs strings.Builder
	laughs.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&laughs, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for name, src := range map[string]string{"many aliases of a large value": many.String(), "billion laughs": laughs.String()} {
		_, diags := Load([]Source{{Path: "a.yaml", Data: []byte(src)}})
		if len(diags) != 1 || diags[0].Summary != "Aliases expand too far" {
			t.Errorf("%s: %v", name, diags)
		}
	}
	defaults := `policy:
  a:
    ingress:
      - &web {action: allow, protocol: tcp, destination: {ports: [80, 443]}}
  b:
    ingress:
      - *web
  c:
    ingress:
      - *web
`
	if res, diags := Load([]Source{{Path: "d.yaml", Data: []byte(defaults)}}); diags.HasErrors() || len(res.Config.Policies) != 3 {
		t.Errorf("aliases of defaults: %v", diags)
	}
}
