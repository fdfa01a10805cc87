package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostwall/hostwall/agent"
	"github.com/hostwall/hostwall/config"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/observe"
)

// dropFilter keeps the drops the flags ask for.
type dropFilter struct {
	iface, src, dst, policy string
	port                    int
	srcNet, dstNet          netip.Prefix
	// staged keeps the packets the staged view would drop, and only them.
	staged bool
}

func (f *dropFilter) parse() error {
	for _, p := range []struct {
		flag, v string
		out     *netip.Prefix
	}{{"--src", f.src, &f.srcNet}, {"--dst", f.dst, &f.dstNet}} {
		if p.v == "" {
			continue
		}
		if a, err := netip.ParseAddr(p.v); err == nil {
			*p.out = netip.PrefixFrom(a, a.BitLen())
			continue
		}
		n, err := netip.ParsePrefix(p.v)
		if err != nil {
			return fmt.Errorf("%s %q: an address or a network (10.0.0.0/8)", p.flag, p.v)
		}
		*p.out = n.Masked()
	}
	if f.port < 0 || f.port > 65535 {
		return fmt.Errorf("--port %d: a port is 0 to 65535", f.port)
	}
	return nil
}

func (f *dropFilter) keep(d observe.Drop) bool {
	p := d.Packet
	switch {
	case d.Staged != f.staged:
		return false
	case f.iface != "" && d.Iface != f.iface:
		return false
	case f.srcNet.IsValid() && !f.srcNet.Contains(p.Src):
		return false
	case f.dstNet.IsValid() && !f.dstNet.Contains(p.Dst):
		return false
	case f.port > 0 && int(p.SPort) != f.port && int(p.DPort) != f.port:
		return false
	case f.policy != "" && (d.Decided == nil || d.Decided.Policy != f.policy):
		return false
	}
	return true
}

func newDropsCmd(g *globals) *cobra.Command {
	var (
		f              dropFilter
		follow, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "drops [--follow] [--json] [--staged] [--iface IF] [--src A] [--dst A] [--port N] [--policy P]",
		Short: "Show the packets the ruleset drops, and what dropped each",
		Long: `drops shows the packets hostwall's ruleset dropped: each with its host
endpoint, direction, interface, protocol, addresses and ports, and what
decided — the tier, policy and rule, the end of a tier, or the default
deny — in the words explain uses.

The kernel logs drops to an NFLOG group (settings { drop_log_group },
9631 by default) at most drop_log_rate a second for each deciding rule
(5 by default), so a flood shows as a sample: the counters (hostwall
status, the metrics) count every packet.

With an agent running, drops shows the last drops it kept and, with
--follow, each new one as it comes. Without an agent, --follow listens to
the group itself (only one program can: the agent, or one hostwall drops).

With --staged, drops shows instead the packets the staged view would drop
that the policies in force allow (the staged policies' would-be drops),
each with the staged view's decider: what promoting the staged policies
would newly drop. They are logged at the same rate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.parse(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			print := func(d observe.Drop) error {
				if !f.keep(d) {
					return nil
				}
				if asJSON {
					return json.NewEncoder(out).Encode(d)
				}
				_, err := fmt.Fprintln(out, d.String())
				return err
			}
			if f.staged {
				g.noteUncounted()
			}
			err := agentDrops(ctx, socket(g.loader()), follow, print)
			var nl *notListeningError
			switch {
			case errors.As(err, &nl) && follow:
				fmt.Fprintf(os.Stderr, "notice: the agent does not listen to the drop log (%s); listening here\n", nl.why)
			case errors.As(err, &nl):
				fmt.Fprintf(os.Stderr, "notice: the agent does not listen to the drop log (%s); hostwall drops --follow listens here\n", nl.why)
				return nil
			case !errors.Is(err, agent.ErrNoAgent):
				return err
			case !follow:
				return errors.New("no agent is running, so no drops were kept: hostwall drops --follow listens to the drop log now")
			}
			return g.listenDrops(ctx, print)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep showing drops as they come, until interrupted")
	fl.BoolVar(&asJSON, "json", false, "one JSON object a line")
	fl.StringVar(&f.iface, "iface", "", "only drops on this interface")
	fl.StringVar(&f.src, "src", "", "only drops from this address or network")
	fl.StringVar(&f.dst, "dst", "", "only drops to this address or network")
	fl.IntVar(&f.port, "port", 0, "only drops from or to this port")
	fl.StringVar(&f.policy, "policy", "", "only drops by a rule of this policy")
	fl.BoolVar(&f.staged, "staged", false, "the packets the staged view would drop that are allowed now, instead")
	return cmd
}

// notListeningError is the agent's answer when it does not listen to the
// drop log (it printed what it kept).
type notListeningError struct{ why string }

func (e *notListeningError) Error() string {
	return "the agent does not listen to the drop log: " + e.why
}

// agentDrops asks the agent on path for its drops (and, with follow, each
// new one) and prints them; agent.ErrNoAgent when none listens, a
// *notListeningError when the agent does not listen to the drop log.
func agentDrops(ctx context.Context, path string, follow bool, print func(observe.Drop) error) error {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return agent.ErrNoAgent
		}
		return fmt.Errorf("connecting to the agent: %w", err)
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(conn).Encode(agent.Request{Command: "drops", Follow: follow}); err != nil {
		return fmt.Errorf("talking to the agent: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(conn))
	for first := true; ; first = false {
		var resp agent.Response
		if err := dec.Decode(&resp); err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case !first:
				// The agent ends a stream it could not write to for 10 s.
				if _, serr := agent.CallWithin(path, agent.Request{Command: "status"}, 3*time.Second); serr == nil {
					return errors.New("the agent ended the stream: this hostwall drops did not read what it sent for 10 s (hostwall drops shows the last ones)")
				}
				return errors.New("the agent stopped")
			}
			return fmt.Errorf("reading the agent's answer: %w", err)
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		if first {
			conn.SetDeadline(time.Time{})
		}
		if resp.Skipped > 0 {
			fmt.Fprintf(os.Stderr, "notice: %d drops not shown: this hostwall drops fell behind\n", resp.Skipped)
		}
		if resp.Lost {
			fmt.Fprintln(os.Stderr, "notice: some drops were lost: the agent fell behind the kernel")
		}
		for _, d := range resp.Drops {
			if err := print(d); err != nil {
				return err
			}
		}
		if first && resp.NotListening != "" {
			return &notListeningError{resp.NotListening}
		}
		if !follow {
			return nil
		}
	}
}

// noteUncounted says so when the generation in force counts no staged
// view, which hostwall drops --staged would wait for in vain.
func (g *globals) noteUncounted() {
	e, closeKernel, err := g.engine()
	if err != nil {
		return
	}
	defer closeKernel()
	if x, err := e.Index(); err == nil && x.Generation > 0 && !x.HasStaged() {
		fmt.Fprintf(os.Stderr, "notice: generation %d counts no staged view: no staged policy changes what an endpoint here decides, or the view was left out (hostwall validate says why)\n", x.Generation)
	}
}

// listenDrops listens to the drop log itself (no agent does), decoding
// by the generation in force — the one in force when each packet comes,
// listening to its group — until ctx ends.
func (g *globals) listenDrops(ctx context.Context, print func(observe.Drop) error) error {
	e, closeKernel, err := g.engine()
	if err != nil {
		return err
	}
	defer closeKernel()
	x, err := e.Index()
	if err != nil {
		return err
	}
	group := uint16(config.DefaultDropLogGroup)
	switch {
	case x.Generation == 0:
		fmt.Fprintf(os.Stderr, "notice: no generation is recorded yet; listening to NFLOG group %d\n", group)
	case !x.DropLog:
		return fmt.Errorf("generation %d logs no drops (settings { drop_log = false }, or no host endpoint here): there is nothing to listen to", x.Generation)
	default:
		group = x.Group
	}
	logged := make(chan observe.Logged, 1024)
	var skipped atomic.Int64
	listen := func(group uint16) (context.CancelFunc, <-chan struct{}, error) {
		lctx, stop := context.WithCancel(ctx)
		done, err := nft.ListenDrops(lctx, nft.Options{NetNS: g.netns}, group, func(l observe.Logged) {
			select {
			case logged <- l:
			default: // printing fell behind: the kernel's rate limit is per rule, ours is the terminal's
				skipped.Add(1)
			}
		}, func(err error) {
			fmt.Fprintf(os.Stderr, "notice: some drops were lost: this hostwall drops fell behind the kernel (%v)\n", err)
		})
		if err != nil {
			stop()
			return nil, nil, err
		}
		fmt.Fprintf(os.Stderr, "Listening to the drop log (NFLOG group %d, generation %d); interrupt to stop.\n", group, x.Generation)
		return stop, done, nil
	}
	stop, done, err := listen(group)
	if err != nil {
		return err
	}
	defer func() { stop() }()
	for {
		select {
		case l := <-logged:
			if n := skipped.Swap(0); n > 0 {
				fmt.Fprintf(os.Stderr, "notice: %d drops not shown: this hostwall drops fell behind\n", n)
			}
			if now, err := e.Index(); err == nil && now.Generation != x.Generation {
				x = now // a change was applied: decode by it
				if x.DropLog && x.Group != group {
					fmt.Fprintf(os.Stderr, "notice: generation %d logs drops to NFLOG group %d\n", x.Generation, x.Group)
					stop()
					<-done
					group = x.Group
					if stop, done, err = listen(group); err != nil {
						return err
					}
					continue
				}
			}
			if err := print(x.Decode(l)); err != nil {
				return err
			}
		case <-done:
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("the drop log stopped")
		}
	}
}

// printStaged shows status's staged view: per endpoint and direction, and
// per staged policy, where it disagrees with the policies in force.
func printStaged(out io.Writer, s *engine.Status) {
	if len(s.Staged) == 0 {
		return
	}
	fmt.Fprintln(out, "Staged (what promoting the staged policies would change; hostwall drops --staged shows the packets):")
	for _, c := range s.Staged {
		changes := fmt.Sprintf("%d would newly be dropped, %d newly allowed", c.WouldDrop, c.WouldAllow)
		if c.Policy == "" {
			fmt.Fprintf(out, "  host endpoint %q, %s: %s\n", c.Endpoint, c.Direction, changes)
			continue
		}
		fmt.Fprintf(out, "  staged policy %q (tier %q), %s: decides %d %s; %s\n", c.Policy, c.Tier, c.Direction, c.Decided, plural(int(c.Decided), "packet", "packets"), changes)
	}
}

// printDrops shows status's drops: the deciders that dropped the most,
// and the last drops the agent kept.
func printDrops(out io.Writer, s *engine.Status) {
	if len(s.TopDrops) > 0 {
		since := "since the kernel's rules were made"
		if !s.DropsSince.IsZero() {
			since = "since the agent started, " + s.DropsSince.Format(time.DateTime)
		}
		fmt.Fprintf(out, "Top drops (%s):\n", since)
		for _, d := range s.TopDrops {
			fmt.Fprintf(out, "  %d %s  %s\n", d.Packets, plural(int(d.Packets), "packet", "packets"), d.Decided.String())
		}
	}
	var recent []observe.Drop // the staged view's would-be drops are not drops
	for _, d := range s.RecentDrops {
		if !d.Staged {
			recent = append(recent, d)
		}
	}
	if len(recent) > 0 {
		fmt.Fprintln(out, "Last drops (hostwall drops --follow shows them as they come):")
		for _, d := range recent {
			fmt.Fprintf(out, "  %s\n", strings.TrimSpace(d.String()))
		}
	}
}
