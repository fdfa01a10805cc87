package loader

import (
	"net/netip"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
)

// ignoreRanges compares configurations by content: source ranges are
// ignored, the rest as byValue.
func ignoreRanges() cmp.Option {
	return cmp.Options{cmp.Comparer(func(a, b hcl.Range) bool { return true }), byValue()}
}

// byValue compares selectors by canonical text and addresses by value
// (their types hold unexported fields).
func byValue() cmp.Option {
	return cmp.Options{
		cmp.Comparer(func(a, b *config.Selector) bool {
			if a == nil || b == nil {
				return a == b
			}
			return a.String() == b.String()
		}),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	}
}
