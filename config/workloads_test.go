package config

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestNormalizePrefixes holds NormalizePrefixes (sorted, each checked
// against the last kept) to its definition: every prefix that no other one
// starts, once, sorted.
func TestNormalizePrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var ps []string
		for range r.IntN(12) {
			b := make([]byte, 1+r.IntN(4))
			for i := range b {
				b[i] = "abc"[r.IntN(3)]
			}
			ps = append(ps, string(b))
		}
		want := []string{}
		for _, p := range ps {
			covered := slices.Contains(want, p)
			for _, q := range ps {
				covered = covered || q != p && strings.HasPrefix(p, q)
			}
			if !covered {
				want = append(want, p)
			}
		}
		sort.Strings(want)
		if got := NormalizePrefixes(ps); !slices.Equal(got, want) {
			t.Fatalf("NormalizePrefixes(%q) = %q, want %q", ps, got, want)
		}
	}
}
