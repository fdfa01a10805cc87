package nft

// Sending a batch the library encoded (encoder.go), as nft does.
//
// One socket of its own per batch. On it, in order:
//
//  1. The batch: begin marker, the library's messages with their
//     acknowledgement and echo flags cleared, end marker, in one sendmsg.
//     The begin marker carries the generation the plan was made at
//     (NFNL_BATCH_GENID), which the kernel checks under its commit lock:
//     another writer's commit in between makes it refuse the batch (trap 8,
//     which the library cannot do). The kernel processes the batch inside
//     that sendmsg and commits it whole or not at all (trap 3); a message
//     it refuses gets an NLMSG_ERROR carrying the message's sequence
//     number, which names the change (describe.go). A stale generation, or
//     a commit that fails after every message was accepted, is answered on
//     the begin marker's sequence number.
//  2. NFT_MSG_GETGEN. Replies on a netlink socket keep their order, so its
//     answer comes after every error of the batch: it ends the reading, and
//     it is the generation after the commit, which Apply returns for
//     verification.
//
// With no acknowledgements and no echoes the replies are a handful of
// bytes, so the socket buffers that trap 1 needs for the library's Flush
// are not needed for a commit; they are kept for the error replies of a
// batch that fails everywhere. The socket asks for capped acknowledgements
// (an error does not copy the refused message back) and for the kernel's
// extended acknowledgement text.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/planner"
)

// commitTimeout bounds the wait for the kernel's answer. The kernel
// processes a batch within the sendmsg that carries it, so the answer is
// queued before the wait begins; this only guards against a kernel (or a
// bug) that never answers.
const commitTimeout = 2 * time.Minute

// commitReceiveBytes, when set, is the receive buffer of a batch's socket
// (tests only: a small one shows error replies overflowing it).
var commitReceiveBytes int

// msgGen is the nftables generation message type, request and reply.
const (
	msgGetGen = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN)
	msgNewGen = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWGEN)
)

// nfgenmsg is the family/version/resource header of every nfnetlink
// message; the batch markers carry the nftables subsystem as resource id.
var (
	genRequest  = []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	batchMarker = []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
)

// refusal is one message of a batch the kernel refused.
type refusal struct {
	index int // into the batch's messages; -1 for the commit itself
	errno syscall.Errno
	text  string // the kernel's extended acknowledgement, if any
}

// commit sends msgs as one batch, provided table inet hostwall is as the
// kernel held it at generation gen, and returns the generation the batch
// was sent at and the one after the commit. When the kernel refuses the
// batch, the error is a *BatchError saying what the batch held (summary)
// and naming the refused message by describe(index).
//
// A busy host: when the connection follows the kernel's events (Watch,
// Options.Follow) and they show that the transactions since gen left the
// table alone, the batch is sent at the generation the kernel is at right
// before it goes (vouch): what was planned against the table at gen holds
// at that generation too. Otherwise another program's transaction on
// another table in the time it takes to plan and encode a large batch (a
// docker or fail2ban host commits many times a second) would make every
// apply stale. The kernel still checks the generation sent: a transaction
// after the vouching refuses the batch. pause stops the subscription
// before sending (a large batch's own events would flood it): then a
// refused batch cannot be vouched for again, and comes back stale;
// otherwise commit vouches and sends again, a few times.
func (c *Conn) commit(f *frames, gen uint32, pause bool, summary string, describe func(int) string) (sent, after uint32, err error) {
	for attempt := 1; ; attempt++ {
		sent, after, err = c.commitOnce(f, gen, pause, summary, describe)
		// Sent, and refused by the kernel's check (not by vouch's, which
		// sends nothing): vouch again.
		refused := errors.Is(err, planner.ErrStale) && !errors.Is(err, planner.ErrNotCommitted)
		if !refused || pause || !c.following() || attempt == maxVouchedSends {
			return sent, after, err
		}
		gen = sent // vouched for: the table is still the one planned against
	}
}

// beforeSend, set by a test, runs right before a batch is sent.
var beforeSend func()

// maxVouchedSends bounds how often commit vouches for a batch and sends it
// again after the kernel refused it as stale.
const maxVouchedSends = 5

// vouch returns the generation to send a batch planned at gen at: the
// kernel's current one when the connection's events show that nothing
// after gen touched the table, gen otherwise — and then the kernel refuses
// the batch if the generation moved. stale is set when the events show
// that it did, and the table may have changed: the batch is not sent.
func (c *Conn) vouch(nc *netlink.Conn, gen uint32) (at uint32, stale error) {
	if gen == 0 || !c.following() {
		return gen, nil
	}
	now, err := queryGen(nc)
	switch {
	case err != nil || now == gen:
		return gen, nil
	case !c.Untouched(context.Background(), gen, now):
		return gen, fmt.Errorf("%w: planned at generation %d, kernel is at %d", planner.ErrStale, gen, now)
	}
	return now, nil
}

// commitOnce sends the batch once (commit).
func (c *Conn) commitOnce(f *frames, gen uint32, pause bool, summary string, describe func(int) string) (sent, after uint32, err error) {
	nc, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFD})
	if err != nil {
		return gen, 0, notSent(wrapPerm(fmt.Errorf("dialing netlink: %w", err)))
	}
	defer nc.Close()
	if err := c.sizeBuffers(nc); err != nil {
		return gen, 0, notSent(fmt.Errorf("sizing the netlink socket's buffers: %w", err))
	}
	if commitReceiveBytes > 0 {
		if err := nc.SetReadBuffer(commitReceiveBytes); err != nil {
			return gen, 0, notSent(err)
		}
	}
	// Both are optional refinements of the error replies; kernels without
	// them answer in full.
	_ = nc.SetOption(netlink.CapAcknowledge, true)
	_ = nc.SetOption(netlink.ExtendedAcknowledge, true)
	if err := nc.SetDeadline(time.Now().Add(commitTimeout)); err != nil {
		return gen, 0, notSent(err)
	}

	// Sequence numbers: begin marker = base, message i = base+1+i, end
	// marker, then the generation query.
	base := uint32(time.Now().UnixNano())
	end := base + 1 + uint32(f.n)
	f.number(base + 1)
	begin, last := markers(base, gen, f.n)
	if v, err := c.vouch(nc, gen); err != nil {
		return gen, 0, notSent(err)
	} else if v != gen {
		gen = v
		binary.BigEndian.PutUint32(begin[genOffset:], gen)
	}
	if pause {
		defer c.pauseWatch()()
	}
	if beforeSend != nil {
		beforeSend()
	}
	if err := sendRaw(nc, slices.Concat([][]byte{begin}, f.parts, [][]byte{last})); err != nil {
		return gen, 0, notSent(wrapPerm(fmt.Errorf("sending the batch: %w", err)))
	}
	if _, err := nc.Send(netlink.Message{Header: netlink.Header{Type: msgGetGen, Flags: netlink.Request, Sequence: end + 1}, Data: genRequest}); err != nil {
		return gen, 0, fmt.Errorf("querying the nftables generation: %w", err)
	}

	var refused []refusal
	stale := false
	after, err = readUntilGen(nc, end+1, func(seq uint32, errno syscall.Errno, text string) {
		if seq == base && errno == unix.ERESTART {
			stale = true // the kernel's generation check (frame)
			return
		}
		i := int(seq-base) - 1
		if i >= f.n {
			i = -1 // the markers' are the commit's own
		}
		refused = append(refused, refusal{index: i, errno: errno, text: text})
	})
	if errors.Is(err, unix.ENOBUFS) {
		// Replies overflowed the socket, so some are lost, and with them
		// the generation's answer. Only a refused batch has error replies;
		// without any, the generation tells what became of the batch —
		// when nobody else committed since.
		g, gerr := c.Generation()
		switch {
		case gerr == nil && g == gen+1 && gen != 0 && len(refused) == 0:
			return gen, g, nil // only the generation's answer was lost
		case len(refused) == 0 && (gerr != nil || g != gen || gen == 0):
			return gen, 0, fmt.Errorf("the kernel's answer to the batch overflowed the socket (%w), and the ruleset's generation (%d before the batch, %d now) does not tell whether it went in", unix.ENOBUFS, gen, g)
		}
		e := &BatchError{Summary: summary, Errno: unix.ENOBUFS, Lost: true, refused: refused, describe: describe}
		if len(refused) > 0 {
			e.Errno = refused[0].errno
		}
		return gen, 0, e
	}
	if err != nil {
		return gen, 0, fmt.Errorf("reading the kernel's answer to the batch: %w", err)
	}
	if stale {
		return gen, 0, fmt.Errorf("%w: sent at generation %d, kernel is at %d", planner.ErrStale, gen, after)
	}
	if len(refused) > 0 {
		return gen, 0, &BatchError{Summary: summary, Errno: refused[0].errno, refused: refused, describe: describe}
	}
	return gen, after, nil
}

// frames is a batch's messages laid out as the kernel reads them, each
// with its acknowledgement and echo flags cleared: a buffer per part of
// the batch, framed as soon as the part is encoded, so that a large batch
// is never held twice (the library's messages and their layout: ~40 MB at
// a million networks). commit numbers the messages, puts the begin and end
// markers around them and sends every buffer in one sendmsg.
type frames struct {
	parts [][]byte
	n     int // messages
}

// framesOf lays out msgs in one part, a buffer of their exact size.
func framesOf(msgs []netlink.Message) *frames {
	f := &frames{n: len(msgs)}
	if len(msgs) == 0 {
		return f
	}
	size := 0
	for _, m := range msgs {
		size += nlmsgAlign(unix.NLMSG_HDRLEN + len(m.Data))
	}
	buf := make([]byte, 0, size)
	for _, m := range msgs {
		buf = put(buf, m.Header.Type, m.Header.Flags&^(netlink.Acknowledge|netlink.Echo), 0, m.Data)
	}
	f.parts = [][]byte{buf}
	return f
}

// number gives the messages consecutive sequence numbers from first.
func (f *frames) number(first uint32) {
	seq := first
	for _, buf := range f.parts {
		for len(buf) >= unix.NLMSG_HDRLEN {
			binary.NativeEndian.PutUint32(buf[8:], seq)
			seq++
			buf = buf[nlmsgAlign(int(binary.NativeEndian.Uint32(buf))):]
		}
	}
}

// message returns message i, for describing it.
func (f *frames) message(i int) (netlink.Message, bool) {
	for _, buf := range f.parts {
		for len(buf) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(buf))
			if i == 0 {
				var m netlink.Message
				return m, m.UnmarshalBinary(buf[:l]) == nil
			}
			i--
			buf = buf[nlmsgAlign(l):]
		}
	}
	return netlink.Message{}, false
}

// markers returns the batch's begin marker (sequence number base) and its
// end marker, after n messages. The begin marker carries gen: the kernel
// checks it under its commit lock and refuses the whole batch with
// ERESTART when the ruleset has moved on.
func markers(base, gen uint32, n int) (begin, end []byte) {
	data := batchMarker
	if gen != 0 { // 0 asks for no check
		data = binary.BigEndian.AppendUint32(append(slices.Clip(batchMarker), 8, 0, unix.NFNL_BATCH_GENID, 0), gen)
	}
	return put(nil, unix.NFNL_MSG_BATCH_BEGIN, netlink.Request, base, data),
		put(nil, unix.NFNL_MSG_BATCH_END, netlink.Request, base+1+uint32(n), batchMarker)
}

// put appends a netlink message to buf.
func put(buf []byte, typ netlink.HeaderType, flags netlink.HeaderFlags, seq uint32, data []byte) []byte {
	n := unix.NLMSG_HDRLEN + len(data)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(n))
	buf = binary.NativeEndian.AppendUint16(buf, uint16(typ))
	buf = binary.NativeEndian.AppendUint16(buf, uint16(flags))
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // port id: the kernel fills in ours
	buf = append(buf, data...)
	return append(buf, padding[:nlmsgAlign(n)-n]...)
}

var padding [unix.NLMSG_ALIGNTO]byte

// genOffset is where markers puts the generation in the begin marker's
// NFNL_BATCH_GENID attribute: after the netlink header, the nfgenmsg
// header and the attribute's own.
const genOffset = unix.NLMSG_HDRLEN + 4 + 4

// sendRaw sends bufs, one batch, in one sendmsg to the kernel.
func sendRaw(nc *netlink.Conn, bufs [][]byte) error {
	raw, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), bufs, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("sendmsg", serr)
	}
	return nil
}

// queryGen asks for the generation on nc and reads the answer.
func queryGen(nc *netlink.Conn) (uint32, error) {
	m, err := nc.Send(netlink.Message{Header: netlink.Header{Type: msgGetGen, Flags: netlink.Request}, Data: genRequest})
	if err != nil {
		return 0, err
	}
	var refused error
	gen, err := readUntilGen(nc, m.Header.Sequence, func(_ uint32, errno syscall.Errno, _ string) { refused = errno })
	if refused != nil {
		return 0, refused
	}
	return gen, err
}

// readUntilGen reads replies on nc until the generation answer with
// sequence number seq, calling refuse for each error reply on the way, and
// returns the generation. It reads the socket itself: mdlayher/netlink's
// Receive turns the first error reply into its error and drops the rest.
func readUntilGen(nc *netlink.Conn, seq uint32, refuse func(seq uint32, errno syscall.Errno, text string)) (uint32, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, _, _, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return 0, err
		}
		if rerr != nil {
			return 0, rerr
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			var m netlink.Message
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return 0, fmt.Errorf("a netlink reply of %d bytes in %d", l, len(b))
			}
			if err := m.UnmarshalBinary(b[:l]); err != nil {
				return 0, err
			}
			b = b[min(len(b), nlmsgAlign(l)):]
			switch {
			case m.Header.Type == netlink.Error:
				errno, text := parseError(m)
				if errno == 0 {
					continue // an acknowledgement nobody asked for
				}
				if m.Header.Sequence == seq {
					return 0, errno
				}
				refuse(m.Header.Sequence, errno, text)
			case m.Header.Type == msgNewGen && m.Header.Sequence == seq:
				return parseGen(m)
			}
		}
	}
}

// parseError reads an NLMSG_ERROR: the (negated) errno, the refused
// message's header, and with NLM_F_ACK_TLVS the kernel's message text.
func parseError(m netlink.Message) (syscall.Errno, string) {
	if len(m.Data) < 4 {
		return unix.EPROTO, ""
	}
	errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data)))
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 {
		return errno, ""
	}
	// With capped acknowledgements only the refused message's header is
	// copied back, and the TLVs follow it.
	off := 4 + unix.NLMSG_HDRLEN
	if m.Header.Flags&unix.NLM_F_CAPPED == 0 && len(m.Data) >= off {
		off = 4 + nlmsgAlign(int(binary.NativeEndian.Uint32(m.Data[4:])))
	}
	if off > len(m.Data) {
		return errno, ""
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[off:])
	if err != nil {
		return errno, ""
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			return errno, ad.String()
		}
	}
	return errno, ""
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// parseGen reads the generation id from an NFT_MSG_NEWGEN reply.
func parseGen(m netlink.Message) (uint32, error) {
	if len(m.Data) < 4 {
		return 0, fmt.Errorf("a generation reply of %d bytes", len(m.Data))
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
	return 0, errors.New("no NFTA_GEN_ID in the generation reply")
}

// BatchError is a batch the kernel refused; nothing of it was committed.
type BatchError struct {
	// Summary says what the batch held.
	Summary string
	// Errno is the kernel's error for the first refused message.
	Errno syscall.Errno
	// Lost is set when the error replies overflowed the socket, so not
	// every refused message is known.
	Lost     bool
	refused  []refusal
	describe func(int) string
}

func (e *BatchError) Error() string {
	what := "the kernel refused the batch"
	if e.Summary != "" {
		what = "committing " + e.Summary
	}
	if len(e.refused) == 0 {
		return fmt.Sprintf("%s: the kernel refused it, and its error replies overflowed the socket (%v); nothing was committed", what, e.Errno)
	}
	r := e.refused[0]
	msg := fmt.Sprintf("%s: the kernel refused to commit it: %v", what, r.errno)
	if r.index >= 0 {
		msg = fmt.Sprintf("%s: the kernel refused message %d (%s): %v", what, r.index+1, e.describe(r.index), r.errno)
	}
	if r.text != "" {
		msg += " (" + r.text + ")"
	}
	if n := len(e.refused) - 1; n > 0 {
		msg += fmt.Sprintf(", and %d later message(s)", n)
	}
	if e.Lost {
		msg += ", and more whose errors overflowed the socket"
	}
	return msg + "; nothing was committed"
}

// Unwrap makes errors.Is(err, unix.ENOENT) and the like work.
func (e *BatchError) Unwrap() error { return e.Errno }

// notSent marks err, met before a batch was sent, as a change that did not
// reach the kernel.
func notSent(err error) error { return fmt.Errorf("%w (%w)", err, planner.ErrNotCommitted) }

// Is makes errors.Is(err, planner.ErrNotCommitted) hold: a refused batch
// changed nothing.
func (e *BatchError) Is(target error) bool { return target == planner.ErrNotCommitted }
