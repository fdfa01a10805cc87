package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Generation reads the kernel's nftables ruleset generation id, which every
// committed transaction (by anyone) increments. google/nftables v0.3.0 has no
// getter for it (trap 8), so this sends NFT_MSG_GETGEN itself.
func (c *Conn) Generation() (uint32, error) {
	nc, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFD})
	if err != nil {
		return 0, wrapPerm(fmt.Errorf("dialing netlink for the generation: %w", err))
	}
	defer nc.Close()
	msgs, err := nc.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		// struct nfgenmsg: family, version, resource id.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, wrapPerm(fmt.Errorf("querying the nftables generation: %w", err))
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
		if err := ad.Err(); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("querying the nftables generation: no NFTA_GEN_ID in the reply")
}
