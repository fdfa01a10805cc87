package agent

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// TestStagedDropsApart: the staged view's would-be drops and what audit
// mode lets by are kept and journaled apart from the drops: a flood of
// them leaves the last drops and the journal's budget for drops alone,
// and their lines say what they are.
func TestStagedDropsApart(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	d := &Daemon{o: Options{Log: zap.New(core)}, drops: newDropHub()}
	tbl := ruleset.NewTable()
	g := uint16(9631)
	drop := &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "default", Policy: "web", Rule: 1, Action: "deny"}
	staged := &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "default", Policy: "web", Rule: 1, Action: "deny", Staged: true}
	audited := &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "default", Policy: "web", Rule: 1, Action: "deny", Audit: true}
	tbl.Chains = append(tbl.Chains, &ruleset.Chain{Name: "c", Rules: []*ruleset.Rule{
		{Log: &ruleset.Log{Prefix: "hostwall drop default/web ingress/1", Group: &g}, Origin: drop},
		{Log: &ruleset.Log{Prefix: "hostwall staged default/web ingress/1", Group: &g}, Origin: staged},
		{Log: &ruleset.Log{Prefix: "hostwall audit default/web ingress/1", Group: &g}, Origin: audited},
	}})
	d.index.Store(observe.NewIndex(1, tbl))
	now := time.Now()
	d.Dropped(observe.Logged{Time: now, Prefix: "hostwall drop default/web ingress/1", In: "eth0"})
	for i := range 2 * journalBurst {
		at := now.Add(time.Duration(i+1) * time.Millisecond)
		d.Dropped(observe.Logged{Time: at, Prefix: "hostwall staged default/web ingress/1", In: "eth0"})
		d.Dropped(observe.Logged{Time: at, Prefix: "hostwall audit default/web ingress/1", In: "eth0"})
	}
	d.Dropped(observe.Logged{Time: now.Add(time.Second), Prefix: "hostwall drop default/web ingress/1", In: "eth0"})

	var drops, audit, wouldBe int
	for _, dr := range d.drops.recentDrops() {
		switch {
		case dr.Staged:
			wouldBe++
		case dr.Audit:
			audit++
		default:
			drops++
		}
	}
	if drops != 2 || audit != keepDrops || wouldBe != keepDrops {
		t.Errorf("kept %d drops, %d audited and %d would-be drops, want 2, %d and %d", drops, audit, wouldBe, keepDrops, keepDrops)
	}
	events := map[string]int{}
	for _, e := range logs.All() {
		events[e.ContextMap()["HOSTWALL_EVENT"].(string)]++
	}
	if events["drop"] != 2 || events["staged"] != journalBurst || events["audit"] != journalBurst {
		t.Errorf("journaled %v, want both drops and %d audited and would-be drops each (the burst)", events, journalBurst)
	}
}
