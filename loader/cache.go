package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/bincodec"
)

// A Cache keeps what a directory's policy files decode to, so that a load
// whose policy files are unchanged skips parsing them: for a large policy
// most of a load is HCL's lexer (docs/performance.md), while the usual
// change is to a nets file, which is read on every load anyway. Entries
// are keyed by the policy files' paths and contents; only error-free
// decodings are kept. The value is bincodec, which carries no description
// of the types it was written from: an implementation that outlives the
// process must also key it by the binary that wrote it.
type Cache interface {
	// Get returns the value put under key, or nil.
	Get(key string) []byte
	// Put keeps value under key; failing to is no error, only a miss later.
	Put(key string, value []byte)
}

// cacheFormat names the layout of decoded; change it with the layout.
const cacheFormat = "hostwall decoded policy files 1"

// decoded is what the policy files of a load decode to before their nets
// files are read: what a Cache keeps.
type decoded struct {
	Config *config.Config
	// Nets are the nets_file references, resolved after decoding.
	Nets []netsRef
	// Warnings are the decoding's diagnostics (never errors: those are
	// not kept).
	Warnings []cachedDiag
}

// netsRef is a network set's nets_file, as written in file From.
type netsRef struct {
	Set   int // index into Config.NetworkSets
	Name  string
	From  string
	Range hcl.Range
}

// cachedDiag is an hcl.Diagnostic without its expression and evaluation
// context, which are interfaces and which a warning of ours never has.
type cachedDiag struct {
	Severity         hcl.DiagnosticSeverity
	Summary, Detail  string
	Subject, Context *hcl.Range
}

// cacheKey identifies the policy files of a load of dir.
func cacheKey(dir string, policies []Source) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", cacheFormat, dir)
	for _, s := range policies {
		fmt.Fprintf(h, "%q %x\n", s.Path, sha256.Sum256(s.Data))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// encode is d for a Cache, nil when d holds an error or cannot be encoded.
func (d *decoded) encode(diags hcl.Diagnostics) []byte {
	if diags.HasErrors() {
		return nil
	}
	for _, diag := range diags {
		d.Warnings = append(d.Warnings, cachedDiag{diag.Severity, diag.Summary, diag.Detail, diag.Subject, diag.Context})
	}
	data, err := bincodec.Marshal(d)
	if err != nil {
		return nil
	}
	return data
}

// decodeCached reads what encode wrote, nil when it cannot.
func decodeCached(data []byte) (*decoded, hcl.Diagnostics) {
	var d decoded
	if data == nil || bincodec.Unmarshal(data, &d) != nil || d.Config == nil {
		return nil, nil
	}
	for _, ref := range d.Nets {
		if ref.Set < 0 || ref.Set >= len(d.Config.NetworkSets) {
			return nil, nil
		}
	}
	var diags hcl.Diagnostics
	for _, w := range d.Warnings {
		diags = append(diags, &hcl.Diagnostic{Severity: w.Severity, Summary: w.Summary, Detail: w.Detail, Subject: w.Subject, Context: w.Context})
	}
	return &d, diags
}
