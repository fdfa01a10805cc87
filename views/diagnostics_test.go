package views

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestDiagnosticFileNamePrintable: a file name holding a terminal escape
// is printed quoted, never raw.
func TestDiagnosticFileNamePrintable(t *testing.T) {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Bad", Subject: &hcl.Range{Filename: "/etc/hostwall/\x1b]0;pwned\a.hcl", Start: hcl.Pos{Line: 1, Column: 1}}}
	got := FormatDiagnostic(d)
	if strings.ContainsAny(got, "\x1b\a") || !strings.Contains(got, `"/etc/hostwall/\x1b]0;pwned\a.hcl":1:1: Bad`) {
		t.Errorf("%q", got)
	}
}
