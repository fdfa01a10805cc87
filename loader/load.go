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
	cfg      *config.Config
	seen     map[string]hcl.Range
	diags    hcl.Diagnostics
	tierRefs []tierRef
}

// tierRef is a policy's reference to a tier, checked once all files are read.
type tierRef struct {
	tier   string
	rng    hcl.Range
	policy string
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
		cfg:  &config.Config{Failsafe: config.DefaultFailsafe(), Settings: config.Settings{AllowIPv6ND: true}},
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
	b.checkTierRefs()
	return &Result{Config: b.cfg, Sources: srcs}, b.diags
}

func (b *builder) checkTierRefs() {
	for _, ref := range b.tierRefs {
		if ref.tier == config.DefaultTier || b.seen["tier "+ref.tier] != (hcl.Range{}) {
			continue
		}
		b.diags = append(b.diags, errAt(ref.rng, "Unknown tier",
			"Policy %q is in tier %q, which no file declares; add tier %q { order = … } or remove the tier line.", ref.policy, ref.tier, ref.tier))
	}
}
