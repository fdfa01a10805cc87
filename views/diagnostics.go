package views

import (
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostic renders one diagnostic as
// `path:line:col: summary — detail`, with "warning: " before the summary of
// a warning.
func FormatDiagnostic(d *hcl.Diagnostic) string {
	prefix := ""
	if d.Subject != nil && d.Subject.Filename != "" {
		prefix = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		if d.Subject.Start.Line == 0 { // about the whole file
			prefix = d.Subject.Filename + ": "
		}
	}
	if d.Severity == hcl.DiagWarning {
		prefix += "warning: "
	}
	if d.Detail == "" {
		return prefix + d.Summary
	}
	return prefix + d.Summary + " — " + d.Detail
}

// Diagnostics writes every diagnostic, one per line, errors and warnings in
// the order found.
func Diagnostics(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		fmt.Fprintln(w, FormatDiagnostic(d))
	}
}
