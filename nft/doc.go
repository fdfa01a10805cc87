// Package nft is hostwall's only netlink code: it reads table inet hostwall
// back into a ruleset.Table and applies a planner.Plan to it as one atomic
// batch. github.com/google/nftables reads the table and encodes every
// message of a batch; this package sends the batch itself, as nft does
// (encoder.go, commit.go).
//
// It works around the measured traps of google/nftables v0.3.0 (see
// docs/kernel.md): large socket buffers, element chunking under the 64 KiB
// attribute limit, a raw NFT_MSG_GETGEN query, batches without per-message
// acknowledgements or echoes that carry their generation for the kernel to
// check, decoding verdict-map data by hand, and verifying after every commit
// that the kernel holds what was sent. It never touches another table.
package nft
