package loader

import (
	"math/big"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestNumberText(t *testing.T) {
	huge, _ := new(big.Float).SetString("1e20")
	for _, c := range []struct {
		v    cty.Value
		want string
	}{
		{cty.NumberIntVal(443), "443"},
		{cty.NumberIntVal(0), "0"},
		{cty.NumberIntVal(-1), "-1"},
		{cty.NumberFloatVal(1.5), "1.5"},
		{cty.NumberVal(huge), "100000000000000000000"},
	} {
		if got := numberText(c.v); got != c.want {
			t.Errorf("numberText(%#v) = %q, want %q", c.v, got, c.want)
		}
	}
}
