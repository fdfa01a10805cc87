package agent

import (
	"context"
	"time"

	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// Status is what `hostwall status` shows. The agent fills all of it; the
// CLI without an agent fills what the state directory and the kernel tell.
type Status struct {
	// Agent is the running agent's pid; 0 when the status comes from the
	// state directory.
	Agent      int            `json:"agent_pid,omitempty"`
	ConfigDir  string         `json:"config_dir,omitempty"`
	Generation int            `json:"current_generation"`
	LastApply  *ApplyRecord   `json:"last_apply,omitempty"`
	Trial      *state.Trial   `json:"trial"`
	GuardAlive bool           `json:"guard_alive"`
	LastTrial  *state.Outcome `json:"last_trial"`
	// DriftRepairs counts repairs since the agent started.
	DriftRepairs int          `json:"drift_repairs"`
	LastDrift    *DriftRecord `json:"last_drift,omitempty"`
	Rules        int          `json:"rules"`
	Chains       []ChainCount `json:"counters"`
	// CountersError says why there are no counters (no table, no access).
	CountersError string `json:"counters_error,omitempty"`
}

// ApplyRecord is the agent's last attempt to apply the files.
type ApplyRecord struct {
	Time       time.Time `json:"time"`
	Why        string    `json:"why"`
	Result     string    `json:"result"` // "applied", "unchanged", "invalid", "failed"
	Generation int       `json:"generation,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// DriftRecord is the last repair of a change made by another process.
type DriftRecord struct {
	Time    time.Time `json:"time"`
	By      string    `json:"by"`
	Changes int       `json:"changes"`
}

// ChainCount is the counters of one chain of the table: a policy's
// direction, a host endpoint's, the failsafe chain.
type ChainCount struct {
	Chain       string      `json:"chain"`
	Description string      `json:"description,omitempty"`
	Packets     uint64      `json:"packets"`
	Bytes       uint64      `json:"bytes"`
	Rules       []RuleCount `json:"rules"`
}

// RuleCount is one counting rule.
type RuleCount struct {
	Rule    string `json:"rule"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// ReadCounters fills Rules and Chains from the kernel's table, described
// with the chain comments of s.Generation as recorded in store; when the
// table cannot be read, CountersError says why.
func (s *Status) ReadCounters(ctx context.Context, k Kernel, store *state.Store) {
	live, _, err := k.Read(ctx)
	switch {
	case err != nil:
		s.CountersError = err.Error()
	case live == nil:
		s.CountersError = "table inet hostwall does not exist"
	default:
		s.Rules = live.RuleCount()
		var desired *ruleset.Table
		if g, err := store.Load(s.Generation); err == nil {
			desired, _ = CompileGeneration(g)
		}
		s.Chains = counters(live, desired)
	}
}

// counters gathers the rule counters of the live table, described with
// the chain comments of desired (the current generation's table; nil for
// none). A chain's totals are those of its counting rules.
func counters(live, desired *ruleset.Table) []ChainCount {
	if live == nil {
		return nil
	}
	var out []ChainCount
	for _, ch := range live.Chains {
		cc := ChainCount{Chain: ch.Name}
		if desired != nil {
			if d := desired.Chain(ch.Name); d != nil {
				cc.Description = d.Comment
			}
		}
		for _, r := range ch.Rules {
			if !r.Counter {
				continue
			}
			cc.Packets += r.Packets
			cc.Bytes += r.Bytes
			cc.Rules = append(cc.Rules, RuleCount{Rule: r.String(), Packets: r.Packets, Bytes: r.Bytes})
		}
		if len(cc.Rules) > 0 {
			out = append(out, cc)
		}
	}
	return out
}
