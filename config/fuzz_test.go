package config

import "testing"

// FuzzParseSelector checks that no selector text makes the parser panic, and
// that every selector it accepts re-parses from its canonical form to the
// same canonical form.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "all()", "a == 'b' && !has(c)", `a in {"x", "y"} || b not in {}`, "a starts with 'x'", "global()", "!(a != 'b')"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel, s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("canonical form is not stable: %q → %q", sel, again)
		}
	})
}
