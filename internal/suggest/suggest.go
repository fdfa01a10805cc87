// Package suggest finds the name someone probably meant: "did you mean".
package suggest

import "strings"

// Name returns the candidate closest to given — within an edit distance of
// a third of its length, at least one, and never given itself — or "".
func Name(given string, candidates []string) string {
	best, bestDist := "", len(given)/3+1
	if bestDist < 2 {
		bestDist = 2
	}
	for _, c := range candidates {
		if c == given {
			continue
		}
		if strings.EqualFold(c, given) {
			return c // only the case differs: "tcp" for "TCP"
		}
		if d := distance(given, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b, in
// bytes: insertions, deletions, substitutions and swaps of neighbours
// ("tpc" is one from "tcp") each count one.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
