package nft

// The kernel's expiry scan of interval sets (trap 14 in docs/kernel.md).
//
// A commit that changes an interval set rebuilds the set's lookup array
// from its tree, and, once the set's gc-interval has passed since the last
// time, first walks the whole tree for expired elements (nft_rbtree_commit,
// Linux 6.18). The gc-interval is 1 s unless the set says otherwise, and
// only a set with the timeout flag may: so the first change to a
// 100,000-network blocklist after a second of quiet — every change, in
// practice — walked 200,000 nodes for elements that cannot expire, ~13 ms
// of a ~55 ms apply (`perf record -g`: rb_next under nft_rbtree_commit,
// 22% of W2's samples). hostwall's address sets therefore carry the timeout
// flag and the longest gc-interval the kernel takes; no element is ever
// given a timeout, so none expires, and lookups are as before (the flag
// adds no work to the lookup of an element without a timeout). The
// library (v0.3.0) has the flag but cannot send a gc-interval, so it is
// added to the library's NEWSET message here.

import (
	"encoding/binary"
	"math"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/ruleset"
)

// gcInterval is the gc-interval of hostwall's address sets, in ms: the
// longest there is (49 days 17 h).
const gcInterval = math.MaxUint32

// longGC reports whether s is made with the timeout flag and gcInterval:
// the address sets, which blocklists make large.
func longGC(s *ruleset.Set) bool {
	return s.Interval && !s.Map && (s.Type == ruleset.TypeIPv4Addr || s.Type == ruleset.TypeIPv6Addr)
}

// msgNewSet is the nftables message that creates a set.
const msgNewSet = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET)

// withGCInterval appends NFTA_SET_GC_INTERVAL to each NEWSET message of
// msgs whose set has the timeout flag (longGC's: encodeSet sets it).
func withGCInterval(msgs []netlink.Message) error {
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != msgNewSet || len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:]) // after the nfgenmsg header
		if err != nil {
			return err
		}
		ad.ByteOrder = binary.BigEndian
		timeout, has := false, false
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_FLAGS:
				timeout = ad.Uint32()&unix.NFT_SET_TIMEOUT != 0
			case unix.NFTA_SET_GC_INTERVAL:
				has = true
			}
		}
		if err := ad.Err(); err != nil {
			return err
		}
		if !timeout || has {
			continue
		}
		ae := netlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.Uint32(unix.NFTA_SET_GC_INTERVAL, gcInterval)
		attr, err := ae.Encode()
		if err != nil {
			return err
		}
		m.Data = append(m.Data[:len(m.Data):len(m.Data)], attr...)
	}
	return nil
}
