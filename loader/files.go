package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Source is one file as read.
type Source struct {
	Path string
	Data []byte
}

// ignored reports whether a file name is an editor or package-manager
// leftover that must never be loaded.
func ignored(name string) bool {
	switch {
	case strings.HasPrefix(name, "."), strings.HasSuffix(name, "~"), strings.HasPrefix(name, "#"),
		strings.Contains(name, ".dpkg-"), strings.Contains(name, ".rpmnew"), strings.Contains(name, ".rpmsave"),
		strings.Contains(name, ".rpmorig"), strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".bak"):
		return true
	}
	return false
}

// policyFile reports whether a file name is one the loader reads.
func policyFile(name string) bool {
	switch filepath.Ext(name) {
	case ".hcl", ".yaml", ".yml":
		return !ignored(name)
	}
	return false
}

// untrusted is the diagnostic for a file or directory checkTrust refuses.
func untrusted(path string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Untrusted configuration",
		Detail:   err.Error() + ". (--insecure-skip-perms loads it anyway, for tests and containers.)",
		Subject:  &hcl.Range{Filename: path},
	}
}

// readDir returns the policy files of dir in lexical order; with trust, it
// refuses any that checkTrust refuses, and any larger than maxBytes.
func readDir(dir string, trust bool, maxBytes int64) ([]Source, hcl.Diagnostics) {
	if trust {
		if err := checkTrust(dir); err != nil && !os.IsNotExist(err) {
			return nil, hcl.Diagnostics{untrusted(dir, err)}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the configuration directory",
			Detail:   fmt.Sprintf("%v. Create it, or point -c/--config at the directory holding the policy files.", err),
		}}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			if policyFile(e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	var diags hcl.Diagnostics
	srcs := make([]Source, 0, len(names))
	for _, n := range names {
		p := filepath.Join(dir, n)
		if trust {
			if err := checkTrust(p); err != nil {
				diags = append(diags, untrusted(p, err))
				continue
			}
		}
		if fi, err := os.Stat(p); err == nil && fi.Size() > maxBytes {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Policy file too large",
				Detail:   fmt.Sprintf("The file is %d bytes, above the limit of %d. If that is intended, raise the limit with --max-file-bytes.", fi.Size(), maxBytes),
				Subject:  &hcl.Range{Filename: p},
			})
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read policy file",
				Detail:   fmt.Sprintf("%v.", err),
				Subject:  &hcl.Range{Filename: p},
			})
			continue
		}
		srcs = append(srcs, Source{Path: p, Data: data})
	}
	return srcs, diags
}

// IsWatched reports whether a change to a file of this name may change the
// configuration: any file but an editor or package-manager leftover (nets
// files may have any name). The content hash decides whether it did.
func IsWatched(name string) bool { return !ignored(name) }

// HashSources is the content hash of a configuration: every file's name and
// contents. Equal hashes mean nothing to reload.
func HashSources(srcs []Source) string {
	h := sha256.New()
	for _, s := range srcs {
		sum := sha256.Sum256(s.Data)
		fmt.Fprintf(h, "%s %x\n", filepath.Base(s.Path), sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}
