package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/ruleset"
	"github.com/hostwall/hostwall/state"
)

// verifiedKey is what a compiled ruleset depends on besides the files: this
// very binary (path, size, modification time — any rebuild changes it), the
// namespace's identity (a namespace made again under the same name starts
// its generations again), the host name as flag and as the kernel says it,
// the configuration directory and the limits.
func (g *globals) verifiedKey() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	bin, err := os.Stat(exe)
	if err != nil {
		return "", err
	}
	nsFile := "/proc/self/ns/net"
	if g.netns != "" {
		nsFile = nft.NetNSPath(g.netns)
	}
	ns, err := os.Stat(nsFile)
	if err != nil {
		return "", err
	}
	st, ok := ns.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("no inode for %s", nsFile)
	}
	dir, err := filepath.Abs(g.configDir)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	h := sha256.New()
	fmt.Fprintf(h, "%s %d %d\nns %d:%d\nhost %q %q\ndir %s\nlimits %+v %d\n",
		exe, bin.Size(), bin.ModTime().UnixNano(), st.Dev, st.Ino, g.hostName, host, dir, g.limits, g.maxFile)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordVerified notes that a full read at generation gen found the kernel
// holding desired, compiled from res for host. A failure only costs the
// next plan its shortcut, so it is reported as a notice.
func (g *globals) recordVerified(res *loader.Result, desired *ruleset.Table, host string, gen uint32) {
	key, err := g.verifiedKey()
	if err == nil {
		err = g.run().SaveVerified(g.netns, &state.Verified{Key: key, Generation: gen, ConfigHash: loader.HashSources(res.Sources),
			NetsFiles: res.NetsFiles(), HostName: host, Rules: desired.RuleCount()})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "notice: cannot record the verified state (the next plan reads the kernel): %v\n", err)
	}
}

// unchanged returns the record of the last full check when it still holds:
// same key, same files (read under the loader's checks), and a kernel whose
// ruleset generation has not moved since. Then the kernel holds exactly
// what the configuration compiles to, and a plan is empty without a
// compile or a read. Otherwise nil: plan the long way.
func (g *globals) unchanged() *state.Verified {
	v, err := g.run().LoadVerified(g.netns)
	if err != nil || v == nil {
		return nil
	}
	if key, err := g.verifiedKey(); err != nil || key != v.Key {
		return nil
	}
	srcs, err := loader.ReadSources(g.configDir, g.dirOptions(), v.NetsFiles)
	if err != nil || loader.HashSources(srcs) != v.ConfigHash {
		return nil
	}
	conn, err := g.open()
	if err != nil {
		return nil
	}
	defer conn.Close()
	if gen, err := conn.Generation(); err != nil || gen != v.Generation {
		return nil
	}
	return v
}
