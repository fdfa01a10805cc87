package views

import (
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostic renders one diagnostic as
// `path:line:col: summary — detail`, with "warning: " before the summary of
// a warning.
func FormatDiagnostic(d *hcl.Diagnostic) string {
	prefix := ""
	if d.Subject != nil && d.Subject.Filename != "" {
		name := Printable(d.Subject.Filename)
		prefix = fmt.Sprintf("%s:%d:%d: ", name, d.Subject.Start.Line, d.Subject.Start.Column)
		if d.Subject.Start.Line == 0 { // about the whole file
			prefix = name + ": "
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

// Printable is a file name as it can be printed to a terminal: quoted, Go
// style, when it holds control characters (an escape sequence in a file
// name would otherwise act on the operator's terminal) or is not UTF-8.
func Printable(name string) string {
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return strconv.Quote(name)
		}
	}
	return name
}
