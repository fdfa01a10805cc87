// Package agent orchestrates hostwall's one path from desired table to
// kernel: read, diff, apply, verify. The CLI commands are single passes of it;
// the daemon (a later addition) runs it in a loop.
//
// It talks to the kernel only through the Kernel interface, which nft.Conn
// and nfttest.Fake implement.
package agent
