package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/hostwall/hostwall/observe"
)

// keepDrops is how many recent drops the agent keeps for status and
// hostwall drops.
const keepDrops = 20

// Journal rate: the kernel already sends at most drop_log_rate a second
// for each deciding rule; the journal takes at most this many lines a
// second from all of them together, and says how many it left out.
const (
	journalRate  = 10
	journalBurst = 50
)

// subscriberBuffer is how many drops a follower (hostwall drops --follow)
// may fall behind before the agent skips some for it; maxFollowers how
// many may follow at once.
const (
	subscriberBuffer = 256
	maxFollowers     = 16
)

// dropHub keeps the recent drops, hands them to the followers and writes
// them to the journal. The drops, what endpoints in audit mode let by, and
// the staged view's would-be drops (hostwall drops --staged) are kept and
// journaled apart, so that none crowds the others out.
type dropHub struct {
	mu    sync.Mutex
	kinds [3]dropKind // the drops, the audited, the would-be drops
	subs  map[*follower]struct{}
}

// dropKind is what the hub keeps of one kind of logged packet: the recent
// ones, the journal's rate and how many it left out since the last line.
type dropKind struct {
	recent  []observe.Drop
	limit   *rate.Limiter
	skipped int
}

// follower is one hostwall drops --follow: the drops on their way to it,
// and how many it missed (skipped: it fell behind; lost: the kernel
// overran the agent) since it was last told.
type follower struct {
	c       chan observe.Drop
	skipped int
	lost    bool
}

func newDropHub() *dropHub {
	h := &dropHub{subs: map[*follower]struct{}{}}
	for i := range h.kinds {
		h.kinds[i].limit = rate.NewLimiter(journalRate, journalBurst)
	}
	return h
}

// kind is the hub's keeping of dr's kind.
func (h *dropHub) kind(dr observe.Drop) *dropKind {
	switch {
	case dr.Audit:
		return &h.kinds[1]
	case dr.Staged:
		return &h.kinds[2]
	}
	return &h.kinds[0]
}

// Dropped takes a packet the drop log handed over: decoded by the index
// of the generation in force, kept, sent to followers and journaled.
// Safe to call from any goroutine.
func (d *Daemon) Dropped(l observe.Logged) {
	x := d.index.Load()
	if x == nil {
		x = observe.NewIndex(0, nil)
	}
	dr := x.Decode(l)
	d.o.Metrics.DropLogged()
	h := d.drops
	h.mu.Lock()
	k := h.kind(dr)
	if len(k.recent) == keepDrops {
		copy(k.recent, k.recent[1:])
		k.recent = k.recent[:keepDrops-1]
	}
	k.recent = append(k.recent, dr)
	for f := range h.subs {
		select {
		case f.c <- dr:
		default: // a slow follower misses some, and is told
			f.skipped++
		}
	}
	journalIt := k.limit.Allow()
	skipped := k.skipped
	if journalIt {
		k.skipped = 0
	} else {
		k.skipped++
	}
	h.mu.Unlock()
	if !journalIt {
		d.o.Metrics.DropUnjournaled()
		return
	}
	d.journal(dr, skipped)
}

// DropLost notes that the kernel could not hand over logged packets.
func (d *Daemon) DropLost(err error) {
	d.o.Metrics.DropLost()
	h := d.drops
	h.mu.Lock()
	for f := range h.subs {
		f.lost = true
	}
	h.mu.Unlock()
	d.o.Log.Warn("drop log: packets lost (the agent fell behind)", zap.Error(err))
}

// Index is the index of the generation in force, as of the last piece of
// work (nil before the first).
func (d *Daemon) Index() *observe.Index { return d.index.Load() }

// recentDrops returns the drops kept, of every kind, oldest first.
func (h *dropHub) recentDrops() []observe.Drop {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []observe.Drop
	for _, k := range h.kinds {
		out = append(out, k.recent...)
	}
	slices.SortStableFunc(out, func(a, b observe.Drop) int { return a.Time.Compare(b.Time) })
	return out
}

func (h *dropHub) subscribe() (*follower, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxFollowers {
		return nil, nil, fmt.Errorf("%d hostwall drops --follow are following already, the most the agent serves", maxFollowers)
	}
	f := &follower{c: make(chan observe.Drop, subscriberBuffer)}
	h.subs[f] = struct{}{}
	return f, func() {
		h.mu.Lock()
		delete(h.subs, f)
		h.mu.Unlock()
	}, nil
}

// missed returns and resets what f missed.
func (h *dropHub) missed(f *follower) (skipped int, lost bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	skipped, lost, f.skipped, f.lost = f.skipped, f.lost, 0, false
	return skipped, lost
}

// journal writes a drop to the journal with structured fields when the
// agent runs under systemd's journal, to its log otherwise.
func (d *Daemon) journal(dr observe.Drop, skipped int) {
	msg, what := "dropped "+dr.String(), "drops"
	switch {
	case dr.Audit:
		msg, what = "audited (let by) "+dr.String(), "audited packets"
	case dr.Staged:
		msg, what = "the staged view would drop "+dr.String(), "would-be drops"
	}
	if skipped > 0 {
		msg += fmt.Sprintf(" (and %d more %s not journaled: the journal takes at most %d a second)", skipped, what, journalRate)
	}
	fields := dropFields(dr)
	if stderrIsJournal() && journal.Enabled() {
		if err := journal.Send(msg, journal.PriNotice, fields); err == nil {
			return
		}
	}
	zf := make([]zap.Field, 0, len(fields))
	for k, v := range fields {
		zf = append(zf, zap.String(k, v))
	}
	d.o.Log.Info(msg, zf...)
}

// stderrIsJournal reports whether the agent's stderr is journald's stream
// (systemd sets JOURNAL_STREAM to its device and inode): its log lines
// are in the journal already, and drops go there with their fields.
func stderrIsJournal() bool {
	var dev, ino uint64
	if _, err := fmt.Sscanf(os.Getenv("JOURNAL_STREAM"), "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// dropFields are a drop's journal fields (journalctl -u hostwall
// HOSTWALL_POLICY=web -o verbose). HOSTWALL_EVENT is drop, audit (an
// endpoint in audit mode accepted it) or staged (a would-be drop of the
// staged view).
func dropFields(dr observe.Drop) map[string]string {
	p := dr.Packet
	event := "drop"
	switch {
	case dr.Audit:
		event = "audit" // accepted by an endpoint in audit mode
	case dr.Staged:
		event = "staged" // the staged view would drop it; allowed
	}
	f := map[string]string{
		"HOSTWALL_EVENT":     event,
		"HOSTWALL_DIRECTION": dr.Direction,
		"HOSTWALL_PROTO":     p.Proto,
		"HOSTWALL_PREFIX":    dr.Prefix,
	}
	set := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	set("HOSTWALL_ENDPOINT", dr.Endpoint)
	set("HOSTWALL_IFACE", dr.Iface)
	if p.Src.IsValid() {
		f["HOSTWALL_SRC"], f["HOSTWALL_DST"] = p.Src.String(), p.Dst.String()
	}
	if p.SPort != 0 || p.DPort != 0 {
		f["HOSTWALL_SPORT"], f["HOSTWALL_DPORT"] = strconv.Itoa(int(p.SPort)), strconv.Itoa(int(p.DPort))
	}
	if o := dr.Decided; o != nil {
		f["HOSTWALL_DECIDED"] = string(o.Kind)
		set("HOSTWALL_TIER", o.Tier)
		set("HOSTWALL_POLICY", o.Policy)
		if o.Rule > 0 {
			f["HOSTWALL_RULE"] = strconv.Itoa(o.Rule)
		}
	}
	return f
}

// serveDrops answers a "drops" request on conn: the recent drops, then,
// with Follow, each new one as it comes, one JSON response a line, until
// the client goes or ctx ends.
func (d *Daemon) serveDrops(ctx context.Context, conn net.Conn, enc *json.Encoder, req Request) {
	notListening := ""
	if d.o.DropLog != nil {
		notListening = d.o.DropLog()
	}
	if !req.Follow {
		enc.Encode(Response{Drops: d.drops.recentDrops(), NotListening: notListening})
		return
	}
	f, unsubscribe, err := d.drops.subscribe()
	if err != nil {
		enc.Encode(Response{Error: err.Error()})
		return
	}
	defer unsubscribe()
	d.o.Log.Info("drops followed (hostwall drops --follow)")
	defer d.o.Log.Info("drops no longer followed")
	conn.SetDeadline(time.Time{})
	if err := enc.Encode(Response{Drops: d.drops.recentDrops(), NotListening: notListening}); err != nil {
		return
	}
	gone := make(chan struct{})
	go func() { // a read ends when the client closes
		var b [1]byte
		conn.Read(b[:])
		close(gone)
	}()
	for {
		select {
		case dr := <-f.c:
			skipped, lost := d.drops.missed(f)
			r := Response{Drops: []observe.Drop{dr}, Skipped: skipped, Lost: lost}
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := enc.Encode(r); err != nil {
				return
			}
		case <-gone:
			return
		case <-ctx.Done():
			return
		}
	}
}
