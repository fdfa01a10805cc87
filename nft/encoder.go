package nft

// The library as the encoder of a batch.
//
// google/nftables v0.3.0 asks the kernel for an acknowledgement of every
// message of a batch and for an echo of every rule, and its Flush receives
// them one recvmsg at a time: for a 10,000-rule batch that is over 20,000
// replies the kernel builds (each echo a full dump of its rule) and we read,
// and nothing in v0.3.0 turns them off (trap 13 in docs/kernel.md;
// upstream stopped asking for acknowledgements after v0.3.0, in
// google/nftables#336, not released). So hostwall lets the library encode
// every message — tables, chains, rules and their expressions, sets and
// elements are the library's bytes, unchanged — and sends them itself
// (commit.go), the way nft does: no acknowledgements, no echoes, errors only.
//
// The library offers one way to have its messages without sending them: a
// connection made with WithTestDial hands the batch to a function instead of
// a socket. encode uses that, on a connection of its own for each part of a
// batch, so the parts encode side by side on every core.

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// okReply is what the capturing connection answers to each of the library's
// reads for an acknowledgement: an NLMSG_ERROR with error code 0. Read only.
var okReply = []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}

// encode returns the messages add queues on a library connection, in order,
// without the batch's begin and end markers. Nothing is sent anywhere.
func encode(add func(nl *nftables.Conn) error) ([]netlink.Message, error) {
	var batch []netlink.Message
	nl, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			// Flush reads an acknowledgement per message it sent.
			return okReply, nil
		}
		batch = req
		return nil, nil
	}))
	if err != nil {
		return nil, err
	}
	if err := add(nl); err != nil {
		return nil, err
	}
	// Flush returns the first encoding error the library kept, if any.
	if err := nl.Flush(); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	if len(batch) < 2 {
		return nil, nil // nothing was queued
	}
	return batch[1 : len(batch)-1], nil
}
