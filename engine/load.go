package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/internal/suggest"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/resolve"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
	"github.com/hostwall/hostwall/views"
)

// InvalidError is the error of a configuration that does not load or
// compile. Diags are every diagnostic found, errors and warnings, in the
// order found: the front door shows them all.
type InvalidError struct {
	Dir   string
	Diags hcl.Diagnostics
}

func (e *InvalidError) Error() string {
	n := len(e.Diags.Errs())
	noun := "errors"
	if n == 1 {
		noun = "error"
	}
	return fmt.Sprintf("%d %s in %s; nothing was applied", n, noun, views.Printable(e.Dir))
}

// Loaded is the configuration directory loaded and compiled for this host.
type Loaded struct {
	Result *loader.Result
	Table  *ruleset.Table
	// Host is the host name the table was compiled for.
	Host string
	// Recipes are those of the table's sets drawn from nets files (an
	// incremental apply's record keeps them).
	Recipes []compile.Recipe
	// Warnings are the load's and the compile's diagnostics; none is an
	// error.
	Warnings hcl.Diagnostics
	// Names are the policies' domain names as they resolved for this
	// load (Result.Config holds their addresses).
	Names []resolve.Answer
	// Revision is the etcd revision of the datastore resources loaded
	// with the files (0: none).
	Revision int64
}

// Load reads and compiles the configuration directory (with the
// datastore's resources, when the engine has one). A configuration with an
// error is an *InvalidError holding every diagnostic. No kernel is
// touched.
func (e *Engine) Load() (*Loaded, error) {
	if err := e.takeSnapshot(); err != nil {
		return nil, err
	}
	return e.load()
}

// load is Load with the datastore snapshot the operation under way took
// (an apply's loads, and the generation it records, are of one revision).
func (e *Engine) load() (*Loaded, error) {
	res, diags := loader.LoadDir(e.o.ConfigDir, e.o.Load)
	if diags.HasErrors() {
		return nil, &InvalidError{Dir: e.loadedFrom(), Diags: diags}
	}
	l := &Loaded{Result: res, Host: res.Config.HostName(e.o.HostName), Revision: e.snapshotRevision()}
	if names := res.Config.Domains(); len(names) > 0 {
		// The policies' domain names, as they resolve now (names.go).
		var warnings hcl.Diagnostics
		l.Names, warnings = e.resolveNames(res.Config, names)
		diags = append(diags, warnings...)
		addrs := map[string][]netip.Addr{}
		for _, n := range l.Names {
			addrs[n.Name] = n.Addrs
		}
		resolved := *res
		resolved.Config, _ = res.Config.WithAddresses(addrs)
		l.Result = &resolved
	}
	var more hcl.Diagnostics
	l.Table, more = compile.Compile(l.Result.Config, compile.Options{HostName: l.Host, Limits: e.o.Limits, Memo: e.compiled, Recipes: &l.Recipes})
	diags = append(diags, more...)
	if diags.HasErrors() {
		return nil, &InvalidError{Dir: e.loadedFrom(), Diags: diags}
	}
	l.Warnings = append(diags, e.missingInterfaces(res.Config, l.Host)...)
	return l, nil
}

// missingInterfaces warns of the host endpoints of this host whose
// interface the namespace does not have: they protect nothing until one
// of that name appears (a typo, "eht0", protects nothing at all).
func (e *Engine) missingInterfaces(cfg *config.Config, host string) hcl.Diagnostics {
	var named []*config.HostEndpoint
	for _, hep := range cfg.Endpoints {
		if hep.Interface != "*" && (hep.Node == "" || hep.Node == host) {
			named = append(named, hep)
		}
	}
	if len(named) == 0 {
		return nil // nothing to look up: the namespace is not entered
	}
	names, err := netif.Names(netif.Path(e.o.NetNS))
	if err != nil {
		return nil // a namespace that cannot be entered says so elsewhere
	}
	var diags hcl.Diagnostics
	for _, hep := range named {
		if slices.Contains(names, hep.Interface) {
			continue
		}
		where := "this host"
		if e.o.NetNS != "" {
			where = fmt.Sprintf("network namespace %s", e.o.NetNS)
		}
		hint := ""
		if s := suggest.Name(hep.Interface, names); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "No such interface",
			Detail: fmt.Sprintf("Host endpoint %q names interface %q, which %s does not have (it has %s): the endpoint protects nothing until an interface of that name appears.%s",
				hep.Name, hep.Interface, where, strings.Join(names, ", "), hint),
			Subject: hep.DeclRange.Ptr()})
	}
	return diags
}

// limits are the engine's limits as a generation records them.
func (e *Engine) limits() *state.Limits {
	l := e.o.Limits.WithDefaults()
	return &state.Limits{MaxPolicies: l.MaxPolicies, MaxRules: l.MaxRules, MaxSetElements: l.MaxSetElements,
		ShardMin: l.Sharding.Min, ShardSlots: l.Sharding.Slots, ShardChunkBits: l.Sharding.ChunkBits}
}

// loaderSources are a loaded generation's recorded files (and datastore
// resources) as the loader takes them.
func loaderSources(g *state.Generation) []loader.Source {
	var srcs []loader.Source
	for _, f := range recordedFiles(g) {
		srcs = append(srcs, loader.Source{Path: f.Path, Data: f.Data, SHA256: f.SHA256})
	}
	return srcs
}

// recordedFiles are a generation's files and datastore resources in the
// order they were loaded.
func recordedFiles(g *state.Generation) []state.File {
	d := g.Datastore
	if d == nil || len(d.Files) == 0 {
		return g.Files
	}
	at := min(max(d.At, 0), len(g.Files))
	return slices.Concat(g.Files[:at], d.Files, g.Files[at:])
}

// compileRecorded compiles a generation's recorded files for its host,
// under the limits it was applied with (the engine's for records that
// name none).
func (e *Engine) compileRecorded(g *state.Generation) (*config.Config, *ruleset.Table, error) {
	res, diags := loader.Load(loaderSources(g))
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("generation %d no longer loads: %s", g.Number, views.FormatDiagnostic(diags.Errs()[0].(*hcl.Diagnostic)))
	}
	limits := e.o.Limits
	if g.Limits != nil {
		limits = compile.Limits{MaxPolicies: g.Limits.MaxPolicies, MaxRules: g.Limits.MaxRules, MaxSetElements: g.Limits.MaxSetElements,
			Sharding: ruleset.Sharding{Min: g.Limits.ShardMin, Slots: g.Limits.ShardSlots, ChunkBits: g.Limits.ShardChunkBits}}
	}
	cfg := res.Config
	if len(g.Names) > 0 {
		// The addresses its names had, offline: the ruleset it applied.
		cfg, _ = cfg.WithAddresses(recordedAddrs(g.Names))
	}
	tbl, diags := compile.Compile(cfg, compile.Options{HostName: g.HostName, Limits: limits})
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("generation %d no longer compiles: %s", g.Number, views.FormatDiagnostic(diags.Errs()[0].(*hcl.Diagnostic)))
	}
	return cfg, tbl, nil
}

// ErrCompilesDifferently is the error (wrapped) of a generation whose
// files compile, with this hostwall, to another ruleset than the one
// recorded: a rollback to it needs --force.
var ErrCompilesDifferently = fmt.Errorf("compiles to a different ruleset with this hostwall version than when it was applied")

// generationTable loads generation n of store — a damaged one is an
// error, whatever force says — and compiles it; unless force, the result
// must be the ruleset recorded.
func (e *Engine) generationTable(store *state.Store, n int, force bool) (*state.Generation, *ruleset.Table, error) {
	g, err := store.Load(n)
	if err != nil {
		return nil, nil, err
	}
	_, tbl, err := e.compileRecorded(g)
	if err != nil {
		return nil, nil, err
	}
	if !force && state.HashRuleset(tbl.String()) != g.RulesetHash {
		return nil, nil, fmt.Errorf("generation %d %w; --force rolls back to what it compiles to now", n, ErrCompilesDifferently)
	}
	return g, tbl, nil
}
