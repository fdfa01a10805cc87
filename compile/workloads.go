package compile

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/ruleset"
)

// ChainWorkloadToHost decides new traffic from workload interfaces to this
// host; OwnerWorkloads owns it.
const (
	ChainWorkloadToHost = "workload-to-host"
	OwnerWorkloads      = "workloads"
)

// workloadRules adds to a base chain, after its map of host endpoints and
// before any wildcard endpoint, one rule per workload interface prefix:
// arriving for this host, to the workload-to-host chain; leaving to a
// workload, or arriving at the pre-DNAT stage, accepted (host to workload
// always passes, and pre-DNAT policies are for host endpoints). A
// workload interface is never in the map (checkWorkloads), so only the
// wildcard endpoint would otherwise see it.
func (c *compiler) workloadRules(base *ruleset.Chain, d dirInfo) {
	w := c.cfg.Workloads
	if len(w.Prefixes) == 0 {
		return
	}
	v := ruleset.Accept()
	if d.dir == config.Ingress && d.stage == stageNormal {
		v = ruleset.Jump(c.workloadToHost())
	}
	for _, p := range w.Prefixes {
		base.Rules = append(base.Rules, &ruleset.Rule{Matches: []ruleset.Match{ruleset.IfName{Dir: d.ifDir, Name: p, Prefix: true}}, Verdict: v})
	}
}

// workloadToHost emits (once) the chain that decides new traffic from a
// workload to the host, as Felix's cali-wl-to-host does for a workload
// whose egress policy let it by: the ICMPv6 messages IPv6 needs, invalid
// drop, then the configured action. No failsafe port applies: Felix's
// failsafe chains belong to host endpoints.
func (c *compiler) workloadToHost() string {
	if c.t.Chain(ChainWorkloadToHost) != nil {
		return ChainWorkloadToHost
	}
	w := c.cfg.Workloads
	outer := c.owner
	defer func() { c.owner = outer }()
	c.owner = OwnerWorkloads
	ch := &ruleset.Chain{Name: ChainWorkloadToHost, Owner: OwnerWorkloads, Comment: WorkloadsSummary(w)}
	for _, typ := range config.WorkloadICMPv6Types {
		ch.Rules = append(ch.Rules, &ruleset.Rule{Matches: []ruleset.Match{ruleset.ICMPType{Family: ruleset.IPv6, Type: typ}}, Verdict: ruleset.Accept()})
	}
	ch.Rules = append(ch.Rules, dropInvalid())
	switch w.Action() {
	case config.ToHostAccept:
		ch.Rules = append(ch.Rules, &ruleset.Rule{Counter: true, Verdict: ruleset.Accept(),
			Origin: &ruleset.Origin{Kind: ruleset.OriginWorkload, Direction: string(config.Ingress), Action: string(config.Allow)}})
	case config.ToHostReturn:
		ch.Rules = append(ch.Rules, &ruleset.Rule{Verdict: ruleset.Verdict{Kind: ruleset.VerdictReturn}})
	default:
		c.withDropLog(ch, &ruleset.Rule{Counter: true, Verdict: ruleset.Drop(),
			Origin: &ruleset.Origin{Kind: ruleset.OriginWorkload, Direction: string(config.Ingress), Action: string(config.Deny)}})
	}
	c.t.Chains = append(c.t.Chains, ch)
	return ch.Name
}

// WorkloadsSummary says, in one line, which interfaces are workloads' and
// what their new traffic to this host meets; plans show it as the
// workload-to-host chain's comment.
func WorkloadsSummary(w config.Workloads) string {
	what := map[config.ToHostAction]string{
		config.ToHostDrop:   "dropped",
		config.ToHostAccept: "accepted",
		config.ToHostReturn: "handed on to the wildcard host endpoint, if any",
	}[w.Action()]
	return fmt.Sprintf("workload interfaces %s: new traffic to this host is %s (%s %s); the host may always reach them",
		strings.Join(globs(w.Prefixes), ", "), what, w.ActionField(), w.Action())
}

// checkWorkloads refuses a host endpoint of this host on a workload
// interface, naming both, and warns of an action without interfaces and of
// pre-DNAT policies of the wildcard endpoint, which workload traffic skips.
func (c *compiler) checkWorkloads(heps, wildcard []*config.HostEndpoint) {
	w := c.cfg.Workloads
	if len(w.Prefixes) == 0 {
		if w.ToHost != "" && w.DeclRange != (hcl.Range{}) {
			c.diags = append(c.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Workload action without workload interfaces",
				Detail: fmt.Sprintf("to_host_action %q is set, but no interface prefix names workload interfaces on host %q, so it applies to nothing. Give interface_prefixes.",
					w.ToHost, c.opts.HostName),
				Subject: w.DeclRange.Ptr(),
			})
		}
		return
	}
	prefixField := w.PrefixesField()
	for _, hep := range heps {
		p, ok := w.Match(hep.Interface)
		if !ok {
			continue
		}
		iface := "interface"
		if hep.Calico {
			iface = "spec.interfaceName"
		}
		given := fmt.Sprintf("%s, at %s", prefixField, w.DeclRange)
		fix := fmt.Sprintf("take %q out of %s", p, prefixField)
		if w.DefaultPrefix {
			given = fmt.Sprintf("Felix's default interfacePrefix, in force as the FelixConfiguration at %s sets defaultEndpointToHostAction and no interfacePrefix", w.DeclRange)
			fix = "set interfacePrefix to the prefixes of your workload interfaces"
		}
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Host endpoint on a workload interface",
			Detail: fmt.Sprintf("Host endpoint %q has %s %q, which workload prefix %q (%s) makes a workload interface; a workload interface is never a host endpoint, as in Calico. "+
				"Protect the host's own interfaces with host endpoints, or %s.",
				hep.Name, iface, hep.Interface, p, given, fix),
			Subject: hep.DeclRange.Ptr(),
		})
	}
	if len(wildcard) > 0 && c.cfg.HasPreDNATPolicies() {
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Pre-DNAT policies do not see workload traffic",
			Detail: fmt.Sprintf("Traffic arriving on the workload interfaces (%s) skips the pre-DNAT policies of host endpoint %q, for this host and routed alike, as in Felix, whose pre-DNAT policies are for host endpoints only. Police routed workload traffic with apply_on_forward policies.",
				strings.Join(globs(w.Prefixes), ", "), wildcard[0].Name),
			Subject: w.DeclRange.Ptr(),
		})
	}
}

// globs is each prefix as nft's wildcard name.
func globs(prefixes []string) []string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = p + "*"
	}
	return out
}
