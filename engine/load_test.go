package engine

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// The last line of an invalid configuration's error names its directory as
// diagnostics name files: quoted when it holds control characters, which
// would otherwise split the line or act on the operator's terminal.
func TestInvalidErrorDirPrintable(t *testing.T) {
	err := &InvalidError{Dir: "/tmp/we ird\n dir\x1b[31mRED", Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Bad"}}}
	if got := err.Error(); strings.ContainsAny(got, "\n\x1b") || !strings.Contains(got, `"/tmp/we ird\n dir\x1b[31mRED"`) {
		t.Errorf("%q", got)
	}
}
