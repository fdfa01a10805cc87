package nft

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Generation reads the kernel's nftables ruleset generation id, which every
// committed transaction (by anyone) increments. google/nftables v0.3.0 has no
// getter for it (trap 8), so this sends NFT_MSG_GETGEN itself (commit.go).
func (c *Conn) Generation() (uint32, error) {
	nc, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFD})
	if err != nil {
		return 0, wrapPerm(fmt.Errorf("dialing netlink for the generation: %w", err))
	}
	defer nc.Close()
	gen, err := queryGen(nc)
	if err != nil {
		return 0, wrapPerm(fmt.Errorf("querying the nftables generation: %w", err))
	}
	return gen, nil
}
