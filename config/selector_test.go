package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorsDir is the shared corpus beside the repository.
var vectorsDir = filepath.Join("..", "..", "shared", "corpus", "calico-vectors")

type selectorCase struct {
	Selector  string            `json:"selector"`
	Labels    map[string]string `json:"labels"`
	Match     *bool             `json:"match"`
	Valid     *bool             `json:"valid"`
	Canonical *string           `json:"canonical"`
	Source    string            `json:"source"`
}

// TestCalicoSelectorVectors runs every selector case extracted from Calico's
// own parser tests: evaluation, rejection and canonical form.
func TestCalicoSelectorVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(vectorsDir, "calico-selectors.json"))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var file struct{ Cases []selectorCase }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) != 239 {
		t.Fatalf("got %d selector cases, want 239", len(file.Cases))
	}
	for i, c := range file.Cases {
		sel, err := ParseSelector(c.Selector)
		switch {
		case c.Valid != nil && !*c.Valid:
			if err == nil {
				t.Errorf("case %d: ParseSelector(%q) succeeded (%q), want an error", i, c.Selector, sel)
			}
			continue
		case err != nil:
			t.Errorf("case %d: ParseSelector(%q): %v", i, c.Selector, err)
			continue
		}
		if c.Canonical != nil {
			if got := sel.String(); got != *c.Canonical {
				t.Errorf("case %d: ParseSelector(%q).String() = %q, want %q", i, c.Selector, got, *c.Canonical)
			}
			again, err := ParseSelector(sel.String())
			if err != nil || again.String() != sel.String() {
				t.Errorf("case %d: canonical form %q does not re-parse to itself", i, sel)
			}
		}
		if c.Match != nil {
			if got := sel.Matches(c.Labels); got != *c.Match {
				t.Errorf("case %d: %q on %v = %v, want %v", i, c.Selector, c.Labels, got, *c.Match)
			}
		}
	}
}

// TestSelectorLimits: selectors past the length and nesting limits fail
// with an error; at the limit they parse.
func TestSelectorLimits(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + "a == 'b'" + strings.Repeat(")", n) }
	if _, err := ParseSelector(deep(MaxSelectorDepth)); err != nil {
		t.Errorf("nesting %d: %v", MaxSelectorDepth, err)
	}
	if _, err := ParseSelector(deep(MaxSelectorDepth + 1)); err == nil || !strings.Contains(err.Error(), "nests deeper than 100 levels") {
		t.Errorf("nesting %d: %v, want the nesting limit", MaxSelectorDepth+1, err)
	}
	if _, err := ParseSelector(strings.Repeat("!", MaxSelectorDepth+1) + "has(a)"); err == nil {
		t.Error("101 negations parsed")
	}
	long := "a in {" + strings.Repeat("'x', ", MaxSelectorLength/5) + "'y'}"
	if _, err := ParseSelector(long); err == nil || !strings.Contains(err.Error(), "above the limit") {
		t.Errorf("a %d-byte selector: %v, want the length limit", len(long), err)
	}
}
