package loader

import (
	"errors"
	"fmt"
	"github.com/hostwall/hostwall/internal/suggest"
	"math"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/hostwall/hostwall/config"
)

// item is one element of a list attribute with the range it was written at.
type item struct {
	val cty.Value
	rng hcl.Range
}

func errAt(rng hcl.Range, summary, detail string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: rng.Ptr()}
}

// example is attribute attr set to value, as the attribute's own file
// would write it.
func example(attr *hcl.Attribute, value string) string {
	if _, ok := attr.Expr.(*yamlExpr); ok {
		return attr.Name + ": " + value
	}
	return attr.Name + " = " + value
}

// describe says what a value is, for a message about the wrong kind.
func describe(v cty.Value) string {
	t := v.Type()
	switch {
	case v.IsNull():
		return "no value (null)"
	case t == cty.String:
		s := v.AsString()
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return fmt.Sprintf("the string %q", s)
	case t == cty.Number || t == cty.Bool:
		return boolOrNumber(v)
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "a mapping"
	}
	return "a " + t.FriendlyName()
}

// value evaluates an attribute that may use no variables or functions.
func value(attr *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, hcl.Diagnostics{errAt(attr.Expr.Range(), "Missing value", "%q is null; give it a value or remove the line.", attr.Name)}
	}
	return v, nil
}

func stringAttr(attr *hcl.Attribute) (string, hcl.Diagnostics) {
	v, diags := value(attr)
	if diags.HasErrors() {
		return "", diags
	}
	if v.Type() != cty.String {
		return "", hcl.Diagnostics{errAt(attr.Expr.Range(), "Expected a string", "%q must be a string, not %s; such as %s.", attr.Name, describe(v), example(attr, `"value"`))}
	}
	return v.AsString(), nil
}

func numberAttr(attr *hcl.Attribute) (*big.Float, hcl.Diagnostics) {
	v, diags := value(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.Type() != cty.Number {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Expected a number", "%q must be a number, not %s; such as %s.", attr.Name, describe(v), example(attr, "100"))}
	}
	if f, _ := v.AsBigFloat().Float64(); math.IsInf(f, 0) {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Number out of range", "%q is %s, beyond what a number here can be (about ±1.8e308).", attr.Name, v.AsBigFloat().Text('g', 6))}
	}
	return v.AsBigFloat(), nil
}

// listAttr returns the elements of a list attribute, each with its own range
// when the list is written literally.
func listAttr(attr *hcl.Attribute) ([]item, hcl.Diagnostics) {
	v, diags := value(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Expected a list", "%q must be a list, not %s; such as %s.", attr.Name, describe(v), example(attr, `["a", "b"]`))}
	}
	var ranges []hcl.Range
	switch x := attr.Expr.(type) {
	case *hclsyntax.TupleConsExpr:
		ranges = make([]hcl.Range, len(x.Exprs))
		for i, e := range x.Exprs {
			ranges[i] = e.Range()
		}
	case interface{ ElementRanges() []hcl.Range }:
		ranges = x.ElementRanges()
	}
	items := make([]item, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		rng := attr.Expr.Range()
		if len(items) < len(ranges) {
			rng = ranges[len(items)]
		}
		items = append(items, item{ev, rng})
	}
	return items, nil
}

// labelsAttr decodes a map of label names to string values.
func labelsAttr(attr *hcl.Attribute) (map[string]string, hcl.Diagnostics) {
	return labelsAs(attr, false)
}

// labelsAs is labelsAttr; with calico, label values that are YAML
// booleans or numbers become their text, as calicoctl reads them
// ("apply-dos-mitigation: true" is the label value "true").
func labelsAs(attr *hcl.Attribute, calico bool) (map[string]string, hcl.Diagnostics) {
	v, diags := value(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	_, isYAML := attr.Expr.(*yamlExpr)
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		example := `{ role = "web" }`
		if isYAML {
			example = `{role: web}`
		}
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Expected a map of labels", "%q must be a map such as %s.", attr.Name, example)}
	}
	labels := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		key := k.AsString()
		switch {
		case ev.IsNull() && calico:
			labels[key] = "" // calicoctl reads a null label value as ""
		case ev.Type() == cty.String && !ev.IsNull():
			if !utf8.ValidString(ev.AsString()) || !utf8.ValidString(key) {
				diags = append(diags, errAt(labelRange(attr, key), "Invalid label", "Label %q has bytes that are not UTF-8; labels are text.", strings.ToValidUTF8(key, "\uFFFD")))
				continue
			}
			labels[key] = ev.AsString()
		case (ev.Type() == cty.Number || ev.Type() == cty.Bool) && !ev.IsNull():
			text := boolOrNumber(ev)
			if calico {
				labels[key] = text
				if written := labelText(attr, key); written != "" && written != text {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Label value read as calicoctl reads it",
						Detail:  fmt.Sprintf("Label %q is written %s and read as %q, as calicoctl reads a number or boolean; a selector must say %q. Quote it (%q) to keep it as written.", key, written, text, text, written),
						Subject: labelRange(attr, key).Ptr()})
				}
				continue
			}
			example := fmt.Sprintf("%s = %q", key, text)
			if isYAML {
				example = fmt.Sprintf("%s: %q", key, text)
			}
			diags = append(diags, errAt(labelRange(attr, key), "Label value must be a string", "Label %q has the value %s, which is not a string; quote it, as in %s.", key, text, example))
		default:
			diags = append(diags, errAt(labelRange(attr, key), "Label value must be a string", "Label %q has %s, not a string value.", key, describe(ev)))
		}
	}
	return labels, diags
}

// meant is " Did you mean "x"?" for the option closest to given, or "".
func meant(given string, options ...string) string {
	if s := suggest.Name(given, options); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// labelRange is where the value of label key is written in attr, or attr's
// value when that cannot be told.
func labelRange(attr *hcl.Attribute, key string) hcl.Range {
	switch e := attr.Expr.(type) {
	case *yamlExpr:
		if n := e.entry(key); n != nil {
			return nodeRange(e.file, n)
		}
	case *hclsyntax.ObjectConsExpr:
		for _, item := range e.Items {
			if k, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String && !k.IsNull() && k.AsString() == key {
				return item.ValueExpr.Range()
			}
		}
	}
	return attr.Expr.Range()
}

// labelText is how the value of label key is written in a YAML attr, ""
// when that cannot be told.
func labelText(attr *hcl.Attribute, key string) string {
	if e, ok := attr.Expr.(*yamlExpr); ok {
		if n := e.entry(key); n != nil && n.GetToken() != nil {
			return n.GetToken().Value
		}
	}
	return ""
}

// boolOrNumber is a boolean or number as YAML or HCL would write it.
func boolOrNumber(v cty.Value) string {
	if v.Type() == cty.Bool {
		return strconv.FormatBool(v.True())
	}
	return numberText(v)
}

// parseNet reads an address or CIDR. A CIDR with host bits set is refused,
// since it usually means a typo.
func parseNet(s string, rng hcl.Range) (netip.Prefix, *hcl.Diagnostic) {
	s = strings.TrimSpace(s)
	p, err := parseNetFast(s)
	switch {
	case err == nil:
		return p, nil
	case !strings.Contains(s, "/"):
		return netip.Prefix{}, errAt(rng, "Invalid network", "%q is not an IP address or CIDR; write it as 192.0.2.0/24, 2001:db8::/32 or a single address.", s)
	case err == errHostBits:
		p, _ := netip.ParsePrefix(s)
		return netip.Prefix{}, errAt(rng, "Network has host bits set", "%q has bits set beyond its /%d mask; write %s, or the address alone for one host.", s, p.Bits(), p.Masked())
	}
	return netip.Prefix{}, errAt(rng, "Invalid network", "%q is not a valid CIDR: %s; write it as 192.0.2.0/24 or 2001:db8::/32.", s, netProblem(s))
}

// netProblem says what is wrong with CIDR s, in words rather than the
// parser's.
func netProblem(s string) string {
	addr, bits, _ := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not an IP address", addr)
	case a.Zone() != "":
		return "an address with a zone (%" + a.Zone() + ") has no network"
	}
	n, err := strconv.Atoi(bits)
	switch {
	case err != nil || bits != strconv.Itoa(n):
		return fmt.Sprintf("the prefix length %q is not a whole number", bits)
	case n < 0 || n > a.BitLen():
		return fmt.Sprintf("/%d is beyond the %d bits of an IPv%d address", n, a.BitLen(), map[int]int{32: 4, 128: 6}[a.BitLen()])
	}
	return "it does not parse"
}

var errHostBits = errors.New("host bits set")

// parseNetFast is parseNet without the diagnostic: a CIDR without host
// bits, or one address (IPv4-mapped IPv6 taken as IPv4, no zone) as a
// prefix of its full length.
func parseNetFast(s string) (netip.Prefix, error) {
	if p, ok := parseCIDR4(s); ok {
		return p, nil
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zone")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Masked() != p {
		return netip.Prefix{}, errHostBits
	}
	return p, nil
}

// parseCIDR4 reads the canonical IPv4 forms "a.b.c.d" and "a.b.c.d/n"
// (decimal octets without leading zeros, a masked prefix), which blocklists
// are made of, without netip's general parser; ok is false for anything
// else, which parseNetFast then hands to netip, so results never differ
// (TestParseCIDR4).
func parseCIDR4(s string) (netip.Prefix, bool) {
	var a [4]byte
	i := 0
	num := func(max int) (int, bool) {
		start, v := i, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < 3 {
			v = v*10 + int(s[i]-'0')
			i++
		}
		n := i - start
		return v, n > 0 && v <= max && (n == 1 || s[start] != '0')
	}
	for k := range 4 {
		if k > 0 {
			if i >= len(s) || s[i] != '.' {
				return netip.Prefix{}, false
			}
			i++
		}
		v, ok := num(255)
		if !ok {
			return netip.Prefix{}, false
		}
		a[k] = byte(v)
	}
	bits := 32
	if i < len(s) {
		if s[i] != '/' {
			return netip.Prefix{}, false
		}
		i++
		v, ok := num(32)
		if !ok || i != len(s) {
			return netip.Prefix{}, false
		}
		bits = v
	}
	p := netip.PrefixFrom(netip.AddrFrom4(a), bits)
	if p.Masked() != p {
		return netip.Prefix{}, false // netip's path names the error
	}
	return p, true
}

func netsAttr(attr *hcl.Attribute) ([]netip.Prefix, hcl.Diagnostics) {
	items, diags := listAttr(attr)
	nets := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		if it.val.Type() != cty.String || it.val.IsNull() {
			diags = append(diags, errAt(it.rng, "Invalid network", "Each network must be a quoted string such as \"192.0.2.0/24\"."))
			continue
		}
		p, d := parseNet(it.val.AsString(), it.rng)
		if d != nil {
			diags = append(diags, d)
			continue
		}
		nets = append(nets, p)
	}
	return nets, diags
}

// parsePortRange reads "80" or "1000:2000".
func parsePortRange(s string) (config.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return config.PortRange{}, fmt.Errorf("%q is not a port number (0-65535) or a range \"first:last\"", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil {
			return config.PortRange{}, fmt.Errorf("%q is not a port range \"first:last\" with ports 0-65535", s)
		}
		if b < a {
			return config.PortRange{}, fmt.Errorf("port range %q ends before it starts; write \"%d:%d\"", s, b, a)
		}
	}
	return config.PortRange{Lo: uint16(a), Hi: uint16(b)}, nil
}

// portsAttr reads numbers, "a:b" ranges and port names.
func portsAttr(attr *hcl.Attribute) ([]config.PortRange, []string, hcl.Diagnostics) {
	items, diags := listAttr(attr)
	ports := make([]config.PortRange, 0, len(items))
	var names []string
	for _, it := range items {
		s, ok := scalarText(it.val)
		if !ok {
			diags = append(diags, errAt(it.rng, "Invalid port", "Each port must be a number such as 443 or a range such as \"8000:8080\"."))
			continue
		}
		if portName.MatchString(s) && !strings.ContainsAny(s, ":") && strings.IndexFunc(s, isLetter) >= 0 {
			names = append(names, s)
			continue
		}
		r, err := parsePortRange(s)
		if err != nil {
			diags = append(diags, errAt(it.rng, "Invalid port", "%s.", err))
			continue
		}
		ports = append(ports, r)
	}
	return ports, names, diags
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

func protocolAttr(attr *hcl.Attribute) (*config.Protocol, hcl.Diagnostics) {
	v, diags := value(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	s, ok := scalarText(v)
	if !ok {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid protocol", "protocol must be a name (tcp, udp, icmp, icmpv6, sctp, udplite) or a number 1-255.")}
	}
	if n, ok := config.ProtocolNumbers[strings.ToLower(s)]; ok {
		return &config.Protocol{Number: n, Name: strings.ToLower(s)}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 8); err == nil && n > 0 {
		return &config.Protocol{Number: uint8(n), Name: s}, nil
	}
	return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid protocol", "%q is not a protocol hostwall knows; use tcp, udp, icmp, icmpv6, sctp, udplite or a number 1-255.%s", s, meant(s, "tcp", "udp", "icmp", "icmpv6", "sctp", "udplite"))}
}

func selectorAttr(attr *hcl.Attribute) (*config.Selector, hcl.Diagnostics) {
	s, diags := stringAttr(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	sel, err := config.ParseSelector(s)
	if err != nil {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid selector", "%q: %v. Selectors look like role == 'web' && has(env).", s, err)}
	}
	return sel, nil
}

// scalarText is a string, or a number as written (ports and protocols may
// be either); ok is false for any other type.
func scalarText(v cty.Value) (s string, ok bool) {
	switch v.Type() {
	case cty.String:
		return v.AsString(), true
	case cty.Number:
		return numberText(v), true
	}
	return "", false
}

// numberText is a number as written: whole numbers (every port and
// protocol) by strconv, the rest by big.Float. big.Float's shortest
// formatting cost a third of loading 10,000 rules.
func numberText(v cty.Value) string {
	f := v.AsBigFloat()
	if i, acc := f.Int64(); acc == big.Exact {
		return strconv.FormatInt(i, 10)
	}
	return f.Text('f', -1)
}
