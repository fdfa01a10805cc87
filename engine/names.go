package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/resolve"
)

// resolveTimeout bounds the resolution of all of a configuration's names.
const resolveTimeout = 10 * time.Second

// resolveNames looks up names (cfg's) in the namespace: by the host
// block's dns_servers, else the namespace's resolv.conf. A name that does
// not resolve has no address (its rules match nothing, which compile
// warns of); why is a warning here.
func (e *Engine) resolveNames(cfg *config.Config, names []string) ([]resolve.Answer, hcl.Diagnostics) {
	var (
		out   []resolve.Answer
		diags hcl.Diagnostics
	)
	run := func() error {
		r, err := e.resolver(cfg)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		defer cancel()
		for _, name := range names {
			a, err := r.Lookup(ctx, name)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Domain name did not resolve",
					Detail: fmt.Sprintf("%s: %v. Its rules match nothing until it does.", name, err)})
				a = resolve.Answer{Name: name}
			}
			out = append(out, a)
		}
		return nil
	}
	if err := netif.In(netif.Path(e.o.NetNS), run); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Domain names not resolved",
			Detail: fmt.Sprintf("%v. The rules naming %s match nothing until they resolve.", err, strings.Join(names, ", "))})
		out = nil
		for _, name := range names {
			out = append(out, resolve.Answer{Name: name})
		}
	}
	return out, diags
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
		out = append(out, fmt.Sprintf("domain %s: %s (TTL %s)", a.Name, strings.Join(addrs, ", "), a.TTL))
	}
	return out
}
