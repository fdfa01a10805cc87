package agent

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hostwall/hostwall/observe"
	"github.com/hostwall/hostwall/ruleset"
)

// TestStagedDropsApart: the staged view's would-be drops are kept and
// journaled apart from the drops: a flood of them leaves the last drops
// and the journal's budget for drops alone, and their lines say what
// they are.
func TestStagedDropsApart(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	d := &Daemon{o: Options{Log: zap.New(core)}, drops: newDropHub()}
	tbl := ruleset.NewTable()
	g := uint16(9631)
	drop := &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "default", Policy: "web", Rule: 1, Action: "deny"}
	staged := &ruleset.Origin{Kind: ruleset.OriginPolicyRule, Direction: "ingress", Tier: "default", Policy: "web", Rule: 1, Action: "deny", Staged: true}
	tbl.Chains = append(tbl.Chains, &ruleset.Chain{Name: "c", Rules: []*ruleset.Rule{
		{Log: &ruleset.Log{Prefix: "hostwall drop default/web ingress/1", Group: &g}, Origin: drop},
		{Log: &ruleset.Log{Prefix: "hostwall staged default/web ingress/1", Group: &g}, Origin: staged},
	}})
	d.index.Store(observe.NewIndex(1, tbl))
	now := time.Now()
	d.Dropped(observe.Logged{Time: now, Prefix: "hostwall drop default/web ingress/1", In: "eth0"})
	for i := range 2 * journalBurst {
		d.Dropped(observe.Logged{Time: now.Add(time.Duration(i+1) * time.Millisecond), Prefix: "hostwall staged default/web ingress/1", In: "eth0"})
	}
	d.Dropped(observe.Logged{Time: now.Add(time.Second), Prefix: "hostwall drop default/web ingress/1", In: "eth0"})

	var drops, wouldBe int
	for _, dr := range d.drops.recentDrops() {
		if dr.Staged {
			wouldBe++
		} else {
			drops++
		}
	}
	if drops != 2 || wouldBe != keepDrops {
		t.Errorf("kept %d drops and %d would-be drops, want 2 and %d", drops, wouldBe, keepDrops)
	}
	events := map[string]int{}
	for _, e := range logs.All() {
		events[e.ContextMap()["HOSTWALL_EVENT"].(string)]++
	}
	if events["drop"] != 2 || events["staged"] != journalBurst {
		t.Errorf("journaled %v, want both drops and %d would-be drops (the burst)", events, journalBurst)
	}
}
