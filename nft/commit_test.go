package nft

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/ruleset"
)

// everyKind is a plan with one change of every kind the batch builder
// writes: sets and chains created, updated and deleted, rules added,
// inserted and deleted, elements added and removed.
func everyKind() *planner.Plan {
	set := func(name string, nets ...string) *ruleset.Set {
		s := &ruleset.Set{Name: name, Type: ruleset.TypeIPv4Addr, Interval: true}
		for _, n := range nets {
			s.Elements = append(s.Elements, ruleset.PrefixElement(netip.MustParsePrefix(n)))
		}
		return s
	}
	rule := &ruleset.Rule{Matches: []ruleset.Match{ruleset.Port{Proto: 6, Dir: ruleset.Dst, Range: ruleset.PortRange{Lo: 22, Hi: 22}}}, Verdict: ruleset.Accept()}
	return &planner.Plan{Changes: []planner.Change{
		{Kind: planner.KindSet, Name: "new", Action: planner.Create, Set: &planner.SetDiff{After: set("new", "10.0.0.0/8"), Added: set("", "10.0.0.0/8").Elements}},
		{Kind: planner.KindSet, Name: "kept", Action: planner.Update, Set: &planner.SetDiff{Before: set("kept"), After: set("kept"),
			Added: set("", "192.0.2.0/24").Elements, Removed: set("", "198.51.100.0/24").Elements}},
		{Kind: planner.KindSet, Name: "gone", Action: planner.Delete, Set: &planner.SetDiff{Before: set("gone")}},
		{Kind: planner.KindChain, Name: "fresh", Action: planner.Create, Chain: &planner.ChainDiff{After: &ruleset.Chain{Name: "fresh", Rules: []*ruleset.Rule{rule}}}},
		{Kind: planner.KindChain, Name: "edited", Action: planner.Update, Chain: &planner.ChainDiff{
			Deleted: []*ruleset.Rule{{Handle: 7}}, Inserts: []planner.Insert{{Rule: rule, After: 3}}}},
		{Kind: planner.KindChain, Name: "old", Action: planner.Delete, Chain: &planner.ChainDiff{Before: &ruleset.Chain{Name: "old"}}},
	}}
}

// encodeEveryKind builds and encodes everyKind's batch; msgs are its
// messages as the library encodes them, in one part.
func encodeEveryKind(t *testing.T) (b *batch, f *frames, msgs []netlink.Message) {
	t.Helper()
	p := everyKind()
	b = &batch{table: (&Conn{}).table(), plan: p}
	b.build(p)
	f, err := b.encode()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err = encode(func(nl *nftables.Conn) error {
		for _, s := range b.steps {
			if err := s.add(nl); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = withGCInterval(msgs)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, f, msgs
}

func TestDescribeEveryMessage(t *testing.T) {
	b, f, _ := encodeEveryKind(t)
	describe := b.describer(f)
	var got []string
	for i := range f.n {
		got = append(got, describe(i))
	}
	want := []string{
		`create table "inet hostwall"`,
		`delete elements from set "kept"`,
		`flush set "gone"`,
		`delete a rule from chain "edited"`,
		`flush chain "old"`,
		`delete chain "old"`,
		`delete set "gone"`,
		`create set "new"`,
		`create chain "fresh"`,
		`add elements to set "new"`,
		`add elements to set "kept"`,
		`add a rule to chain "fresh": tcp dport 22 accept`,
		`add a rule to chain "edited": tcp dport 22 accept`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("descriptions of the batch's messages (-want +got):\n%s", diff)
	}
	if d := describe(-1); d != "the commit" {
		t.Errorf("describe(-1) = %q, want the commit", d)
	}
	if d := describe(f.n); d != "the commit" {
		t.Errorf("describe(%d) = %q, want the commit", f.n, d)
	}
}

// TestFrame: the batch as sent is the begin marker with the generation,
// every message in order (the parts framed apart, side by side) with
// consecutive sequence numbers and without the acknowledgement and echo
// flags the library sets, and the end marker.
func TestFrame(t *testing.T) {
	defer func(w int) { partWeight = w }(partWeight)
	partWeight = 1 // a part per step
	_, f, msgs := encodeEveryKind(t)
	if len(f.parts) < 3 {
		t.Fatalf("%d parts framed, want several", len(f.parts))
	}
	if msgs[0].Header.Flags&netlink.Acknowledge == 0 {
		t.Fatal("the library no longer asks for acknowledgements; revisit trap 13 (encoder.go)")
	}
	const base, gen = 1000, 42
	frame := func(f *frames, base, gen uint32) []byte {
		f.number(base + 1)
		begin, end := markers(base, gen, f.n)
		return slices.Concat(append(append([][]byte{begin}, f.parts...), end)...)
	}
	sent := unframe(t, frame(f, base, gen))
	if len(sent) != len(msgs)+2 {
		t.Fatalf("%d messages framed, want %d", len(sent), len(msgs)+2)
	}
	begin, end := sent[0], sent[len(sent)-1]
	if begin.Header.Type != unix.NFNL_MSG_BATCH_BEGIN || end.Header.Type != unix.NFNL_MSG_BATCH_END {
		t.Errorf("markers: %v … %v", begin.Header.Type, end.Header.Type)
	}
	ad, err := netlink.NewAttributeDecoder(begin.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	var carried uint32
	for ad.Next() {
		if ad.Type() == unix.NFNL_BATCH_GENID {
			carried = ad.Uint32()
		}
	}
	if carried != gen {
		t.Errorf("the begin marker carries generation %d, want %d", carried, gen)
	}
	for i, m := range sent {
		if m.Header.Sequence != base+uint32(i) {
			t.Errorf("message %d has sequence number %d, want %d", i, m.Header.Sequence, base+i)
		}
		if m.Header.Flags&(netlink.Acknowledge|netlink.Echo) != 0 || m.Header.Flags&netlink.Request == 0 {
			t.Errorf("message %d has flags %v, want a request without acknowledgement or echo", i, m.Header.Flags)
		}
		if i > 0 && i < len(sent)-1 && (m.Header.Type != msgs[i-1].Header.Type || string(m.Data) != string(msgs[i-1].Data)) {
			t.Errorf("message %d differs from the library's", i)
		}
	}
	if begin := unframe(t, frame(f, base, 0))[0]; len(begin.Data) != 4 {
		t.Errorf("generation 0 must ask for no check, but the begin marker carries %x", begin.Data[4:])
	}
}

// unframe splits a framed batch into its messages.
func unframe(t *testing.T, buf []byte) []netlink.Message {
	t.Helper()
	var out []netlink.Message
	for len(buf) > 0 {
		l := int(binary.NativeEndian.Uint32(buf))
		var m netlink.Message
		if err := m.UnmarshalBinary(buf[:l]); err != nil {
			t.Fatalf("message %d: %v", len(out), err)
		}
		out = append(out, m)
		buf = buf[nlmsgAlign(l):]
	}
	return out
}

func TestParseError(t *testing.T) {
	// An NLMSG_ERROR as the kernel sends it to a socket with capped
	// acknowledgements and extended acknowledgement text.
	errnoField := -int32(unix.ENOENT)
	data := binary.NativeEndian.AppendUint32(nil, uint32(errnoField))
	data = append(data, make([]byte, unix.NLMSG_HDRLEN)...) // the refused message's header
	text := "Chain not found\x00"
	data = binary.NativeEndian.AppendUint16(data, uint16(4+len(text)))
	data = binary.NativeEndian.AppendUint16(data, unix.NLMSGERR_ATTR_MSG)
	data = append(data, text...)
	m := netlink.Message{Header: netlink.Header{Type: netlink.Error, Flags: unix.NLM_F_CAPPED | unix.NLM_F_ACK_TLVS}, Data: data}
	errno, got := parseError(m)
	if errno != unix.ENOENT || got != "Chain not found" {
		t.Errorf("parseError = %v, %q; want ENOENT, \"Chain not found\"", errno, got)
	}
	if errno, _ := parseError(netlink.Message{Header: netlink.Header{Type: netlink.Error}, Data: []byte{1}}); errno != unix.EPROTO {
		t.Errorf("a truncated error reply parses as %v, want EPROTO", errno)
	}
}

// TestPartsBounded: however many cores and steps, a batch has at most
// maxParts parts, each a buffer of the one sendmsg, which takes at most
// 1024 (found by a review: 300 threads and 2.2 million networks, EMSGSIZE).
func TestPartsBounded(t *testing.T) {
	defer func(w int) { partWeight = w }(partWeight)
	partWeight = 1
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(512))
	b := &batch{table: (&Conn{}).table()}
	for range 5000 {
		b.then(1, func(nl *nftables.Conn) error { nl.AddTable(b.table); return nil })
	}
	f, err := b.encode()
	if err != nil {
		t.Fatal(err)
	}
	if f.n != 5000 || len(f.parts) > maxParts {
		t.Errorf("%d messages in %d parts, want 5000 in at most %d", f.n, len(f.parts), maxParts)
	}
}
