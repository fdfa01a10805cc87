package loader

import (
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/hostwall/hostwall/config"
)

// Result is a loaded configuration with the files it came from.
type Result struct {
	Config *config.Config
	// Sources are the files read, in load order.
	Sources []Source
}

type builder struct {
	cfg   *config.Config
	seen  map[string]hcl.Range
	diags hcl.Diagnostics
}

// LoadDir reads every policy file of dir into one configuration. The result
// is usable only when the diagnostics hold no error.
func LoadDir(dir string) (*Result, hcl.Diagnostics) {
	srcs, diags := readDir(dir)
	res, more := Load(srcs)
	return res, append(diags, more...)
}

// Load parses and merges the given files.
func Load(srcs []Source) (*Result, hcl.Diagnostics) {
	b := &builder{
		cfg:  &config.Config{Failsafe: config.DefaultFailsafe()},
		seen: map[string]hcl.Range{},
	}
	parser := hclparse.NewParser()
	for _, src := range srcs {
		switch filepath.Ext(src.Path) {
		case ".hcl":
			f, diags := parser.ParseHCL(src.Data, src.Path)
			b.diags = append(b.diags, diags...)
			if f != nil && !diags.HasErrors() {
				b.decodeHCL(f)
			}
		default:
			b.diags = append(b.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "YAML policy files are not supported yet",
				Detail:   "This version reads native HCL (*.hcl) only. Rewrite the file in HCL, or move it out of the configuration directory.",
				Subject:  &hcl.Range{Filename: src.Path, Start: hcl.InitialPos, End: hcl.InitialPos},
			})
		}
	}
	return &Result{Config: b.cfg, Sources: srcs}, b.diags
}
