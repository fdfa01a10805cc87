package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/ruleset"
)

const tableName = ruleset.TableName

// maxReadAttempts bounds how often Read retries when another writer commits
// while it reads.
const maxReadAttempts = 5

// Read returns table inet hostwall as the kernel holds it (nil when it does
// not exist) and the ruleset generation it was read at. The read is a
// consistent snapshot of the table: Read follows the kernel's events while
// it reads (Watch, unless something follows them already), so when other
// programs' transactions move the generation under it — on a busy host
// they come faster than a large table is read — the events tell whether
// they left the table alone (Untouched), and only a transaction that
// touched it makes Read read again.
func (c *Conn) Read(ctx context.Context) (*ruleset.Table, uint32, error) {
	return c.ReadLike(ctx, nil)
}

// ReadLike is Read, except that a set holding exactly the elements of the
// set of its name in like (the desired table) takes like's elements
// instead of its own decoding of them, as soon as it is read: reading a
// table that holds a million networks then holds one set's decoding at a
// time, not a second copy of the million (the agent's verification of its
// first apply, and every periodic one, peaked at ~340 MB before). Callers
// do not change a read's elements (engine.Kernel), so sharing is safe.
func (c *Conn) ReadLike(ctx context.Context, like *ruleset.Table) (*ruleset.Table, uint32, error) {
	var t *ruleset.Table
	gen, err := c.consistently(ctx, "table inet "+tableName, func() (err error) {
		t, err = c.read(like)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return t, gen, nil
}

// consistently runs read until the generation is the same before and after
// it, or moved only by transactions that left the table alone (Untouched),
// following the events while it reads (readFollowing); it returns that
// generation. what names what is read, for the error.
func (c *Conn) consistently(ctx context.Context, what string, read func() error) (uint32, error) {
	stop, err := c.readFollowing()
	if err != nil {
		return 0, err
	}
	defer stop()
	for attempt := 0; attempt < maxReadAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		before, err := c.Generation()
		if err != nil {
			return 0, err
		}
		rerr := read()
		after, err := c.Generation()
		if err != nil {
			return 0, err
		}
		untouched := before == after || c.Untouched(ctx, before, after)
		switch {
		case rerr != nil && untouched:
			return 0, rerr
		case rerr != nil:
			// Another program changed the table while it was read: a
			// chain or set that went away answers ENOENT (which the
			// library's GetSets and GetRules do not wrap, so it cannot
			// be told apart), and the table is read again as it is now.
		case untouched:
			return after, nil
		}
	}
	return 0, fmt.Errorf("reading %s: the ruleset kept changing under us (%d attempts)", what, maxReadAttempts)
}

// duringRead, when set by a test, runs in each attempt of a read of the
// table, once the table was found.
var duringRead func()

// readFollowing follows the kernel's events for a read, unless something
// follows them already (Options.Follow, the agent's Watch): stop ends that
// subscription once the read is done. A command that only reads listens
// no longer than it reads: while anything listens, the kernel makes a
// notification of every element of every transaction on the host
// (docs/design.md, "Listening costs kernel memory").
func (c *Conn) readFollowing() (stop func(), err error) {
	c.followMu.Lock()
	defer c.followMu.Unlock()
	if c.following() || c.stopFollow != nil {
		return func() {}, nil
	}
	return c.watchSilently()
}

// follow follows the kernel's events for the connection's lifetime
// (Options.Follow): reads and batches then tell others' transactions from
// changes to the table.
func (c *Conn) follow() (err error) {
	c.followMu.Lock()
	defer c.followMu.Unlock()
	if c.following() || c.stopFollow != nil {
		return nil
	}
	c.stopFollow, err = c.watchSilently()
	return err
}

// watchSilently starts a Watch of the connection's own, reporting nothing;
// stop ends it and returns once it has ended.
func (c *Conn) watchSilently() (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	done, err := c.startWatch(ctx, func(Change) {})
	if err != nil {
		cancel()
		return nil, err
	}
	return func() { cancel(); <-done }, nil
}

// following reports whether a Watch runs on the connection (its own, or
// the caller's): Untouched can then answer.
func (c *Conn) following() bool {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	return c.watch.running
}

func (c *Conn) read(like *ruleset.Table) (*ruleset.Table, error) {
	tables, err := c.nl.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, wrapPerm(fmt.Errorf("listing tables: %w", err))
	}
	var flags uint32
	found := false
	for _, t := range tables {
		if t.Name == tableName {
			found, flags = true, tableFlags(t)
		}
	}
	if !found {
		return nil, nil
	}
	if duringRead != nil {
		duringRead()
	}
	nt := c.table()
	out := ruleset.NewTable()
	out.Dormant = flags&unix.NFT_TABLE_F_DORMANT != 0
	out.Owned = flags&tableFOwner != 0
	if out.Chains, err = c.readChains(); err != nil {
		return nil, err
	}
	sets, err := c.nl.GetSets(nt)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	alike := map[string]*ruleset.Set{}
	if like != nil {
		for _, s := range like.Sets {
			alike[s.Name] = s
		}
	}
	for _, s := range sets {
		if s.Anonymous {
			continue // belongs to the rule that uses it
		}
		rs := &ruleset.Set{Name: s.Name, Interval: s.Interval, Map: s.IsMap, Type: ruleset.SetType(s.KeyType.Name), Timeout: s.Timeout != 0}
		elems, err := c.nl.GetSetElements(s)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("reading elements of set %q: %w", s.Name, err)
		}
		if s.IsMap {
			rs.Type = mapKeyType(s, elems)
		}
		if rs.Elements, err = decodeElements(rs, elems); err != nil {
			return nil, err
		}
		if l := alike[rs.Name]; l != nil && rs.SameShape(l) && sameElements(rs.Elements, l.Elements) {
			rs.Elements = l.Elements
		}
		// Not normalised: merging live elements would plan deletions of
		// elements the kernel does not hold as such.
		out.Sets = append(out.Sets, rs)
	}
	out.Sort()
	return out, nil
}

// sameElements reports whether a set read (live, its own decoding: sorted
// here if need be) holds exactly the elements want, verdicts included.
func sameElements(live, want []ruleset.Element) bool {
	if len(live) != len(want) {
		return false
	}
	if !slices.IsSortedFunc(live, ruleset.CompareElements) {
		slices.SortFunc(live, ruleset.CompareElements)
	}
	return slices.EqualFunc(live, want, ruleset.Element.Equal)
}

// readChains reads the table's chains and their rules.
func (c *Conn) readChains() ([]*ruleset.Chain, error) {
	chains, err := c.nl.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	var out []*ruleset.Chain
	for _, ch := range chains {
		if ch.Table.Name != tableName {
			continue
		}
		rc := &ruleset.Chain{Name: ch.Name, Base: decodeBase(ch)}
		rules, err := c.nl.GetRules(c.table(), ch)
		if err != nil {
			return nil, fmt.Errorf("reading rules of chain %q: %w", ch.Name, err)
		}
		for _, r := range rules {
			rc.Rules = append(rc.Rules, decodeRule(r))
		}
		out = append(out, rc)
	}
	return out, nil
}

// ReadChains returns the chains of table inet hostwall and their rules, as
// Read would, and the generation they were read at: what a plan needs
// when only chains or rules changed since a read (Changes), without the
// sets' elements — a 100,000-network set takes most of a read.
func (c *Conn) ReadChains(ctx context.Context) ([]*ruleset.Chain, uint32, error) {
	var chains []*ruleset.Chain
	gen, err := c.consistently(ctx, "the chains of table inet "+tableName, func() (err error) {
		chains, err = c.readChains()
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	t := &ruleset.Table{Chains: chains}
	t.Sort() // in Read's order
	return t.Chains, gen, nil
}

// tableFOwner is NFT_TABLE_F_OWNER (Linux 5.12), which x/sys/unix lacks:
// the table belongs to the netlink socket that made it.
const tableFOwner = 0x2

// tableFlags are a table's NFTA_TABLE_FLAGS. The library reads the
// attribute in the host's byte order; netlink sends it big-endian.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

func decodeBase(ch *nftables.Chain) *ruleset.BaseChain {
	if ch.Hooknum == nil {
		return nil
	}
	b := &ruleset.BaseChain{Type: ruleset.ChainType(ch.Type), Policy: ruleset.PolicyAccept}
	switch *ch.Hooknum {
	case *nftables.ChainHookInput:
		b.Hook = ruleset.HookInput
	case *nftables.ChainHookOutput:
		b.Hook = ruleset.HookOutput
	case *nftables.ChainHookForward:
		b.Hook = ruleset.HookForward
	case *nftables.ChainHookPrerouting:
		b.Hook = ruleset.HookPrerouting
	default:
		b.Hook = ruleset.Hook(fmt.Sprintf("hook-%d", *ch.Hooknum))
	}
	if ch.Priority != nil {
		b.Priority = int(*ch.Priority)
	}
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		b.Policy = ruleset.PolicyDrop
	}
	return b
}

// mapKeyType is the key type of a verdict map, which the library
// overwrites with "verdict" as it reads the map (trap 5), key length
// included. hostwall's maps are keyed by interface name (the endpoint
// maps) or, with intervals, by address (a sharded set's dispatch map),
// whose keys are 4 bytes long for IPv4 and 16 for IPv6. A dispatch map
// emptied by another program has no key left to tell: its name does,
// the name of the set it dispatches ending in "-6" for IPv6 (compile's
// set names; taking it for IPv4 planned the map's replacement, which the
// kernel refuses while a rule uses it).
func mapKeyType(s *nftables.Set, elems []nftables.SetElement) ruleset.SetType {
	switch {
	case !s.Interval:
		return ruleset.TypeIfName
	case len(elems) > 0 && len(elems[0].Key) == 16:
		return ruleset.TypeIPv6Addr
	case len(elems) > 0:
		return ruleset.TypeIPv4Addr
	}
	if set, _, _ := strings.Cut(s.Name, "/"); strings.HasSuffix(set, "-6") {
		return ruleset.TypeIPv6Addr
	}
	return ruleset.TypeIPv4Addr
}
