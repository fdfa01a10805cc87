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
	"sync"
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
	// Partial says why one of A and AAAA got no answer (the other did).
	Partial string
	// Stale, set by whoever keeps answers (the agent), says why the name
	// no longer resolves: Addrs are then the last known.
	Stale string
}

// Resolver asks Servers ("host:port"), in turn, until one answers; a
// server that did not answer is asked last from then on. Safe for
// concurrent use.
type Resolver struct {
	Servers []string
	// Timeout is how long one query may wait for a server (2 s when 0).
	Timeout time.Duration

	mu   sync.Mutex
	dead map[string]bool
}

// order is the servers, those that did not answer last.
func (r *Resolver) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var alive, dead []string
	for _, s := range r.Servers {
		if r.dead[s] {
			dead = append(dead, s)
		} else {
			alive = append(alive, s)
		}
	}
	return append(alive, dead...)
}

// isDead reports whether server did not answer when last asked.
func (r *Resolver) isDead(server string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dead[server]
}

// mark notes whether server answered.
func (r *Resolver) mark(server string, answered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead == nil {
		r.dead = map[string]bool{}
	}
	r.dead[server] = !answered
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
	// resolv.conf's timeout (5 s by default) is for one query of a program;
	// hostwall asks many names, so a dead server is given 2 s at most.
	r := &Resolver{Timeout: min(time.Duration(cc.Timeout)*time.Second, 2*time.Second)}
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
	// A, then AAAA, on this goroutine (its thread may be in a network
	// namespace of its own: a goroutine started here would not be); a name
	// with one of them answered is an answer (Partial says why the other
	// is missing).
	type result struct {
		addrs     []netip.Addr
		ttl       time.Duration
		known, nx bool
		err       error
	}
	var res [2]result
	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.exchange(ctx, a.Name, qtype)
		if err != nil {
			res[i].err = err
			continue
		}
		res[i].addrs, res[i].ttl, res[i].known, res[i].nx = records(msg, a.Name, qtype)
	}
	if res[0].err != nil && res[1].err != nil {
		return Answer{}, res[0].err
	}
	ttl := time.Duration(-1)
	for _, x := range res {
		if x.err != nil {
			a.Partial = x.err.Error()
			continue
		}
		a.Addrs = append(a.Addrs, x.addrs...)
		a.NXDomain = a.NXDomain || x.nx
		if x.known && (ttl < 0 || x.ttl < ttl) {
			ttl = x.ttl
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
	var errs []string
	answered := false // by some server, if with an error
	for _, server := range r.order() {
		if answered && r.isDead(server) {
			continue // a server that did not answer is not waited for again
		}
		for _, proto := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: proto, Timeout: timeout}
			qctx, cancel := context.WithTimeout(ctx, timeout)
			m, _, err := c.ExchangeContext(qctx, q, server)
			cancel()
			r.mark(server, err == nil)
			answered = answered || err == nil
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("%s (%s): %v", server, proto, err))
			case m.Truncated && proto == "udp":
				continue // again over TCP
			case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
				errs = append(errs, fmt.Sprintf("%s: %s", server, dns.RcodeToString[m.Rcode]))
			default:
				return m, nil
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("resolving %s (%s): %s", name, dns.TypeToString[qtype], strings.Join(errs, "; "))
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
					// An IPv4-mapped AAAA is no IPv6 address: left out, not
					// taken as the IPv4 one.
					if a, ok := netip.AddrFromSlice(v.AAAA.To16()); ok && !a.Is4In6() {
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
