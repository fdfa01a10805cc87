package loader

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/goccy/go-yaml"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/hostwall/hostwall/config"
)

// WriteHCL renders a configuration as native HCL. Loading the result gives
// the same configuration.
func WriteHCL(cfg *config.Config) []byte {
	f := hclwrite.NewEmptyFile()
	root := f.Body()
	for _, obj := range objects(cfg) {
		blk := root.AppendNewBlock(obj.typ, obj.labels)
		writeHCLBody(blk.Body(), obj.fields)
		root.AppendNewline()
	}
	return hclwrite.Format(f.Bytes())
}

func writeHCLBody(b *hclwrite.Body, fields []field) {
	for _, fl := range fields {
		switch v := fl.value.(type) {
		case []field:
			writeHCLBody(b.AppendNewBlock(fl.name, nil).Body(), v)
		case [][]field:
			for _, blk := range v {
				writeHCLBody(b.AppendNewBlock(fl.name, nil).Body(), blk)
			}
		case cty.Value:
			b.SetAttributeValue(fl.name, v)
		}
	}
}

// WriteYAML renders a configuration as native YAML.
func WriteYAML(cfg *config.Config) ([]byte, error) {
	// Native YAML keys policies by name: a staged policy beside the
	// enforced one of its name has no place there.
	names := map[string]bool{}
	for _, p := range cfg.Policies {
		if names[p.Name] {
			return nil, fmt.Errorf("policy %q is both enforced and staged, which native YAML (policies keyed by name) cannot hold: convert --to hcl", p.Name)
		}
		names[p.Name] = true
	}
	var doc yaml.MapSlice
	for _, obj := range objects(cfg) {
		body := yamlFields(obj.fields)
		if len(obj.labels) == 0 {
			// A block given more than once (failsafe and workloads with
			// their node overrides) is a sequence of mappings.
			switch i := slices.IndexFunc(doc, func(it yaml.MapItem) bool { return it.Key == obj.typ }); {
			case i < 0:
				doc = append(doc, yaml.MapItem{Key: obj.typ, Value: body})
			default:
				if first, ok := doc[i].Value.(yaml.MapSlice); ok {
					doc[i].Value = []yaml.MapSlice{first}
				}
				doc[i].Value = append(doc[i].Value.([]yaml.MapSlice), body)
			}
			continue
		}
		// Labelled blocks of one type gather under one key.
		i := slices.IndexFunc(doc, func(it yaml.MapItem) bool { return it.Key == obj.typ })
		if i < 0 {
			doc = append(doc, yaml.MapItem{Key: obj.typ, Value: yaml.MapSlice{}})
			i = len(doc) - 1
		}
		doc[i].Value = append(doc[i].Value.(yaml.MapSlice), yaml.MapItem{Key: obj.labels[0], Value: body})
	}
	return yaml.MarshalWithOptions(doc, yaml.IndentSequence(true))
}

func yamlFields(fields []field) yaml.MapSlice {
	out := yaml.MapSlice{}
	for _, fl := range fields {
		switch v := fl.value.(type) {
		case []field:
			out = append(out, yaml.MapItem{Key: fl.name, Value: yamlFields(v)})
		case [][]field:
			var list []yaml.MapSlice
			for _, blk := range v {
				list = append(list, yamlFields(blk))
			}
			out = append(out, yaml.MapItem{Key: fl.name, Value: list})
		case cty.Value:
			out = append(out, yaml.MapItem{Key: fl.name, Value: ctyToGo(v)})
		}
	}
	return out
}

func ctyToGo(v cty.Value) any {
	switch {
	case v.Type() == cty.String:
		return v.AsString()
	case v.Type() == cty.Bool:
		return v.True()
	case v.Type() == cty.Number:
		if i, acc := v.AsBigFloat().Int64(); acc == 0 {
			return i
		}
		f, _ := v.AsBigFloat().Float64()
		return f
	case v.Type().IsTupleType() || v.Type().IsListType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, ctyToGo(e))
		}
		return out
	case v.Type().IsObjectType() || v.Type().IsMapType():
		out := yaml.MapSlice{}
		var keys []string
		for k := range v.AsValueMap() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, yaml.MapItem{Key: k, Value: ctyToGo(v.GetAttr(k))})
		}
		return out
	}
	return nil
}

// object is one top-level block, format-neutral.
type object struct {
	typ    string
	labels []string
	fields []field
}

// field is an attribute (cty.Value), a nested block ([]field) or repeated
// blocks ([][]field).
type field struct {
	name  string
	value any
}

// workloadObjects are the workloads blocks: the general one and each
// node's, with Calico's default prefix written out where a
// FelixConfiguration relied on it.
func workloadObjects(cfg *config.Config) []object {
	var out []object
	if w := cfg.Workloads; w.DeclRange.Filename != "" {
		prefixes := w.Prefixes
		if prefixes == nil {
			prefixes = []string{config.CalicoDefaultPrefix}
		}
		fs := []field{{"interface_prefixes", strs(prefixes)}}
		if w.ToHost != "" {
			fs = append(fs, field{"to_host_action", cty.StringVal(string(w.ToHost))})
		}
		out = append(out, object{typ: "workloads", fields: fs})
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.NodeWorkloads)) {
		o := cfg.NodeWorkloads[n]
		fs := []field{{"node", cty.StringVal(n)}}
		switch {
		case o.Prefixes != nil:
			fs = append(fs, field{"interface_prefixes", strs(*o.Prefixes)})
		case o.Calico && cfg.Workloads.DeclRange.Filename == "":
			fs = append(fs, field{"interface_prefixes", strs(cfg.ForHost(n).Workloads.Prefixes)})
		}
		if o.ToHost != "" {
			fs = append(fs, field{"to_host_action", cty.StringVal(string(o.ToHost))})
		}
		out = append(out, object{typ: "workloads", fields: fs})
	}
	return out
}

func strs(xs []string) cty.Value {
	if len(xs) == 0 {
		return cty.EmptyTupleVal
	}
	vals := make([]cty.Value, len(xs))
	for i, x := range xs {
		vals[i] = cty.StringVal(x)
	}
	return cty.TupleVal(vals)
}

func labelsVal(l map[string]string) cty.Value {
	if len(l) == 0 {
		return cty.EmptyObjectVal
	}
	m := map[string]cty.Value{}
	for k, v := range l {
		m[k] = cty.StringVal(v)
	}
	return cty.ObjectVal(m)
}

func stringers[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

func portsVal(ps []config.PortRange, names []string) cty.Value {
	var vals []cty.Value
	for _, p := range ps {
		if p.Lo == p.Hi {
			vals = append(vals, cty.NumberIntVal(int64(p.Lo)))
		} else {
			vals = append(vals, cty.StringVal(fmt.Sprintf("%d:%d", p.Lo, p.Hi)))
		}
	}
	for _, n := range names {
		vals = append(vals, cty.StringVal(n))
	}
	return cty.TupleVal(vals)
}

func objects(cfg *config.Config) []object {
	var out []object
	if h := cfg.Host; h != nil {
		var fs []field
		if h.Name != "" {
			fs = append(fs, field{"name", cty.StringVal(h.Name)})
		}
		fs = append(fs, field{"labels", labelsVal(h.Labels)})
		if len(h.DNSServers) > 0 {
			fs = append(fs, field{"dns_servers", strs(h.DNSServers)})
		}
		out = append(out, object{typ: "host", fields: fs})
	}
	for _, h := range cfg.Endpoints {
		fs := []field{{"interface", cty.StringVal(h.Interface)}}
		if h.Node != "" {
			fs = append(fs, field{"node", cty.StringVal(h.Node)})
		}
		if len(h.Labels) > 0 {
			fs = append(fs, field{"labels", labelsVal(h.Labels)})
		}
		if len(h.ExpectedIPs) > 0 {
			fs = append(fs, field{"expected_ips", strs(stringers(h.ExpectedIPs))})
		}
		if len(h.Profiles) > 0 {
			fs = append(fs, field{"profiles", strs(h.Profiles)})
		}
		if len(h.Ports) > 0 {
			var ports []cty.Value
			for _, p := range h.Ports {
				ports = append(ports, cty.ObjectVal(map[string]cty.Value{
					"name": cty.StringVal(p.Name), "port": cty.NumberIntVal(int64(p.Port)),
					"protocol": cty.StringVal(map[uint8]string{config.ProtoTCP: "tcp", config.ProtoUDP: "udp", config.ProtoSCTP: "sctp"}[p.Protocol]),
				}))
			}
			fs = append(fs, field{"ports", cty.TupleVal(ports)})
		}
		if h.Audit {
			fs = append(fs, field{"mode", cty.StringVal("audit")})
		}
		out = append(out, object{typ: "host_endpoint", labels: []string{h.Name}, fields: fs})
	}
	for _, n := range cfg.NetworkSets {
		fs := []field{{"labels", labelsVal(n.Labels)}, {"nets", strs(stringers(n.Nets))}}
		if len(n.Domains) > 0 {
			fs = append(fs, field{"domains", strs(n.Domains)})
		}
		out = append(out, object{typ: "network_set", labels: []string{n.Name}, fields: fs})
	}
	for _, t := range cfg.Tiers {
		var fs []field
		if t.Order != nil {
			fs = append(fs, field{"order", cty.NumberFloatVal(*t.Order)})
		}
		fs = append(fs, field{"default_action", cty.StringVal(string(t.DefaultAction))})
		out = append(out, object{typ: "tier", labels: []string{t.Name}, fields: fs})
	}
	for _, p := range cfg.Policies {
		out = append(out, object{typ: "policy", labels: []string{p.Name}, fields: policyFields(p)})
	}
	if cfg.Failsafe.DeclRange.Filename != "" {
		out = append(out, object{typ: "failsafe", fields: []field{
			{"inbound", strs(protoPorts(cfg.Failsafe.Inbound))}, {"outbound", strs(protoPorts(cfg.Failsafe.Outbound))},
		}})
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.NodeFailsafe)) {
		o := cfg.NodeFailsafe[n]
		fs := []field{{"node", cty.StringVal(n)}}
		if o.Inbound != nil {
			fs = append(fs, field{"inbound", strs(protoPorts(*o.Inbound))})
		}
		if o.Outbound != nil {
			fs = append(fs, field{"outbound", strs(protoPorts(*o.Outbound))})
		}
		out = append(out, object{typ: "failsafe", fields: fs})
	}
	out = append(out, workloadObjects(cfg)...)
	var settings []field
	if !cfg.Settings.AllowIPv6ND {
		settings = append(settings, field{"allow_ipv6_neighbor_discovery", cty.False})
	}
	if cfg.Settings.SkipLockoutCheck {
		settings = append(settings, field{"lockout_check", cty.False})
	}
	if !cfg.Settings.DropLog {
		settings = append(settings, field{"drop_log", cty.False})
	}
	if g := cfg.Settings.DropLogGroup; g != config.DefaultDropLogGroup {
		settings = append(settings, field{"drop_log_group", cty.NumberIntVal(int64(g))})
	}
	if r := cfg.Settings.DropLogRate; r != config.DefaultDropLogRate {
		settings = append(settings, field{"drop_log_rate", cty.NumberIntVal(int64(r))})
	}
	for _, d := range []struct {
		name      string
		v, normal uint32
	}{{"dns_min_ttl", cfg.Settings.DNSMinTTL, config.DefaultDNSMinTTL}, {"dns_max_ttl", cfg.Settings.DNSMaxTTL, config.DefaultDNSMaxTTL}, {"dns_grace", cfg.Settings.DNSGrace, config.DefaultDNSGrace}} {
		if d.v != d.normal {
			settings = append(settings, field{d.name, cty.NumberIntVal(int64(d.v))})
		}
	}
	if len(settings) > 0 {
		out = append(out, object{typ: "settings", fields: settings})
	}
	return out
}

func protoPorts(pps []config.ProtoPort) []string {
	out := []string{}
	for _, pp := range pps {
		proto := map[uint8]string{config.ProtoTCP: "tcp", config.ProtoUDP: "udp", config.ProtoSCTP: "sctp"}[pp.Protocol]
		switch {
		case !pp.Net.IsValid():
			out = append(out, fmt.Sprintf("%s:%d", proto, pp.Port))
		case pp.Net.Addr().Is6():
			out = append(out, fmt.Sprintf("%s:[%s]:%d", proto, pp.Net, pp.Port))
		default:
			out = append(out, fmt.Sprintf("%s:%s:%d", proto, pp.Net, pp.Port))
		}
	}
	return out
}

func policyFields(p *config.Policy) []field {
	var fs []field
	if p.Tier != config.DefaultTier {
		fs = append(fs, field{"tier", cty.StringVal(p.Tier)})
	}
	if !p.Selector.IsAll() {
		fs = append(fs, field{"selector", cty.StringVal(p.Selector.String())})
	}
	if p.Order != nil {
		fs = append(fs, field{"order", cty.NumberFloatVal(*p.Order)})
	}
	var types []string
	for _, t := range p.Types {
		types = append(types, string(t))
	}
	fs = append(fs, field{"types", strs(types)})
	if p.ApplyOnForward {
		fs = append(fs, field{"apply_on_forward", cty.True})
	}
	if p.PreDNAT {
		fs = append(fs, field{"pre_dnat", cty.True})
	}
	if p.DoNotTrack {
		fs = append(fs, field{"do_not_track", cty.True})
	}
	switch p.Staged {
	case config.StagedSet:
		fs = append(fs, field{"staged", cty.True})
	case config.StagedDelete:
		fs = append(fs, field{"staged", cty.StringVal("delete")})
	}
	for _, d := range []config.Direction{config.Ingress, config.Egress} {
		if !p.Applies(d) {
			continue // rules of a direction not in types have no effect
		}
		var rules [][]field
		for _, r := range p.Rules(d) {
			rules = append(rules, ruleFields(r))
		}
		if len(rules) > 0 {
			fs = append(fs, field{string(d), rules})
		}
	}
	return fs
}

func protoVal(p *config.Protocol) cty.Value {
	if _, err := strconv.Atoi(p.Name); err == nil {
		return cty.NumberIntVal(int64(p.Number))
	}
	return cty.StringVal(p.Name)
}

func ruleFields(r *config.Rule) []field {
	fs := []field{{"action", cty.StringVal(string(r.Action))}}
	if r.Protocol != nil {
		fs = append(fs, field{"protocol", protoVal(r.Protocol)})
	}
	if r.NotProtocol != nil {
		fs = append(fs, field{"not_protocol", protoVal(r.NotProtocol)})
	}
	if r.IPVersion != 0 {
		fs = append(fs, field{"ip_version", cty.NumberIntVal(int64(r.IPVersion))})
	}
	for _, side := range []struct {
		name string
		e    config.Entity
	}{{"source", r.Source}, {"destination", r.Destination}} {
		var es []field
		e := side.e
		if len(e.Nets) > 0 {
			es = append(es, field{"nets", strs(stringers(e.Nets))})
		}
		if len(e.NotNets) > 0 {
			es = append(es, field{"not_nets", strs(stringers(e.NotNets))})
		}
		if len(e.Domains) > 0 {
			es = append(es, field{"domains", strs(e.Domains)})
		}
		if e.Selector != nil {
			es = append(es, field{"selector", cty.StringVal(e.Selector.String())})
		}
		if e.NotSelector != nil {
			es = append(es, field{"not_selector", cty.StringVal(e.NotSelector.String())})
		}
		if len(e.Ports)+len(e.NamedPorts) > 0 {
			es = append(es, field{"ports", portsVal(e.Ports, e.NamedPorts)})
		}
		if len(e.NotPorts)+len(e.NotNamedPorts) > 0 {
			es = append(es, field{"not_ports", portsVal(e.NotPorts, e.NotNamedPorts)})
		}
		if len(es) > 0 {
			fs = append(fs, field{side.name, es})
		}
	}
	for _, m := range []struct {
		name string
		m    *config.ICMPMatch
	}{{"icmp", r.ICMP}, {"not_icmp", r.NotICMP}} {
		if m.m == nil {
			continue
		}
		ifs := []field{{"type", cty.NumberIntVal(int64(m.m.Type))}}
		if m.m.Code != nil {
			ifs = append(ifs, field{"code", cty.NumberIntVal(int64(*m.m.Code))})
		}
		fs = append(fs, field{m.name, ifs})
	}
	return fs
}
