// Package resolve looks domain names of policies up: their A and AAAA
// records and how long the answer may be kept (the records' TTL), which
// the standard library's resolver does not give. It asks the servers of
// /etc/resolv.conf, or the ones configured, itself (github.com/miekg/dns);
// DNSSEC is not checked.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Answer is what a name resolved to.
type Answer struct {
	Name string
	// Addrs are the name's IPv4 and IPv6 addresses, sorted; none when
	// the name does not exist (NXDomain) or has no address records.
	Addrs []netip.Addr
	// TTL is how long the answer may be kept: the smallest TTL of the
	// records it was made of (the CNAMEs followed too), or for a name
	// without addresses the zone's negative TTL (its SOA's).
	TTL      time.Duration
	NXDomain bool
}

// Resolver asks Servers ("host:port"), in turn, until one answers.
type Resolver struct {
	Servers []string
	// Timeout is how long one query may wait for a server (2 s when 0).
	Timeout time.Duration
}

// FromResolvConf is a Resolver asking the servers of the resolv.conf at
// path (/etc/resolv.conf), with its timeout.
func FromResolvConf(path string) (*Resolver, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("%s names no nameserver", path)
	}
	r := &Resolver{Timeout: time.Duration(cc.Timeout) * time.Second}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	return r, nil
}

// maxCNAMEs bounds the chain of aliases followed.
const maxCNAMEs = 8

// Lookup resolves name (an exact name: ValidName) to its A and AAAA
// records. An error says that no server gave an answer (timeouts,
// refusals, server failures); a name that does not exist, or has no
// address, is an answer without addresses.
func (r *Resolver) Lookup(ctx context.Context, name string) (Answer, error) {
	if err := ValidName(name); err != nil {
		return Answer{}, err
	}
	a := Answer{Name: Canonical(name)}
	ttl := time.Duration(-1)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.exchange(ctx, a.Name, qtype)
		if err != nil {
			return Answer{}, err
		}
		addrs, t, nx := records(msg, a.Name, qtype)
		a.Addrs = append(a.Addrs, addrs...)
		a.NXDomain = a.NXDomain || nx
		if ttl < 0 || t < ttl {
			ttl = t
		}
	}
	slices.SortFunc(a.Addrs, func(x, y netip.Addr) int { return x.Compare(y) })
	a.Addrs = slices.Compact(a.Addrs)
	a.TTL = ttl
	return a, nil
}

// exchange asks each server in turn for name's records of qtype, over
// UDP, again over TCP when the answer was cut short.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if len(r.Servers) == 0 {
		return nil, errors.New("no DNS server to ask")
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var errs []error
	for _, server := range r.Servers {
		for _, proto := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: proto, Timeout: timeout}
			qctx, cancel := context.WithTimeout(ctx, timeout)
			m, _, err := c.ExchangeContext(qctx, q, server)
			cancel()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s (%s): %w", server, proto, err))
			case m.Truncated && proto == "udp":
				continue // again over TCP
			case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
				errs = append(errs, fmt.Errorf("%s: %s", server, dns.RcodeToString[m.Rcode]))
			default:
				return m, nil
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("resolving %s (%s): %w", name, dns.TypeToString[qtype], errors.Join(errs...))
}

// records reads the addresses of qtype for name out of m, following the
// CNAMEs in it, and the TTL to keep them: the smallest of the records
// used, or, with none, the negative TTL of the SOA in the authority
// section (none: 0). nx reports NXDOMAIN.
func records(m *dns.Msg, name string, qtype uint16) (addrs []netip.Addr, ttl time.Duration, nx bool) {
	owner := dns.Fqdn(name)
	minTTL := uint32(0)
	first := true
	use := func(t uint32) {
		if first || t < minTTL {
			minTTL, first = t, false
		}
	}
	for range maxCNAMEs {
		next := ""
		for _, rr := range m.Answer {
			if !strings.EqualFold(rr.Header().Name, owner) {
				continue
			}
			switch v := rr.(type) {
			case *dns.A:
				if qtype == dns.TypeA {
					if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
						addrs = append(addrs, a)
						use(v.Hdr.Ttl)
					}
				}
			case *dns.AAAA:
				if qtype == dns.TypeAAAA {
					if a, ok := netip.AddrFromSlice(v.AAAA.To16()); ok {
						addrs = append(addrs, a)
						use(v.Hdr.Ttl)
					}
				}
			case *dns.CNAME:
				next = v.Target
				use(v.Hdr.Ttl)
			}
		}
		if len(addrs) > 0 || next == "" {
			break
		}
		owner = next
	}
	if len(addrs) == 0 {
		first, minTTL = true, 0
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				use(min(soa.Hdr.Ttl, soa.Minttl))
			}
		}
	}
	return addrs, time.Duration(minTTL) * time.Second, m.Rcode == dns.RcodeNameError
}

// Canonical is name as policies hold it: lower case, without the
// trailing dot.
func Canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// ValidName checks that name is an exact domain name (letters, digits and
// hyphens in labels of at most 63 bytes, at most 253 in all, at least two
// labels). A wildcard is refused: resolving "*.example.com" would need the
// answers to the host's own queries (DNS snooping), which hostwall does
// not do.
func ValidName(name string) error {
	n := strings.TrimSuffix(name, ".")
	switch {
	case strings.Contains(n, "*"):
		return fmt.Errorf("%q is a wildcard; not supported: needs DNS snooping. Name each host (api.example.com)", name)
	case n == "":
		return errors.New("an empty domain name")
	case len(n) > 253:
		return fmt.Errorf("%q is longer than a domain name may be (253 bytes)", name)
	case !strings.Contains(n, "."):
		return fmt.Errorf("%q is not a fully qualified name: give the domain too (%s.example.com); search domains are not used", name, name)
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return fmt.Errorf("%q is an address: put it in nets", name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q has an empty label or one longer than 63 bytes", name)
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1 || c == '_' && i == 0
			if !ok {
				return fmt.Errorf("%q holds %q, which a domain name cannot (letters, digits and inner hyphens)", name, string(c))
			}
		}
	}
	return nil
}
