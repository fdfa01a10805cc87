// Package churn is the other program of the busy-host benchmarks and
// tests: it changes a table of its own (table ip busy) a number of times a
// second, as Docker, fail2ban or kube-proxy do. It commits through the library,
// one element added or deleted per transaction: nft, which reads every
// table's sets before each command, spends about half a second per
// command beside a 100,000-network table of hostwall's and could neither
// keep the rate nor leave the CPU to what is measured.
package churn

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"

	"github.com/hostwall/hostwall/internal/netif"
)

// Run changes table ip busy in the namespace ns (a name under /run/netns,
// or a path) rate times a second (0: back to back) until ctx ends, calling
// committed (if set) after each transaction, and returns how many it
// committed. It makes the table, and removes it at the end.
func Run(ctx context.Context, ns string, rate int, committed func()) (int, error) {
	f, err := os.Open(netif.Path(ns))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return 0, err
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "busy"})
	set := &nftables.Set{Table: table, Name: "s", KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(set, nil); err != nil {
		return 0, err
	}
	if err := c.Flush(); err != nil {
		return 0, fmt.Errorf("making table ip busy: %w", err)
	}
	defer func() {
		c.DelTable(table)
		c.Flush()
	}()
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	n := 0
	for {
		if ctx.Err() != nil {
			return n, nil
		}
		if tick != nil {
			select {
			case <-ctx.Done():
				return n, nil
			case <-tick:
			}
		}
		elem := []nftables.SetElement{{Key: []byte{10, 9, byte(n / 2 >> 8), byte(n / 2)}}}
		if n%2 == 0 {
			err = c.SetAddElements(set, elem)
		} else {
			err = c.SetDeleteElements(set, elem)
		}
		if err != nil {
			return n, err
		}
		if err := c.Flush(); err != nil {
			return n, fmt.Errorf("transaction %d of table ip busy: %w", n+1, err)
		}
		n++
		if committed != nil {
			committed()
		}
	}
}
