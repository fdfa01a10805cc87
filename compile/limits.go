package compile

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// Limits bound what one configuration may compile to, so that a mistake
// (a generated file gone wrong) fails with a clear error instead of
// exhausting memory or the kernel. The defaults are generous enough for
// million-entry blocklists; a zero field takes its default.
type Limits struct {
	MaxPolicies    int // policies, all tiers
	MaxRules       int // rules of all policies
	MaxSetElements int // set elements of the whole table, after merging
	// Sharding is no bound: it says which address sets are sharded
	// (ruleset.Sharding). It is here because it travels with the limits:
	// a generation records both, so that a rollback compiles the table it
	// applied.
	Sharding ruleset.Sharding
}

// DefaultLimits are the limits when none are given.
var DefaultLimits = Limits{MaxPolicies: 10_000, MaxRules: 200_000, MaxSetElements: 4_000_000, Sharding: ruleset.DefaultSharding}

// WithDefaults returns l with every zero field its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxPolicies == 0 {
		l.MaxPolicies = DefaultLimits.MaxPolicies
	}
	if l.MaxRules == 0 {
		l.MaxRules = DefaultLimits.MaxRules
	}
	if l.MaxSetElements == 0 {
		l.MaxSetElements = DefaultLimits.MaxSetElements
	}
	l.Sharding = l.Sharding.WithDefaults()
	return l
}

// Check refuses sharding settings the kernel layout cannot take, as given
// (a zero is refused, not taken for the default: the flags' defaults are
// the defaults).
func (l Limits) Check() error {
	sh := l.Sharding
	switch {
	case sh.Min < 1:
		return fmt.Errorf("--shard-min %d: want 1 or more networks", sh.Min)
	case sh.Slots < 1 || sh.Slots > 100:
		return fmt.Errorf("--shard-slots %d: want 1 to 100", sh.Slots)
	case sh.ChunkBits < 1 || sh.ChunkBits > 24:
		return fmt.Errorf("--shard-chunk-bits %d: want 1 to 24", sh.ChunkBits)
	}
	return nil
}

func limitError(subject *hcl.Range, what string, n, limit int, flag string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Configuration too large",
		Detail:   fmt.Sprintf("The configuration has %d %s, above the limit of %d. If that is intended, raise the limit with %s.", n, what, limit, flag),
		Subject:  subject,
	}
}

// checkSize refuses a configuration with too many policies or rules; it
// names the policy at which the limit is crossed.
func checkSize(cfg *config.Config, l Limits) hcl.Diagnostics {
	if n := len(cfg.Policies); n > l.MaxPolicies {
		return hcl.Diagnostics{limitError(cfg.Policies[l.MaxPolicies].DeclRange.Ptr(), "policies", n, l.MaxPolicies, "--max-policies")}
	}
	rules := 0
	for _, p := range cfg.Policies {
		rules += len(p.Ingress) + len(p.Egress)
		if rules > l.MaxRules {
			total := 0
			for _, p := range cfg.Policies {
				total += len(p.Ingress) + len(p.Egress)
			}
			return hcl.Diagnostics{limitError(p.DeclRange.Ptr(), "rules in its policies (the limit is crossed here)", total, l.MaxRules, "--max-rules")}
		}
	}
	return nil
}

// checkElements refuses a table with too many set elements.
func checkElements(t *ruleset.Table, l Limits) hcl.Diagnostics {
	n := 0
	for _, s := range t.Sets {
		n += len(s.Elements)
	}
	if n > l.MaxSetElements {
		return hcl.Diagnostics{limitError(nil, "set elements", n, l.MaxSetElements, "--max-set-elements")}
	}
	return nil
}
