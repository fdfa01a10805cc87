// Package nft is hostwall's only netlink code: it reads table inet hostwall
// back into a ruleset.Table and applies a planner.Plan to it as one atomic
// batch, through github.com/google/nftables.
//
// It works around the measured traps of google/nftables v0.3.0 (see
// docs/kernel.md): large socket buffers, element chunking under the 64 KiB
// attribute limit, a raw NFT_MSG_GETGEN query, decoding verdict-map data by
// hand, and verifying after every commit that the kernel holds what was
// sent. It never touches another table.
package nft
