package nft

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A Change is a committed nftables transaction of another process that
// touched table inet hostwall, or a loss of events after which that cannot
// be told.
type Change struct {
	// By names the process, as "nft (pid 4242)".
	By string
	// Certain is false when events were lost: the table may be untouched.
	Certain bool
}

// Watch reports the nftables transactions of other processes that touch
// the table, until ctx ends, and keeps what Untouched answers from. It
// subscribes to the kernel's nftables multicast group on a connection of
// its own and reads the events raw: the table an event belongs to is the
// first attribute of every object message (table, chain, rule, set,
// element, object, flowtable), which the library's monitor drops for sets
// and elements (trap 9). Transactions committed by this process's own
// threads are not reported. When the kernel drops events (the socket
// buffer overflowed) or the subscription fails, an uncertain Change is
// reported and the subscription is made again.
//
// report must not block for long: the subscription's buffer fills behind
// it and events are lost (which is reported, so nothing is missed).
func (c *Conn) Watch(ctx context.Context, report func(Change)) error {
	_, err := c.startWatch(ctx, report)
	return err
}

// startWatch is Watch; done is closed once it has stopped.
func (c *Conn) startWatch(ctx context.Context, report func(Change)) (done <-chan struct{}, err error) {
	sub, err := c.subscribe()
	if err != nil {
		return nil, err
	}
	c.watch.setRunning(true)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer c.watch.setRunning(false)
		for {
			c.watch.follow(sub)
			lossErr := c.deliver(ctx, sub, report)
			sub.nc.Close()
			c.watch.lost()
			if ctx.Err() != nil {
				return
			}
			if next, ok := c.watch.handedOver(ctx); ok && next.nc != nil {
				sub = next // Apply paused us around a large batch of its own
				continue
			}
			if ctx.Err() != nil {
				return
			}
			why := "unknown (nftables events were lost)"
			if lossErr != nil && !errors.Is(lossErr, unix.ENOBUFS) {
				why = fmt.Sprintf("unknown (nftables events were lost: %v)", lossErr)
			}
			// Subscribed again before the loss is reported, when it can
			// be: whatever the caller does about the loss, a transaction
			// after the report is then an event.
			sub, err = c.subscribe()
			report(Change{By: why})
			for err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				sub, err = c.subscribe()
			}
		}
	}()
	return exited, nil
}

// subscription is a connection subscribed to the nftables events, and the
// ruleset generation read right after subscribing: every transaction
// committed after it is seen on nc.
type subscription struct {
	nc   *netlink.Conn
	from uint32
}

// watchState is Watch's subscription, which Apply pauses around a large
// batch of its own (the kernel writes an event per element and rule to
// every subscriber: for 100,000 elements, ~100,000 messages to read, all
// to learn that the change was our own), and what the events showed
// (Untouched).
type watchState struct {
	mu sync.Mutex
	nc *netlink.Conn
	// subs counts the subscriptions made (for tests).
	subs int
	// next is set while paused: the subscription made on resuming comes
	// through it.
	next chan subscription

	// covered is set while a subscription runs with nothing lost since
	// from; seen is the generation of the last transaction read.
	covered    bool
	from, seen uint32
	// txs are the transactions since from that touched the table (ours
	// included), the last maxLoggedTx of them: every one after trimmed,
	// the generation of the last one dropped from the front (0: none);
	// loggedElems is how many elements they hold.
	txs         []loggedTx
	trimmed     uint32
	loggedElems int
	// moved is closed, and made again, whenever seen or covered change.
	moved chan struct{}
	// gate is taken before each read of the events: a test holds it to
	// make the kernel drop events.
	gate sync.Mutex
	// running is set while a Watch runs.
	running bool
}

func (w *watchState) follow(s subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nc = s.nc
	w.covered, w.from, w.seen = true, s.from, s.from
	w.txs, w.trimmed, w.loggedElems = nil, 0, 0
	w.signal()
}

func (w *watchState) setRunning(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = on
}

// awaitGate returns once no test holds the gate (HoldWatch).
func (w *watchState) awaitGate() {
	w.gate.Lock()
	defer w.gate.Unlock()
}

// lost ends what the ended subscription vouches for.
func (w *watchState) lost() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.covered = false
	w.signal()
}

// committed notes a transaction read: its generation, and whether and how
// it touched the table.
func (w *watchState) committed(gen uint32, tx *transaction) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = gen
	if tx.touched {
		w.log(loggedTx{gen: gen, replayable: !tx.other, chains: tx.chains, events: tx.events})
	}
	w.signal()
}

// signal wakes Untouched's waiters; w.mu is held.
func (w *watchState) signal() {
	if w.moved != nil {
		close(w.moved)
	}
	w.moved = make(chan struct{})
}

// untouchedWait bounds how long Untouched waits for the events of a
// transaction the kernel has committed to be read: a few milliseconds at
// most on an idle host; past that, the answer is "cannot tell".
const untouchedWait = 200 * time.Millisecond

// Untouched reports whether, as Watch's events show, no transaction after
// generation since and up to generation now touched table inet hostwall:
// then the table the kernel held at since is the one it holds at now. It
// is false whenever that cannot be told: no Watch, events lost since
// before since, or the events up to now not read within a short wait.
func (c *Conn) Untouched(ctx context.Context, since, now uint32) bool {
	if since == now {
		return true
	}
	txs, ok := c.watch.between(ctx, since, now)
	return ok && len(txs) == 0
}

// between waits until the events up to generation now have been read (as
// long as untouchedWait), then returns the transactions after since, up
// to now, that touched the table; ok is false when the events cannot tell
// them all: none read in time, lost since before since, or not kept.
func (w *watchState) between(ctx context.Context, since, now uint32) (txs []loggedTx, ok bool) {
	if genBefore(now, since) || !w.caughtUp(ctx, now) {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.covered || genBefore(since, w.from) || (w.trimmed != 0 && genBefore(since, w.trimmed)) {
		return nil, false
	}
	for _, tx := range w.txs {
		if genBefore(since, tx.gen) && !genBefore(now, tx.gen) {
			txs = append(txs, tx)
		}
	}
	return txs, true
}

// caughtUp waits until the events up to now have been read; false when
// they are not in time, or the subscription does not run.
func (w *watchState) caughtUp(ctx context.Context, now uint32) bool {
	ctx, cancel := context.WithTimeout(ctx, untouchedWait)
	defer cancel()
	for {
		w.mu.Lock()
		covered, seen, moved := w.covered, w.seen, w.moved
		w.mu.Unlock()
		switch {
		case !covered || moved == nil:
			return false
		case !genBefore(seen, now):
			return true
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return false
		}
	}
}

// genBefore reports whether generation a comes before b, in serial-number
// arithmetic: the 32-bit counter wraps.
func genBefore(a, b uint32) bool { return int32(a-b) < 0 }

// handedOver waits, if the subscription ended because of a pause, for the
// one made on resuming (nc nil: none could be made).
func (w *watchState) handedOver(ctx context.Context) (subscription, bool) {
	w.mu.Lock()
	next := w.next
	w.mu.Unlock()
	if next == nil {
		return subscription{}, false
	}
	select {
	case s := <-next:
		return s, true
	case <-ctx.Done():
		return subscription{}, false
	}
}

// pauseWatch ends the subscription, if Watch has one, and returns the
// function that subscribes again — before it returns, so that a read after
// it and the events from then on leave no gap. Changes made by others
// while paused are not reported, and Untouched vouches for nothing before
// the new subscription: the caller reads the table afterwards (the agent
// verifies its applies by reading back).
func (c *Conn) pauseWatch() (resume func()) {
	w := &c.watch
	w.mu.Lock()
	nc := w.nc
	if nc == nil || w.next != nil {
		w.mu.Unlock()
		return func() {}
	}
	next := make(chan subscription, 1)
	w.nc, w.next = nil, next
	w.covered = false
	w.signal()
	w.mu.Unlock()
	nc.Close()
	return func() {
		s, err := c.subscribe()
		w.mu.Lock()
		w.next = nil
		w.mu.Unlock()
		if err != nil {
			next <- subscription{} // Watch reports a loss and tries again
			return
		}
		next <- s
	}
}

// pauseWatchAbove is the batch size (rules and elements) from which Apply
// pauses the subscription.
const pauseWatchAbove = 1000

// subscribe joins the nftables multicast group on a connection of its own,
// with the large buffers, then reads the generation: transactions after it
// are all seen on the connection.
func (c *Conn) subscribe() (subscription, error) {
	nc, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFD})
	if err != nil {
		return subscription{}, wrapPerm(fmt.Errorf("opening netlink socket: %w", err))
	}
	if err := c.sizeBuffers(nc); err != nil {
		nc.Close()
		return subscription{}, err
	}
	if err := nc.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		nc.Close()
		return subscription{}, wrapPerm(fmt.Errorf("subscribing to nftables events: %w", err))
	}
	gen, err := c.Generation()
	if err != nil {
		nc.Close()
		return subscription{}, err
	}
	c.watch.mu.Lock()
	c.watch.subs++
	c.watch.mu.Unlock()
	return subscription{nc: nc, from: gen}, nil
}

// deliver reads transactions until ctx ends or the subscription fails (the
// error: ENOBUFS when the kernel dropped events), reporting those of
// others that touch the table.
func (c *Conn) deliver(ctx context.Context, sub subscription, report func(Change)) error {
	stop := context.AfterFunc(ctx, func() { sub.nc.Close() })
	defer stop()
	var tx transaction
	for {
		c.watch.awaitGate()
		msgs, err := sub.nc.Receive()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			gen, done := tx.add(m)
			if !done {
				continue
			}
			c.watch.committed(gen.id, &tx)
			if tx.touched && !ownThread(gen.pid) {
				report(Change{By: fmt.Sprintf("%s (pid %d)", gen.comm, gen.pid), Certain: true})
			}
			tx = transaction{}
		}
	}
}

// transaction gathers the events of one committed transaction, which the
// kernel sends before the NEWGEN message that ends it: whether it touched
// the table; while it only added or removed elements of its sets and
// changed chains and rules (other unset), those element events, and
// whether chains or rules changed.
type transaction struct {
	touched, other, chains bool
	events                 []elemEvent
	elems                  int
}

// genEvent is an NFT_MSG_NEWGEN event: the new generation and the task
// that committed.
type genEvent struct {
	id, pid uint32
	comm    string
}

// add takes one event; done is set, with the generation event, when it
// ends the transaction.
func (tx *transaction) add(m netlink.Message) (gen genEvent, done bool) {
	if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return gen, false
	}
	typ := m.Header.Type & 0xff
	if typ == unix.NFT_MSG_NEWGEN {
		return parseGenEvent(m.Data[4:]), true
	}
	if !ours(m.Data) {
		return gen, false
	}
	tx.touched = true
	if tx.other {
		return gen, false
	}
	switch typ {
	case unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN:
		tx.chains = true // the chains are read again, not replayed
		return gen, false
	}
	ev, ok := elemEvent{}, false
	if typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM {
		ev, ok = parseElemEvent(m.Data, typ == unix.NFT_MSG_DELSETELEM)
	}
	if tx.elems += len(ev.elems); !ok || tx.elems > maxLoggedElems {
		tx.other, tx.events = true, nil // replayed by a read, not from events
		return gen, false
	}
	// The kernel sends an event per element: those of one set and one
	// kind in a row are one change.
	if n := len(tx.events); n > 0 && tx.events[n-1].set == ev.set && tx.events[n-1].removed == ev.removed {
		tx.events[n-1].elems = append(tx.events[n-1].elems, ev.elems...)
	} else {
		tx.events = append(tx.events, ev)
	}
	return gen, false
}

// ours reports whether an object event (an nfgenmsg, then attributes)
// belongs to table inet hostwall, or cannot be told apart from one.
func ours(data []byte) bool {
	if data[0] != unix.NFPROTO_INET {
		return false
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return true
	}
	for ad.Next() {
		// Attribute 1 is the table's name in every object message:
		// NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE,
		// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE,
		// NFTA_FLOWTABLE_TABLE.
		if ad.Type() == 1 {
			return string(bytes.TrimRight(ad.Bytes(), "\x00")) == tableName
		}
	}
	return true
}

// parseGenEvent reads NFTA_GEN_ID, NFTA_GEN_PROC_PID and
// NFTA_GEN_PROC_NAME.
func parseGenEvent(attrs []byte) genEvent {
	var g genEvent
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return g
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_ID:
			g.id = ad.Uint32()
		case unix.NFTA_GEN_PROC_PID:
			g.pid = ad.Uint32()
		case unix.NFTA_GEN_PROC_NAME:
			g.comm = ad.String()
		}
	}
	return g
}

// ownThread reports whether pid is a thread of this process: the kernel
// names the committing task's thread id, not the process id.
func ownThread(pid uint32) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", pid))
	return err == nil
}
