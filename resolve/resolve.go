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

	"github.com/hostwall/hostwall/config"
)

// Answer is what a name resolved to.
type Answer struct {
	Name string
	// Addrs are the name's IPv4 and IPv6 addresses, sorted; none when
	// the name does not exist (NXDomain) or has no address records.
	Addrs []netip.Addr
	// TTL is how long the answer may be kept: the smallest TTL of the
	// records it was made of (the CNAMEs followed too) and of the negative
	// answers for a family without records (their zone's SOA's; 0 when
	// nothing gave one).
	TTL      time.Duration
	NXDomain bool
	// Stale, set by whoever keeps answers (the agent), says why the name
	// no longer resolves: Addrs are then the last known.
	Stale string
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

// Lookup resolves name (an exact name: config.ValidDomain) to its A and AAAA
// records. An error says that no server gave an answer (timeouts,
// refusals, server failures); a name that does not exist, or has no
// address, is an answer without addresses.
func (r *Resolver) Lookup(ctx context.Context, name string) (Answer, error) {
	if err := config.ValidDomain(name); err != nil {
		return Answer{}, err
	}
	a := Answer{Name: config.CanonicalDomain(name)}
	ttl := time.Duration(-1)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.exchange(ctx, a.Name, qtype)
		if err != nil {
			return Answer{}, err
		}
		addrs, t, known, nx := records(msg, a.Name, qtype)
		a.Addrs = append(a.Addrs, addrs...)
		a.NXDomain = a.NXDomain || nx
		if known && (ttl < 0 || t < ttl) {
			ttl = t
		}
	}
	a.TTL = max(ttl, 0)
	slices.SortFunc(a.Addrs, func(x, y netip.Addr) int { return x.Compare(y) })
	a.Addrs = slices.Compact(a.Addrs)
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
// section (known is false without one). nx reports NXDOMAIN.
func records(m *dns.Msg, name string, qtype uint16) (addrs []netip.Addr, ttl time.Duration, known, nx bool) {
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
	return addrs, time.Duration(minTTL) * time.Second, !first, m.Rcode == dns.RcodeNameError
}
