package main_test

import (
	bin "encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/internal/netif"
	"github.com/hostwall/hostwall/internal/testns"
)

// TestOwnedTableIsNotHostwalls: another program deletes table inet
// hostwall and makes it again with the owner flag (as a copy would be: the
// kernel lets nobody add the flag to an existing table). The kernel then
// refuses every change to it from any other socket, and deletes it when
// the program's socket closes. plan and apply say so and change nothing,
// instead of taking it for hostwall's table (a copy's content would plan
// as "no changes" while it can vanish at any moment); once the program is
// gone, apply makes the table again.
func TestOwnedTableIsNotHostwalls(t *testing.T) {
	ns := testns.New(t)
	testns.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	dir := writeConfig(t, map[string]string{"policy.hcl": blocklistPolicy, "bl.txt": "10.0.0.0/30\n"})
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	testns.NFT(t, ns, "delete", "table", "inet", "hostwall")
	owner := ownTable(t, ns, "hostwall")
	for _, args := range [][]string{
		{"plan", "-c", dir, "--netns", ns},
		{"apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"},
	} {
		r := hostwall(t, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "owned by another program") {
			t.Errorf("%s with the table owned by another program: exit %d, want 1 saying so\n%s%s", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if table := testns.NFT(t, ns, "list", "table", "inet", "hostwall"); !strings.Contains(table, "flags owner") || strings.Contains(table, "chain") {
		t.Errorf("the owned table changed:\n%s", table)
	}
	owner.Close() // the kernel deletes the table with its owner's socket
	if r := hostwall(t, "", "apply", "-c", dir, "--netns", ns, "--auto-approve", "--confirm-timeout", "0"); r.code != 0 {
		t.Fatalf("apply once the owner is gone: exit %d\n%s", r.code, r.stderr)
	}
}

// ownTable makes table inet name in namespace ns with the owner flag, on a
// netlink socket of its own, which owns the table until it is closed.
func ownTable(t *testing.T, ns, name string) *netlink.Conn {
	t.Helper()
	f, err := os.Open(netif.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(name + "\x00")},
		{Type: unix.NFTA_TABLE_FLAGS, Data: bin.BigEndian.AppendUint32(nil, 0x2)}, // NFT_TABLE_F_OWNER
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	msgs := []netlink.Message{
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: batch},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE), Flags: netlink.Request | netlink.Acknowledge | netlink.Create},
			Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: batch},
	}
	if _, err := c.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receive(); err != nil {
		t.Fatalf("making the owned table: %v", err)
	}
	if table := testns.NFT(t, ns, "list", "table", "inet", name); !strings.Contains(table, "flags owner") {
		t.Fatalf("the table made is not owned:\n%s", table)
	}
	return c
}
