package engine

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/resolve"
	"github.com/hostwall/hostwall/state"
)

// resolveTimeout bounds the resolution of all of a configuration's names,
// nameTimeout that of one (both its types, every server); resolveWorkers
// names are asked at once.
const (
	resolveTimeout = 30 * time.Second
	nameTimeout    = 8 * time.Second
	resolveWorkers = 16
)

// NamesReason is why the agent applies the files to follow their domain
// names (its generations are pruned first: state.NamesReason).
const NamesReason = state.NamesReason

// nameCache is what the agent knows of each domain name between loads:
// when to ask again, and when each address was last in the answer.
type nameCache struct {
	mu    sync.Mutex
	names map[string]*nameState
	grace time.Duration // the configuration's, as of the last load
}

type nameState struct {
	seen map[netip.Addr]time.Time // each address, when last in an answer
	at   time.Time                // when last answered
	ttl  time.Duration            // the last answer's
	due  time.Time                // when to ask again
	err  error                    // the last question's failure (nil: answered)
	ok   bool                     // ever answered
}

// resolveNames looks up names (cfg's) in the namespace: by the host
// block's dns_servers, else the namespace's resolv.conf. The agent
// (Options.Memo) keeps each answer until its TTL, clamped to settings {
// dns_min_ttl, dns_max_ttl }, runs out, asks again only the names due,
// keeps an address dns_grace after it left the answer, and keeps the last
// known addresses of a name that no longer resolves (Answer.Stale). A name
// with no address makes its rules match nothing, which compile warns of;
// why it has none is a warning here.
func (e *Engine) resolveNames(cfg *config.Config, names []string) ([]resolve.Answer, hcl.Diagnostics) {
	cache := e.names
	if cache == nil {
		cache = &nameCache{}
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.names == nil {
		cache.names = map[string]*nameState{}
	}
	for name := range cache.names {
		if !slices.Contains(names, name) {
			delete(cache.names, name) // no longer in the configuration
		}
	}
	set := cfg.Settings
	now := time.Now()
	// The names due within a moment go with those due now: one apply for
	// a batch, not one for each name.
	soon := now.Add(min(5*time.Second, time.Duration(set.DNSMinTTL)*time.Second/2))
	var due []string
	for _, name := range names {
		if st := cache.names[name]; st == nil || st.due.Before(soon) {
			due = append(due, name)
		}
	}
	var diags hcl.Diagnostics
	if len(due) > 0 {
		path := netif.Path(e.o.NetNS)
		run := func() error {
			r, err := e.resolver(cfg)
			if err != nil {
				return err
			}
			// Several names at once, each with a budget of its own (a dead
			// server is asked last once it failed), all within
			// resolveTimeout.
			ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
			defer cancel()
			type result struct {
				a   resolve.Answer
				err error
			}
			results := make([]result, len(due))
			work := make(chan int)
			var wg sync.WaitGroup
			for range min(resolveWorkers, len(due)) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each worker asks from the namespace: a goroutine does
					// not inherit its starter's.
					err := netif.In(path, func() error {
						for i := range work {
							nctx, cancel := context.WithTimeout(ctx, nameTimeout)
							results[i].a, results[i].err = r.Lookup(nctx, due[i])
							cancel()
						}
						return nil
					})
					if err != nil {
						for i := range work {
							results[i].err = err
						}
					}
				}()
			}
			for i := range due {
				work <- i
			}
			close(work)
			wg.Wait()
			for i, name := range due {
				cache.note(name, results[i].a, results[i].err, now, set)
				if p := results[i].a.Partial; results[i].err == nil && p != "" {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Domain name resolved in part",
						Detail: fmt.Sprintf("%s: %s; its other addresses are used.", name, p)})
				}
			}
			return nil
		}
		if err := run(); err != nil {
			for _, name := range due {
				cache.note(name, resolve.Answer{}, err, now, set)
			}
		}
	}
	grace := time.Duration(set.DNSGrace) * time.Second
	cache.grace = grace
	var out []resolve.Answer
	for _, name := range names {
		st := cache.names[name]
		a := resolve.Answer{Name: name, TTL: st.ttl}
		for addr, at := range st.seen {
			if st.err != nil || now.Sub(at) <= grace {
				a.Addrs = append(a.Addrs, addr)
			} else {
				delete(st.seen, addr) // gone past its grace
			}
		}
		slices.SortFunc(a.Addrs, func(x, y netip.Addr) int { return x.Compare(y) })
		if st.err != nil {
			a.Stale = st.err.Error()
			what := "it matches nothing until it does"
			if len(a.Addrs) > 0 {
				what = "its last known addresses stay"
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Domain name did not resolve",
				Detail: fmt.Sprintf("%s: %v; %s.", name, st.err, what)})
		}
		out = append(out, a)
	}
	return out, diags
}

// note records the answer a (or the failure err) to name at now.
func (c *nameCache) note(name string, a resolve.Answer, err error, now time.Time, set config.Settings) {
	st := c.names[name]
	if st == nil {
		st = &nameState{seen: map[netip.Addr]time.Time{}}
		c.names[name] = st
	}
	lo, hi := time.Duration(set.DNSMinTTL)*time.Second, time.Duration(set.DNSMaxTTL)*time.Second
	if err != nil {
		st.err, st.due = err, now.Add(lo) // asked again soon
		return
	}
	for _, addr := range a.Addrs {
		st.seen[addr] = now
	}
	st.err, st.ok, st.ttl, st.at = nil, true, a.TTL, now
	// Asked again before the answer runs out, by up to half of it, by an
	// amount of each name's own: names resolved together (at start) are
	// asked again at times spread over the TTL, not in a burst.
	keep := min(max(a.TTL, lo), hi)
	h := fnv.New32a()
	h.Write([]byte(name))
	st.due = now.Add(keep - keep/2*time.Duration(h.Sum32()%1024)/1024)
}

// NamesDue is when the next domain name the agent keeps is due to be
// resolved again, or an address that left its answer to be taken away
// at the end of its grace period (zero: none).
func (e *Engine) NamesDue() time.Time {
	if e.names == nil {
		return time.Time{}
	}
	e.names.mu.Lock()
	defer e.names.mu.Unlock()
	var first time.Time
	earlier := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	for _, st := range e.names.names {
		earlier(st.due)
		if st.err != nil {
			continue // the last known addresses stay
		}
		for _, seen := range st.seen {
			if seen.Before(st.at) { // no longer in the answer
				earlier(seen.Add(e.names.grace + time.Second/10))
			}
		}
	}
	return first
}

// ResolveName resolves one name as the configuration cfg's names are
// (explain --dst NAME).
func (e *Engine) ResolveName(cfg *config.Config, name string) (resolve.Answer, error) {
	if err := config.ValidDomain(name); err != nil {
		return resolve.Answer{}, err
	}
	answers, diags := e.resolveNames(cfg, []string{config.CanonicalDomain(name)})
	if len(diags) > 0 {
		return resolve.Answer{}, fmt.Errorf("%s", diags[0].Detail)
	}
	return answers[0], nil
}

// resolver is the host block's dns_servers' resolver, else resolv.conf's.
func (e *Engine) resolver(cfg *config.Config) (*resolve.Resolver, error) {
	if cfg.Host != nil && len(cfg.Host.DNSServers) > 0 {
		return &resolve.Resolver{Servers: cfg.Host.DNSServers}, nil
	}
	path := e.o.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
		// As ip netns exec does: a namespace's own, when it has one.
		if ns := e.o.NetNS; ns != "" && !strings.Contains(ns, "/") {
			if own := filepath.Join("/etc/netns", ns, "resolv.conf"); fileExists(own) {
				path = own
			}
		}
	}
	return resolve.FromResolvConf(path)
}

// nameNotes say in a plan what each domain name resolved to.
func nameNotes(names []resolve.Answer) []string {
	var out []string
	for _, a := range names {
		if len(a.Addrs) == 0 {
			out = append(out, fmt.Sprintf("domain %s: no address now (its rules match nothing)", a.Name))
			continue
		}
		addrs := make([]string, len(a.Addrs))
		for i, x := range a.Addrs {
			addrs[i] = x.String()
		}
		stale := ""
		if a.Stale != "" {
			stale = "; the last known: it no longer resolves"
		}
		out = append(out, fmt.Sprintf("domain %s: %s (TTL %s%s)", a.Name, strings.Join(addrs, ", "), a.TTL, stale))
	}
	return out
}

// NameStates are the domain names as the agent keeps them (none without
// a cache).
func (e *Engine) NameStates() []resolve.Answer {
	if e.names == nil {
		return nil
	}
	return e.nameStatus(0)
}

// nameStatus is status's view of the domain names: the agent's (its
// cache), else those generation gen recorded.
func (e *Engine) nameStatus(gen int) []resolve.Answer {
	var out []resolve.Answer
	if e.names != nil {
		e.names.mu.Lock()
		defer e.names.mu.Unlock()
		for name, st := range e.names.names {
			a := resolve.Answer{Name: name, TTL: st.ttl}
			for addr := range st.seen {
				a.Addrs = append(a.Addrs, addr)
			}
			if st.err != nil {
				a.Stale = st.err.Error()
			}
			slices.SortFunc(a.Addrs, func(x, y netip.Addr) int { return x.Compare(y) })
			out = append(out, a)
		}
	} else if gen > 0 {
		if g, err := e.store.Load(gen); err == nil {
			for name, addrs := range recordedAddrs(g.Names) {
				out = append(out, resolve.Answer{Name: name, Addrs: addrs})
			}
		}
	}
	slices.SortFunc(out, func(a, b resolve.Answer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// recordedAddrs are the addresses a generation recorded for its names
// (state.Generation.Names), by name.
func recordedAddrs(names map[string][]string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for name, as := range names {
		out[name] = nil
		for _, a := range as {
			if x, err := netip.ParseAddr(a); err == nil {
				out[name] = append(out[name], x)
			}
		}
	}
	return out
}
