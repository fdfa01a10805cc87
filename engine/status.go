package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/resolve"
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
	// DriftRepairs counts repairs since the agent started; LastVerified is
	// when the agent last found (or made) the kernel hold the current
	// generation.
	DriftRepairs int          `json:"drift_repairs"`
	LastVerified time.Time    `json:"last_verified,omitzero"`
	LastDrift    *DriftRecord `json:"last_drift,omitempty"`
	Rules        int          `json:"rules"`
	Chains       []ChainCount `json:"counters"`
	// Mismatch says how the kernel does not hold the current generation
	// (drift, another writer, a generation not recorded); "" when it does.
	Mismatch string `json:"mismatch,omitempty"`
	// CountersError says why there are no counters (no table, no access).
	CountersError string `json:"counters_error,omitempty"`
	// TopDrops are what dropped the most packets, most first: since the
	// agent started (DropsSince), or without one since the kernel's rules
	// were made. RecentDrops are the last drops the drop log showed the
	// agent, oldest first.
	TopDrops []observe.DropCount `json:"top_drops,omitempty"`
	// Staged is where the staged view disagrees with the enforced one,
	// since the kernel's rules were made.
	Staged      []observe.StagedCount `json:"staged,omitempty"`
	DropsSince  time.Time             `json:"drops_since,omitzero"`
	RecentDrops []observe.Drop        `json:"recent_drops,omitempty"`
	// Names are the domain names of the configuration in force, with their
	// addresses: as the agent keeps them (Stale when a name no longer
	// resolves), else as the current generation recorded them.
	Names []resolve.Answer `json:"names,omitempty"`
	// Datastore is the etcd datastore the generation in force read, as it
	// recorded it and, from the agent, as the agent follows it (nil: the
	// files alone).
	Datastore *DatastoreStatus `json:"datastore,omitempty"`
	// Interrupted is a change whose process died before recording its
	// outcome (the next change settles it); InProgress one under way.
	Interrupted *state.Intent `json:"interrupted,omitempty"`
	InProgress  *state.Intent `json:"in_progress,omitempty"`
}

// DatastoreStatus is where the datastore stands.
type DatastoreStatus struct {
	Type      string   `json:"type"`
	Endpoints []string `json:"endpoints"`
	// Revision is the etcd revision of the generation in force's
	// resources; Applied the revision the agent last applied (the
	// kernel's rules need not change with every revision).
	Revision int64 `json:"revision"`
	Applied  int64 `json:"applied,omitempty"`
	// Synced is the revision the agent has read to, SyncedAt when etcd
	// last confirmed it; Error why etcd does not answer now. Only from
	// the agent.
	Synced   int64     `json:"synced,omitempty"`
	SyncedAt time.Time `json:"synced_at,omitzero"`
	Error    string    `json:"error,omitempty"`
	Relists  int       `json:"relists,omitempty"`
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

// Status is the namespace's status as the state directory and the
// kernel tell it: the current generation, the trial, the counters. The
// agent adds what it knows.
func (e *Engine) Status(ctx context.Context) (*Status, error) {
	ns, err := e.namespace()
	if err != nil {
		return nil, err
	}
	s := &Status{ConfigDir: e.o.ConfigDir}
	if s.Generation, err = e.store.Current(); err != nil {
		return nil, err
	}
	if s.Trial, err = e.readTrial(ns); err != nil {
		return nil, err
	}
	s.LastTrial, _ = e.trials(ns).LastOutcome()
	if in, _ := e.store.ReadIntent(ns); in != nil {
		// Its writer holds the lock until the outcome is recorded.
		if lock, err := ns.Lock(0, state.NewHolder(e.o.RunDir)); err != nil {
			s.InProgress = in
		} else {
			lock.Release()
			s.Interrupted = in
		}
	}
	e.readCounters(ctx, s)
	s.Names = e.nameStatus(s.Generation)
	if g, err := e.store.CurrentMeta(); err == nil && g != nil && g.Datastore != nil {
		s.Datastore = &DatastoreStatus{Type: g.Datastore.Type, Endpoints: g.Datastore.Endpoints, Revision: g.Datastore.Revision}
	}
	return s, nil
}

// readCounters fills Rules and Chains from the kernel's table (read, not
// planned from: counters move without a transaction), described with the
// chain comments of the current generation; when the table cannot be
// read, CountersError says why.
func (e *Engine) readCounters(ctx context.Context, s *Status) {
	if e.o.Kernel == nil {
		s.CountersError = "the kernel was not opened"
		return
	}
	live, _, err := e.o.Kernel.Read(ctx)
	if err != nil {
		s.CountersError = err.Error()
		return
	}
	var desired *ruleset.Table
	if s.Generation > 0 {
		var derr error
		if _, desired, derr = e.generationTable(e.store, s.Generation, true); derr != nil {
			s.Mismatch = fmt.Sprintf("the current generation %d cannot be read (%v): the state directory is damaged; hostwall generations lists what is recorded, and hostwall rollback N restores one", s.Generation, derr)
		} else if p := planner.Diff(desired, live); !p.Empty() {
			add, change, destroy := p.Summary()
			s.Mismatch = fmt.Sprintf("the kernel does not hold generation %d exactly (%d to add, %d to change, %d to destroy to make it so): plan --refresh shows the difference; the agent repairs it, or apply or rollback %d does",
				s.Generation, add, change, destroy, s.Generation)
		}
	}
	if live == nil {
		s.CountersError = "table inet hostwall does not exist"
		return
	}
	s.Rules = live.RuleCount()
	s.Chains = counters(live, desired)
	if desired != nil {
		counts := observe.NewIndex(s.Generation, desired).Counts(live.Chains)
		s.TopDrops, s.Staged = observe.TopDrops(counts, nil, TopDrops), observe.Staged(counts)
	}
}

// counters gathers the rule counters of the live table, described with
// the chain comments of desired (the current generation's table; nil for
// none). A chain's totals are those of its counting rules. A rule that
// looks a sharded set up through a dispatch map (docs/kernel.md, "Sharded
// sets") counts in the map's slot chains: their counters are added up as
// that rule's, and the slot chains are not listed.
func counters(live, desired *ruleset.Table) []ChainCount {
	if live == nil {
		return nil
	}
	chains := func(t *ruleset.Table) map[string]*ruleset.Chain { // by name: a sharded table has thousands
		out := map[string]*ruleset.Chain{}
		if t != nil {
			for _, ch := range t.Chains {
				out[ch.Name] = ch
			}
		}
		return out
	}
	liveChains, desiredChains := chains(live), chains(desired)
	slots := map[string][]*ruleset.Chain{} // a dispatch map's slot chains
	isSlot := map[string]bool{}
	for _, ch := range live.Chains {
		for _, r := range ch.Rules {
			if m := r.Verdict.Map; r.Verdict.Dispatches() && slots[m] == nil {
				for k := 0; ; k++ {
					sc := liveChains[ruleset.SlotChain(m, k)]
					if sc == nil {
						break
					}
					slots[m], isSlot[sc.Name] = append(slots[m], sc), true
				}
			}
		}
	}
	var dispatched func(m string, depth int) (packets, bytes uint64)
	dispatched = func(m string, depth int) (packets, bytes uint64) {
		for _, sc := range slots[m] {
			for _, r := range sc.Rules {
				switch {
				case r.Counter:
					packets, bytes = packets+r.Packets, bytes+r.Bytes
				case r.Verdict.Dispatches() && depth < 4:
					p, b := dispatched(r.Verdict.Map, depth+1)
					packets, bytes = packets+p, bytes+b
				}
			}
		}
		return packets, bytes
	}
	var out []ChainCount
	for _, ch := range live.Chains {
		if isSlot[ch.Name] {
			continue
		}
		cc := ChainCount{Chain: ch.Name}
		if d := desiredChains[ch.Name]; d != nil {
			cc.Description = d.Comment
		}
		for _, r := range ch.Rules {
			packets, bytes, text := r.Packets, r.Bytes, r.String()
			switch {
			case r.Verdict.Dispatches() && slots[r.Verdict.Map] != nil:
				packets, bytes = dispatched(r.Verdict.Map, 0)
				text += fmt.Sprintf(" (its %d slot chains)", len(slots[r.Verdict.Map]))
			case !r.Counter:
				continue
			}
			cc.Packets += packets
			cc.Bytes += bytes
			cc.Rules = append(cc.Rules, RuleCount{Rule: text, Packets: packets, Bytes: bytes})
		}
		if len(cc.Rules) > 0 {
			out = append(out, cc)
		}
	}
	return out
}
