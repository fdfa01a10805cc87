// Package metrics is hostwall's Prometheus metrics: the agent's own
// (applies, generation, configuration validity, drift repairs, trial, the
// drop log) and the kernel's rule counters summed by what they enforce
// (per policy and direction; per rule behind a flag; per host endpoint
// the drops at the end of a tier and at the default deny; failsafe hits)
// with set sizes. docs/observability.md lists every series.
package metrics

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/resolve"
	"github.com/hostwall/hostwall/ruleset"
)

const namespace = "hostwall"

// State is where the host stands: the generation in force, whether the
// configuration loads, the trial. The agent's metrics hold one; hostwall
// status --format prometheus without an agent makes one alone.
type State struct {
	generation    prometheus.Gauge
	configValid   prometheus.Gauge
	trialActive   prometheus.Gauge
	trialDeadline prometheus.Gauge
	// The domain names: addresses each has, and whether it is stale.
	domainAddrs *prometheus.GaugeVec
	domainStale *prometheus.GaugeVec
}

// NewState makes the state's gauges and registers them with reg.
func NewState(reg prometheus.Registerer) *State {
	s := &State{
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "generation",
			Help: "The generation in force."}),
		configValid: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_valid",
			Help: "1 when the configuration directory loaded at the last attempt, 0 when it did not (the last good generation stays in force)."}),
		trialActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "trial_active",
			Help: "1 while a generation is on trial (rolled back unless confirmed)."}),
		trialDeadline: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "trial_deadline_timestamp_seconds",
			Help: "When the pending trial rolls back unless confirmed (Unix time); 0 without a trial."}),
		domainAddrs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "domain_addresses",
			Help: "The addresses a domain name of the policies has in force (0: its rules match nothing)."}, []string{"name"}),
		domainStale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "domain_stale",
			Help: "1 when a domain name no longer resolves and keeps its last known addresses."}, []string{"name"}),
	}
	reg.MustRegister(s.generation, s.configValid, s.trialActive, s.trialDeadline, s.domainAddrs, s.domainStale)
	return s
}

// Names sets the domain names' gauges (resolve.Answer: addresses, and
// Stale), forgetting names no longer configured.
func (s *State) Names(names []resolve.Answer) {
	s.domainAddrs.Reset()
	s.domainStale.Reset()
	for _, a := range names {
		s.domainAddrs.WithLabelValues(a.Name).Set(float64(len(a.Addrs)))
		stale := 0.0
		if a.Stale != "" {
			stale = 1
		}
		s.domainStale.WithLabelValues(a.Name).Set(stale)
	}
}

// Set sets the generation in force and the trial (zero deadline: none).
func (s *State) Set(generation int, trialDeadline time.Time) {
	s.generation.Set(float64(generation))
	if trialDeadline.IsZero() {
		s.trialActive.Set(0)
		s.trialDeadline.Set(0)
		return
	}
	s.trialActive.Set(1)
	s.trialDeadline.Set(float64(trialDeadline.UnixNano()) / 1e9)
}

// Valid says whether the configuration loads.
func (s *State) Valid(ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	s.configValid.Set(v)
}

// Agent holds the agent's own metrics; the daemon updates them. A nil
// *Agent updates nothing.
type Agent struct {
	state         *State
	applies       *prometheus.CounterVec
	applyDuration prometheus.Histogram
	lastSuccess   prometheus.Gauge
	driftRepairs  prometheus.Counter
	verifications *prometheus.CounterVec
	dropsLogged   prometheus.Counter
	dropsLost     prometheus.Counter
	dropsJournal  prometheus.Counter
	textfileFails prometheus.Counter
	// reg registers the datastore's gauges, when the agent follows one.
	reg prometheus.Registerer
}

// NewAgent makes the agent's metrics and registers them with reg.
func NewAgent(reg prometheus.Registerer) *Agent {
	a := &Agent{
		state: NewState(reg),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "applies_total",
			Help: "Applies of the configuration directory by the agent, by result (success: the kernel holds it, changed or not; invalid: the files do not load; failed; held: a trial is pending) and trigger (start, change, reload, retry, trial_end)."},
			[]string{"result", "trigger"}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "apply_duration_seconds",
			Help:    "How long the agent's applies took, from reading the files to the kernel holding the change.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_apply_success_timestamp_seconds",
			Help: "When the agent last applied the configuration with success (Unix time); 0 before the first."}),
		driftRepairs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "drift_repairs_total",
			Help: "Repairs of changes other programs made to table inet hostwall."}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "verifications_total",
			Help: "Checks that the kernel holds the generation in force, by result (held, repaired, failed)."}, []string{"result"}),
		dropsLogged: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "drop_log_packets_total",
			Help: "Dropped packets the drop log (NFLOG) handed to the agent; the kernel sends at most settings.drop_log_rate a second for each deciding rule."}),
		dropsLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "drop_log_overruns_total",
			Help: "Times the kernel could not hand the agent a logged packet because it fell behind (ENOBUFS)."}),
		dropsJournal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "drop_log_unjournaled_total",
			Help: "Logged drops left out of the journal by its rate limit."}),
		textfileFails: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "metrics_textfile_errors_total",
			Help: "Times the agent could not write --metrics-textfile (the log says why)."}),
	}
	reg.MustRegister(a.applies, a.applyDuration, a.lastSuccess, a.driftRepairs, a.verifications,
		a.dropsLogged, a.dropsLost, a.dropsJournal, a.textfileFails)
	a.reg = reg
	return a
}

// DatastoreState is where the agent's etcd datastore stands: the revision
// applied, when etcd last confirmed the agent current (zero: never),
// whether it answers, and the full lists after the first.
type DatastoreState struct {
	Applied int64
	Synced  time.Time
	Up      bool
	Relists int
}

// FollowDatastore registers the etcd datastore's gauges, read from state
// at each scrape: how stale enforcement may be is time() minus
// hostwall_datastore_synced_timestamp_seconds.
func (a *Agent) FollowDatastore(state func() DatastoreState) {
	if a == nil {
		return
	}
	gauge := func(name, help string, v func(DatastoreState) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, func() float64 { return v(state()) })
	}
	a.reg.MustRegister(
		gauge("datastore_revision", "The etcd revision of the datastore resources last applied.",
			func(s DatastoreState) float64 { return float64(s.Applied) }),
		gauge("datastore_synced_timestamp_seconds", "When etcd last confirmed the agent has read every change (Unix time; 0: never). time() minus it is how stale enforcement may be.",
			func(s DatastoreState) float64 {
				if s.Synced.IsZero() {
					return 0
				}
				return float64(s.Synced.UnixNano()) / 1e9
			}),
		gauge("datastore_up", "1 when the etcd datastore answers, 0 while it does not (the agent keeps enforcing what it last read).",
			func(s DatastoreState) float64 {
				if s.Up {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "datastore_relists_total",
			Help: "Full lists of the datastore after the first, since the agent started (after a compaction, a loss of etcd, or etcd rebuilt or restored)."},
			func() float64 { return float64(state().Relists) }))
}

// Applied records an apply: its result ("success", "invalid", "failed",
// "held"), what triggered it, and how long it took.
func (a *Agent) Applied(result, trigger string, took time.Duration) {
	if a == nil {
		return
	}
	a.applies.WithLabelValues(result, trigger).Inc()
	a.applyDuration.Observe(took.Seconds())
	switch result {
	case "success":
		a.lastSuccess.SetToCurrentTime()
		a.state.Valid(true)
	case "invalid":
		a.state.Valid(false)
	case "held", "failed": // the files loaded; a trial held them, or the kernel failed
		a.state.Valid(true)
	}
}

// Verified records a check of the kernel: "held", "repaired" or "failed".
func (a *Agent) Verified(result string) {
	if a == nil {
		return
	}
	a.verifications.WithLabelValues(result).Inc()
	if result == "repaired" {
		a.driftRepairs.Inc()
	}
}

// State sets the generation in force and the trial (zero deadline: none).
func (a *Agent) State(generation int, trialDeadline time.Time) {
	if a != nil {
		a.state.Set(generation, trialDeadline)
	}
}

// Names sets the domain names' gauges.
func (a *Agent) Names(names []resolve.Answer) {
	if a != nil {
		a.state.Names(names)
	}
}

// DropLogged counts a packet the drop log handed over; DropLost an
// overrun; DropUnjournaled one the journal's rate limit left out.
func (a *Agent) DropLogged() {
	if a != nil {
		a.dropsLogged.Inc()
	}
}

// DropLost counts an overrun of the drop log.
func (a *Agent) DropLost() {
	if a != nil {
		a.dropsLost.Inc()
	}
}

// TextfileFailed counts a failed write of the metrics file.
func (a *Agent) TextfileFailed() {
	if a != nil {
		a.textfileFails.Inc()
	}
}

// DropUnjournaled counts a drop the journal's rate limit left out.
func (a *Agent) DropUnjournaled() {
	if a != nil {
		a.dropsJournal.Inc()
	}
}

// Trigger is the trigger label of an apply the agent made for why.
func Trigger(why string) string {
	switch {
	case why == "start":
		return "start"
	case why == "reload":
		return "reload"
	case strings.HasPrefix(why, "retrying"):
		return "retry"
	case strings.HasPrefix(why, "the trial"):
		return "trial_end"
	case strings.HasPrefix(why, "domain names"):
		return "names"
	case strings.HasPrefix(why, "the etcd datastore"):
		return "datastore"
	}
	return "change"
}

// Kernel collects the kernel's counters at each scrape: Read reads the
// live chains (rules and counters, no set elements), Index indexes the
// generation in force. With PerRule, each policy rule is a series of its
// own too. Safe for concurrent use.
type Kernel struct {
	Read    func(ctx context.Context) ([]*ruleset.Chain, error)
	Index   func() (*observe.Index, error)
	PerRule bool
	// Timeout bounds a scrape's read (default 10 s).
	Timeout time.Duration
	// Monotonic keeps the counts growing across rule replacements (the
	// agent, which also samples before and after each change); without
	// it, the kernel's current counts are reported (a one-off report).
	Monotonic bool
	totals    observe.Totals

	mu sync.Mutex
	// last is the last sample and when it began: a scrape that waited for
	// it takes it (scrapes at once cost one read, never a stale one).
	last struct {
		at     time.Time
		x      *observe.Index
		counts map[ruleset.Origin]observe.Count
		err    error
	}
	// base is the first sample's counts and when it was taken: TopDrops
	// counts from there.
	base      map[ruleset.Origin]observe.Count
	baseSince time.Time
}

// errNoTable is a sample of a namespace without table inet hostwall.
var errNoTable = errors.New("table inet hostwall does not exist")

// Sample reads the kernel's counters now (the agent calls it before and
// after each change, so that what a rule the change replaces counted is
// kept), and returns the counts.
func (k *Kernel) Sample(ctx context.Context) (*observe.Index, map[ruleset.Origin]observe.Count, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sampleLocked(ctx)
}

func (k *Kernel) sampleLocked(ctx context.Context) (*observe.Index, map[ruleset.Origin]observe.Count, error) {
	began := time.Now()
	x, err := k.Index()
	var live []*ruleset.Chain
	if err == nil {
		live, err = k.Read(ctx)
	}
	if err == nil && len(live) == 0 {
		err = errNoTable
	}
	var counts map[ruleset.Origin]observe.Count
	switch {
	case err != nil:
	case k.Monotonic:
		counts = k.totals.Update(x, live)
	default:
		counts = x.Counts(live)
	}
	if err == nil && k.base == nil {
		k.base, k.baseSince = counts, time.Now()
	}
	k.last.at, k.last.x, k.last.counts, k.last.err = began, x, counts, err
	return x, counts, err
}

// TopDrops are the n deciders that dropped the most since the first
// sample, and when that was (zero: no sample yet).
func (k *Kernel) TopDrops(ctx context.Context, n int) ([]observe.DropCount, time.Time, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, counts, err := k.sampleLocked(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	return observe.TopDrops(counts, k.base, n), k.baseSince, nil
}

var (
	labelsPolicy   = []string{"tier", "policy", "direction"}
	labelsRule     = []string{"tier", "policy", "direction", "rule", "action"}
	labelsEndpoint = []string{"endpoint", "direction", "reason", "tier"}
	descPolicyPkts = prometheus.NewDesc("hostwall_policy_packets_total",
		"Packets the rules of a policy decided (allow, deny, pass or log), summed over its rules, per direction.", labelsPolicy, nil)
	descPolicyBytes = prometheus.NewDesc("hostwall_policy_bytes_total",
		"Bytes the rules of a policy decided, summed over its rules, per direction.", labelsPolicy, nil)
	descRulePkts = prometheus.NewDesc("hostwall_rule_packets_total",
		"Packets one policy rule decided (rule: its position among the policy's rules of the direction, from 1). Only with --metrics-per-rule.", labelsRule, nil)
	descRuleBytes = prometheus.NewDesc("hostwall_rule_bytes_total",
		"Bytes one policy rule decided. Only with --metrics-per-rule.", labelsRule, nil)
	descEndpointPkts = prometheus.NewDesc("hostwall_endpoint_dropped_packets_total",
		"Packets of a host endpoint dropped before or after its policies: at the end of a tier (reason end_of_tier, with the tier), at the default deny (default_deny), or as invalid for connection tracking (invalid: never logged).", labelsEndpoint, nil)
	descEndpointBytes = prometheus.NewDesc("hostwall_endpoint_dropped_bytes_total",
		"Bytes of a host endpoint dropped because no policy decided.", labelsEndpoint, nil)
	descAuditPkts = prometheus.NewDesc("hostwall_endpoint_audited_packets_total",
		"Packets of a host endpoint in audit mode that no policy decided, which it accepted where enforcing would have dropped them (reason end_of_tier, with the tier, or default_deny). A policy's audited denies count in hostwall_policy_packets_total.", labelsEndpoint, nil)
	descAuditBytes = prometheus.NewDesc("hostwall_endpoint_audited_bytes_total",
		"Bytes of those packets.", labelsEndpoint, nil)
	descFailsafePkts = prometheus.NewDesc("hostwall_failsafe_packets_total",
		"Packets accepted by a failsafe entry, whatever the policies say, per direction.", []string{"direction"}, nil)
	descFailsafeBytes = prometheus.NewDesc("hostwall_failsafe_bytes_total",
		"Bytes accepted by a failsafe entry, per direction.", []string{"direction"}, nil)
	descWorkloadPkts = prometheus.NewDesc("hostwall_workload_to_host_packets_total",
		"Packets from workloads to this host decided by the workloads' to_host_action.", []string{"action"}, nil)
	descSetElements = prometheus.NewDesc("hostwall_set_elements",
		"Elements (addresses, networks, ports) of a set of the generation in force; a sharded set's slots count as the one set.", []string{"set"}, nil)
	descStagedPkts = prometheus.NewDesc("hostwall_staged_changed_packets_total",
		"Packets on which the staged view disagrees with the enforced one, per host endpoint and direction: change=\"would_drop\" the staged view would drop what is allowed now, \"would_allow\" it would allow what is dropped now.", []string{"endpoint", "direction", "change"}, nil)
	descStagedPolicyPkts = prometheus.NewDesc("hostwall_staged_policy_packets_total",
		"Packets a staged policy's rules would decide (allow or deny), per direction.", []string{"tier", "policy", "direction"}, nil)
	descStagedPolicyChanged = prometheus.NewDesc("hostwall_staged_policy_changed_packets_total",
		"Packets a staged policy's rules would decide otherwise than the enforced policies do now, per direction and change (would_drop, would_allow).", []string{"tier", "policy", "direction", "change"}, nil)
	descCountersUp = prometheus.NewDesc("hostwall_kernel_counters_up",
		"1 when this scrape read the kernel's counters, 0 when it could not or table inet hostwall does not exist (the other kernel series are then missing).", nil, nil)
)

// Describe sends nothing: Kernel is an unchecked collector (its series
// follow the configuration).
func (k *Kernel) Describe(chan<- *prometheus.Desc) {}

// Collect reads the kernel (or takes the sample that began while it
// waited for the last one) and sends the series.
func (k *Kernel) Collect(ch chan<- prometheus.Metric) {
	asked := time.Now()
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	k.mu.Lock()
	x, counts, err := k.last.x, k.last.counts, k.last.err
	if err != nil || k.last.at.Before(asked) {
		x, counts, err = k.sampleLocked(ctx)
	}
	k.mu.Unlock()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descCountersUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descCountersUp, prometheus.GaugeValue, 1)
	for _, s := range Series(x, counts, k.PerRule) {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, s.value, s.labels...)
	}
	for _, s := range x.Sets() {
		ch <- prometheus.MustNewConstMetric(descSetElements, prometheus.GaugeValue, float64(s.Elements), s.Name)
	}
}

// series is one sample.
type series struct {
	desc   *prometheus.Desc
	labels []string
	value  float64
}

// Series sums counts into the kernel series; a rule's own series (with
// perRule) only for the rules x has (a position a policy no longer has
// goes, its count staying in the policy's sum).
func Series(x *observe.Index, counts map[ruleset.Origin]observe.Count, perRule bool) []series {
	type key struct {
		desc   *prometheus.Desc
		labels string
	}
	sums := map[key]float64{}
	labels := map[key][]string{}
	add := func(d *prometheus.Desc, v uint64, ls ...string) {
		k := key{d, strings.Join(ls, "\x00")}
		sums[k] += float64(v)
		labels[k] = ls
	}
	both := func(pkts, bytes *prometheus.Desc, c observe.Count, ls ...string) {
		add(pkts, c.Packets, ls...)
		add(bytes, c.Bytes, ls...)
	}
	// endpoint adds a drop of o's endpoint for reason: an audited one (an
	// endpoint in audit mode accepted it) in the audited series.
	endpoint := func(o ruleset.Origin, c observe.Count, reason, tier string) {
		if o.Audit {
			both(descAuditPkts, descAuditBytes, c, o.Endpoint, o.Direction, reason, tier)
		} else {
			both(descEndpointPkts, descEndpointBytes, c, o.Endpoint, o.Direction, reason, tier)
		}
	}
	for o, c := range counts {
		switch o.Kind {
		case ruleset.OriginPolicyRule:
			if o.Staged {
				add(descStagedPolicyPkts, c.Packets, o.Tier, o.Policy, o.Direction)
				continue
			}
			both(descPolicyPkts, descPolicyBytes, c, o.Tier, o.Policy, o.Direction)
			if perRule && x.Has(o) {
				both(descRulePkts, descRuleBytes, c, o.Tier, o.Policy, o.Direction, strconv.Itoa(o.Rule), o.Action)
			}
		case ruleset.OriginEndOfTier:
			if o.Action == "deny" {
				endpoint(o, c, "end_of_tier", o.Tier)
			}
		case ruleset.OriginDefaultDeny:
			endpoint(o, c, "default_deny", "")
		case ruleset.OriginInvalid:
			endpoint(o, c, "invalid", "")
		case ruleset.OriginFailsafe:
			both(descFailsafePkts, descFailsafeBytes, c, o.Direction)
		case ruleset.OriginWorkload:
			add(descWorkloadPkts, c.Packets, o.Action)
		case ruleset.OriginStagedChange:
			change := "would_allow"
			if o.Action == "deny" {
				change = "would_drop"
			}
			if o.Policy != "" {
				add(descStagedPolicyChanged, c.Packets, o.Tier, o.Policy, o.Direction, change)
			} else {
				add(descStagedPkts, c.Packets, o.Endpoint, o.Direction, change)
			}
		}
	}
	out := make([]series, 0, len(sums))
	for k, v := range sums {
		out = append(out, series{desc: k.desc, labels: labels[k], value: v})
	}
	return out
}

// Registry is a registry with the process's and the Go runtime's
// metrics (memory, CPU, file descriptors).
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}

// Text gathers g in Prometheus's text format.
func Text(g prometheus.Gatherer) (string, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return "", err
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
