package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/ruleset"
)

// A drift is a change to table inet hostwall made by another program, as
// an operator's nft command would: an address added to a set, or a rule
// appended to a chain. It runs in a process of its own (this binary again,
// -drift), for the agent's and this benchmark's event watchers tell their
// own process's transactions apart; and through the library, for on a
// busy host nft itself never finishes such a change: it reads the set
// again whenever the generation moves while it reads, and reading a
// 100,000-network set takes longer than the other program's 50 ms.
type drift struct {
	ns, set, chain string
	addr           netip.Addr // for set
	port           uint16     // for chain
}

func (d drift) args() []string {
	if d.set != "" {
		return []string{"-drift", strings.Join([]string{d.ns, "element", d.set, d.addr.String()}, ",")}
	}
	return []string{"-drift", strings.Join([]string{d.ns, "rule", d.chain, strconv.Itoa(int(d.port))}, ",")}
}

// run makes the drift from a process of its own.
func (d drift) run() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if out, err := exec.Command(self, d.args()...).CombinedOutput(); err != nil {
		return fmt.Errorf("drift %v: %v: %s", d.args(), err, out)
	}
	return nil
}

// makeDrift is -drift: NS,element,SET,ADDR or NS,rule,CHAIN,PORT.
func makeDrift(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		return fmt.Errorf("-drift %q: want NS,element,SET,ADDR or NS,rule,CHAIN,PORT", spec)
	}
	ns, err := os.Open("/run/netns/" + f[0])
	if err != nil {
		return err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return err
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "hostwall"}
	switch f[1] {
	case "element":
		a, err := netip.ParseAddr(f[3])
		if err != nil || !a.Is4() {
			return fmt.Errorf("-drift: %q is not an IPv4 address", f[3])
		}
		set := &nftables.Set{Table: table, Name: f[2], KeyType: nftables.TypeIPAddr, Interval: true}
		end := a.Next().As4()
		start := a.As4()
		if err := c.SetAddElements(set, []nftables.SetElement{{Key: start[:]}, {Key: end[:], IntervalEnd: true}}); err != nil {
			return err
		}
	case "rule":
		port, err := strconv.ParseUint(f[3], 10, 16)
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: table, Chain: &nftables.Chain{Name: f[2], Table: table}, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(port))},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	default:
		return fmt.Errorf("-drift: %q is neither element nor rule", f[1])
	}
	return c.Flush()
}

// targets names an IPv4 selector set and a policy chain of hostwall's,
// read with hostwall's own reader (nft -t list table does not finish on a
// busy host, for the reason above).
func targets(ns string) (set, chain string, err error) {
	c, err := nft.Open(nft.Options{NetNS: ns, Follow: true})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	t, _, err := c.Read(context.Background())
	if err != nil || t == nil {
		return "", "", fmt.Errorf("reading table inet hostwall: %v", err)
	}
	// A selector set of 32,768 networks and more is sharded: its slot
	// sets are named sel-…-4/00 to /63 (docs/kernel.md), and drift of
	// one is drift of a set element all the same.
	for _, s := range t.Sets {
		base, _, _ := strings.Cut(s.Name, "/")
		if strings.HasPrefix(base, "sel-") && strings.HasSuffix(base, "-4") && s.Type == ruleset.TypeIPv4Addr && set == "" {
			set = s.Name
		}
	}
	for _, ch := range t.Chains {
		if strings.HasPrefix(ch.Name, "pol/") && strings.HasSuffix(ch.Name, "/in") && chain == "" {
			chain = ch.Name
		}
	}
	if set == "" || chain == "" {
		return "", "", fmt.Errorf("no selector set or policy chain in table inet hostwall")
	}
	return set, chain, nil
}
