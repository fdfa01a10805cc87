package config

import (
	"encoding/json"
	"os"
	"path/filepath"
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
