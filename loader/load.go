package loader

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
)

// Result is a loaded configuration with the files it came from.
type Result struct {
	Config *config.Config
	// Sources are the files read, in load order: the policy files, then
	// the nets files they name.
	Sources []Source
	nets    int
}

// NetsFiles are the paths of the nets files among the sources, in load
// order (what ReadSources takes).
func (r *Result) NetsFiles() []string {
	var out []string
	for _, s := range r.Sources[len(r.Sources)-r.nets:] {
		out = append(out, s.Path)
	}
	return out
}

// builder decodes a policy file (decodeFile: cfg, seen, declared,
// tierRefs, nets), then, for the merged files, reads the nets files they
// name (load: dir, files, disk, extra).
type builder struct {
	// dir is the configuration directory (empty for Load: each file's
	// own directory bounds its nets files).
	dir string
	// files are the non-policy sources by path (nets files); disk reads
	// more of them (nil: only those given); extra are the ones read.
	files    map[string]Source
	disk     func(string) ([]byte, error)
	extra    []Source
	cfg      *config.Config
	seen     map[string]hcl.Range
	diags    hcl.Diagnostics
	declared []declared
	tierRefs []tierRef
	nets     []netsRef
	memo     *Memo
}

// tierRef is a policy's reference to a tier, checked once all files are read.
type tierRef struct {
	Tier   string
	Range  hcl.Range
	Policy string
}

// declared is a named object of a file, in the order declared: kind
// "policy", "tier", "host" (name ""), …
type declared struct {
	Kind, Name string
	Range      hcl.Range
}

// LoadDir reads every policy file of dir into one configuration. The result
// is usable only when the diagnostics hold no error. Running as root, it
// refuses files that anyone but root could have written (see checkTrust)
// unless opts.InsecureSkipPerms.
func LoadDir(dir string, opts DirOptions) (*Result, hcl.Diagnostics) {
	opts = opts.withDefaults()
	trust := !opts.InsecureSkipPerms && os.Geteuid() == 0
	dir = filepath.Clean(dir)
	ov, diags := overlay(dir, opts.Overlay)
	if diags.HasErrors() {
		return &Result{Config: &config.Config{}}, diags
	}
	srcs, diags := readDir(dir, trust, opts.MaxFileBytes, ov)
	srcs = append(srcs, opts.Datastore...)
	res, more := load(srcs, dir, func(p string) ([]byte, error) {
		from, ok := ov[p]
		switch {
		case !ok:
			from = p
		case from == "":
			return nil, fmt.Errorf("%s is removed by the change being validated", p)
		}
		return readInput(from, trust, opts.MaxNetsFileBytes, "--max-nets-file-bytes")
	}, opts.Memo)
	return res, append(diags, more...)
}

// overlay resolves DirOptions.Overlay to absolute paths under dir,
// refusing keys that leave it.
func overlay(dir string, in map[string]string) (map[string]string, hcl.Diagnostics) {
	out := make(map[string]string, len(in))
	var diags hcl.Diagnostics
	for name, from := range in {
		p := filepath.Join(dir, name)
		if rel, err := filepath.Rel(dir, p); err != nil || filepath.IsAbs(name) || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid file to replace",
				Detail:   fmt.Sprintf("%q is not a file name inside %s. Name the file relative to the configuration directory, e.g. web.hcl.", name, dir),
			})
			continue
		}
		out[p] = from
	}
	return out, diags
}

// Load parses and merges the given files: policy files (*.hcl, *.yaml,
// *.yml) and the nets files they name, which must be among srcs.
func Load(srcs []Source) (*Result, hcl.Diagnostics) {
	return load(srcs, "", nil, nil)
}

func load(srcs []Source, dir string, disk func(string) ([]byte, error), memo *Memo) (*Result, hcl.Diagnostics) {
	var policies []Source
	b := &builder{dir: dir, files: map[string]Source{}, disk: disk, memo: memo}
	for _, src := range srcs {
		if policyFile(filepath.Base(src.Path)) || IsDatastore(src.Path) {
			policies = append(policies, src)
		} else {
			b.files[filepath.Clean(src.Path)] = src
		}
	}
	frags, diags := decodeMemoized(policies, memo)
	var nets []netsRef
	b.cfg, nets, b.diags = merge(frags, diags)
	for _, ref := range nets {
		ns := *b.cfg.NetworkSets[ref.Set] // a copy: the decoded set may be a Memo's
		path, key, nets := b.netsFile(ref)
		ns.NetsFile, ns.NetsKey, ns.InlineNets = path, key, len(ns.Nets)
		if len(ns.Nets) == 0 {
			ns.Nets = slices.Clip(nets) // the file's, shared with the memo: a million networks are 30 MB
		} else {
			ns.Nets = append(slices.Clip(ns.Nets), nets...)
		}
		b.cfg.NetworkSets[ref.Set] = &ns
	}
	memo.netsMap().Done()
	return &Result{Config: b.cfg, Sources: append(srcs[:len(srcs):len(srcs)], b.extra...), nets: len(b.extra)}, b.diags
}

// checkText refuses a YAML file that is not UTF-8 where it stops being so:
// goccy/go-yaml would turn such bytes into U+FFFD, changing a label or a
// name without a word (HCL's parser refuses them itself).
func checkText(src Source) *hcl.Diagnostic {
	if filepath.Ext(src.Path) == ".hcl" || utf8.Valid(src.Data) {
		return nil
	}
	at := 0
	for at < len(src.Data) {
		r, n := utf8.DecodeRune(src.Data[at:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		at += n
	}
	pos := posAt(src.Data, at)
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Not UTF-8",
		Detail:  fmt.Sprintf("The byte 0x%02x here is not UTF-8; a YAML file is UTF-8 text. Save it as UTF-8.", src.Data[at]),
		Subject: &hcl.Range{Filename: src.Path, Start: pos, End: pos}}
}

// decodeFile decodes one policy file, leaving its nets files to be read.
// Objects are checked against the file's own only: merge finds what other
// files declare again.
func decodeFile(src Source) (*fragment, hcl.Diagnostics) {
	if d := checkText(src); d != nil {
		return newBuilder().fragment(), hcl.Diagnostics{d}
	}
	if d := checkNesting(src); d != nil {
		return newBuilder().fragment(), hcl.Diagnostics{d}
	}
	if IsDatastore(src.Path) {
		// A datastore key holds one Calico resource, whatever its name
		// ends in (never HCL, never native YAML).
		b := newBuilder()
		b.loadDatastore(src)
		return b.fragment(), b.diags
	}
	if filepath.Ext(src.Path) != ".hcl" {
		// A byte order mark may start a YAML stream (as HCL's parser
		// takes it); goccy/go-yaml does not.
		src.Data = bytes.TrimPrefix(src.Data, []byte("\uFEFF"))
	}
	if filepath.Ext(src.Path) == ".hcl" && len(src.Data) >= 2*pieceBytes {
		if f, diags, ok := decodeHCLPieces(src); ok {
			return f, diags
		}
	}
	b := newBuilder()
	if filepath.Ext(src.Path) == ".hcl" {
		body, diags := parseHCL(src.Data, src.Path, hcl.Pos{Line: 1, Column: 1})
		b.diags = append(b.diags, diags...)
		if body != nil && !diags.HasErrors() {
			b.decodeBody(body)
		}
	} else {
		b.loadYAML(src)
	}
	return b.fragment(), b.diags
}

func newBuilder() *builder {
	return &builder{
		cfg:  &config.Config{Failsafe: config.DefaultFailsafe(), Settings: config.DefaultSettings()},
		seen: map[string]hcl.Range{},
	}
}

func (b *builder) fragment() *fragment {
	return &fragment{Config: b.cfg, Declared: b.declared, TierRefs: b.tierRefs, Nets: b.nets}
}

// combine joins fragments, in order, into one. An object declared by two
// of them is an error (as within one file: the message names both places).
func combine(frags []*fragment, diags []hcl.Diagnostics) (*fragment, hcl.Diagnostics) {
	out := newBuilder().fragment()
	cfg := out.Config
	seen := map[string]hcl.Range{}
	var all hcl.Diagnostics
	for i, f := range frags {
		all = append(all, diags[i]...)
		for _, d := range f.Declared {
			if prev, dup := seen[d.Kind+" "+d.Name]; dup {
				all = append(all, duplicate(d.Kind, d.Name, d.Range, prev))
				continue
			}
			seen[d.Kind+" "+d.Name] = d.Range
			out.Declared = append(out.Declared, d)
		}
		fc := f.Config
		if fc.Host != nil {
			cfg.Host = fc.Host
		}
		cfg.Endpoints = append(cfg.Endpoints, fc.Endpoints...)
		for _, ref := range f.Nets {
			ref.Set += len(cfg.NetworkSets)
			out.Nets = append(out.Nets, ref)
		}
		cfg.NetworkSets = append(cfg.NetworkSets, fc.NetworkSets...)
		cfg.Policies = append(cfg.Policies, fc.Policies...)
		cfg.Tiers = append(cfg.Tiers, fc.Tiers...)
		if fc.Failsafe.DeclRange != (hcl.Range{}) {
			cfg.Failsafe = fc.Failsafe
		}
		mergeNodes(&cfg.NodeFailsafe, fc.NodeFailsafe)
		if fc.Workloads.DeclRange != (hcl.Range{}) {
			cfg.Workloads = fc.Workloads
		}
		mergeNodes(&cfg.NodeWorkloads, fc.NodeWorkloads)
		if fc.Settings.DeclRange != (hcl.Range{}) {
			cfg.Settings = fc.Settings
		}
		out.TierRefs = append(out.TierRefs, f.TierRefs...)
	}
	return out, all
}

// mergeNodes adds a fragment's node overrides to the configuration's.
func mergeNodes[V any](dst *map[string]V, src map[string]V) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = map[string]V{}
	}
	maps.Copy(*dst, src)
}

// merge joins the files' fragments, in load order, into one configuration
// with its nets_file references; diags[i] are fragment i's diagnostics.
// An object declared by two files is an error, and so is a policy in a
// tier no file declares.
func merge(frags []*fragment, diags []hcl.Diagnostics) (*config.Config, []netsRef, hcl.Diagnostics) {
	f, all := combine(frags, diags)
	tiers := map[string]bool{}
	for _, d := range f.Declared {
		if d.Kind == "tier" {
			tiers[d.Name] = true
		}
	}
	for _, ref := range f.TierRefs {
		switch {
		case ref.Tier == config.DefaultTier || tiers[ref.Tier]:
		case filepath.Ext(ref.Range.Filename) == ".hcl":
			all = append(all, errAt(ref.Range, "Unknown tier",
				"Policy %q is in tier %q, which no file declares; add tier %q { order = … } or remove the tier line.", ref.Policy, ref.Tier, ref.Tier))
		default:
			all = append(all, errAt(ref.Range, "Unknown tier",
				"Policy %q is in tier %q, which neither the files nor the datastore hold; create the Tier (kind: Tier, metadata.name: %s) or change spec.tier.", ref.Policy, ref.Tier, ref.Tier))
		}
	}
	return f.Config, f.Nets, append(all, checkStaged(f.Config)...)
}

// checkStaged checks staged policies against the enforced ones: a staged
// delete holds nothing but its name and tier (as Calico validates it),
// and one of a name no enforced policy has would test nothing.
func checkStaged(cfg *config.Config) hcl.Diagnostics {
	enforced := map[string]bool{}
	for _, p := range cfg.Policies {
		if p.Staged == "" {
			enforced[p.Name] = true
		}
	}
	var out hcl.Diagnostics
	for _, p := range cfg.Policies {
		if p.Staged != config.StagedDelete {
			continue
		}
		if len(p.Ingress)+len(p.Egress) > 0 || p.Order != nil || p.Selector.String() != config.All().String() || p.ApplyOnForward || p.PreDNAT || p.DoNotTrack {
			out = append(out, errAt(p.DeclRange, "A staged delete holds no policy",
				"Staged policy %q takes the enforced policy of its name away; it holds no selector, order, rules or stages (Calico: spec fields, except tier, are zero when stagedAction is Delete). Remove them, or stage a replacement instead.", p.Name))
		}
		if !enforced[p.Name] {
			out = append(out, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Staged delete of no policy",
				Detail:  fmt.Sprintf("Staged policy %q would delete the enforced policy %q, which no file declares: the staged view is the enforced one. Check the name.", p.Name, p.Name),
				Subject: p.DeclRange.Ptr()})
		}
	}
	return out
}

// loadYAML decodes each document of a YAML file: Calico resources (with an
// apiVersion) by the Calico decoder, anything else as native YAML.
func (b *builder) loadYAML(src Source) {
	docs, diags := parseYAML(src)
	b.diags = append(b.diags, diags...)
	if d := checkAliases(src.Path, docs); d != nil {
		b.diags = append(b.diags, d)
		return
	}
	for _, doc := range docs {
		anchors := map[string]ast.Node{}
		// A document that is a list holds resources ("- apiVersion: …"), as
		// Calico's docs write them.
		if seq, ok := unwrap(doc, anchors).(*ast.SequenceNode); ok {
			for _, item := range seq.Values {
				body := &yamlBody{file: src.Path, node: item, at: nodeRange(src.Path, item), anchors: anchors}
				if !isCalico(body) {
					b.diags = append(b.diags, errAt(body.at, "Expected a Calico resource", "A list at the top of a file holds Calico resources, each with apiVersion and kind."))
					continue
				}
				b.decodeCalico(body)
			}
			continue
		}
		body := &yamlBody{file: src.Path, node: doc, at: nodeRange(src.Path, doc), anchors: anchors}
		if isCalico(body) {
			b.decodeCalico(body)
			continue
		}
		b.decodeBody(body)
	}
}
