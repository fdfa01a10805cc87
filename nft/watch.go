package nft

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
)

// A Change is a committed nftables transaction of another process that
// touched, or may have touched, table inet hostwall.
type Change struct {
	// By names the process, as "nft (pid 4242)".
	By string
	// Certain is false when the transaction only changed sets or set
	// elements, whose table the library does not decode (trap 9), or when
	// events were lost; the table may be untouched.
	Certain bool
}

// Watch reports the nftables transactions of other processes that touch
// the table, until ctx ends. It subscribes to the kernel's nftables
// multicast group on a connection of its own. Transactions committed by
// this process's own threads are not reported. When the kernel drops
// events (the socket buffer overflowed) or the subscription fails, an
// uncertain Change is reported and the subscription is made again.
//
// report must not block for long: the subscription's buffer fills behind
// it and events are lost (which is reported, so nothing is missed).
func (c *Conn) Watch(ctx context.Context, report func(Change)) error {
	events, mon, err := c.subscribe()
	if err != nil {
		return err
	}
	go func() {
		sub := subscription{events, mon}
		for {
			c.watch.follow(sub.mon)
			c.deliver(ctx, sub.events, report)
			sub.mon.Close()
			for range sub.events { // the library closes the channel once its reader stops
			}
			if ctx.Err() != nil {
				return
			}
			if next, ok := c.watch.handedOver(ctx); ok && next.events != nil {
				sub = next // Apply paused us around a large batch of its own
				continue
			}
			if ctx.Err() != nil {
				return
			}
			report(Change{By: "unknown (nftables events were lost)"})
			for {
				if sub.events, sub.mon, err = c.subscribe(); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	return nil
}

type subscription struct {
	events chan *nftables.MonitorEvents
	mon    *nftables.Monitor
}

// watchState is Watch's subscription, which Apply pauses around a large
// batch of its own: the kernel writes an event per element and rule to
// every subscriber, and the library decodes and gathers a transaction's
// events before handing them over — for 100,000 elements, seconds of CPU
// and ~100 MB, all to learn that the change was our own.
type watchState struct {
	mu  sync.Mutex
	mon *nftables.Monitor
	// subs counts the subscriptions made (for tests).
	subs int
	// next is set while paused: the subscription made on resuming comes
	// through it.
	next chan subscription
}

func (w *watchState) follow(mon *nftables.Monitor) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mon = mon
}

// handedOver waits, if the subscription ended because of a pause, for the
// one made on resuming (events nil: none could be made).
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
// while paused are not reported: the caller reads the table afterwards
// (the agent verifies its applies by reading back).
func (c *Conn) pauseWatch() (resume func()) {
	w := &c.watch
	w.mu.Lock()
	mon := w.mon
	if mon == nil || w.next != nil {
		w.mu.Unlock()
		return func() {}
	}
	next := make(chan subscription, 1)
	w.mon, w.next = nil, next
	w.mu.Unlock()
	mon.Close()
	return func() {
		events, mon, err := c.subscribe()
		w.mu.Lock()
		w.next = nil
		w.mu.Unlock()
		if err != nil {
			next <- subscription{} // Watch reports a loss and tries again
			return
		}
		next <- subscription{events, mon}
	}
}

// pauseWatchAbove is the batch size (rules and elements) from which Apply
// pauses the subscription.
const pauseWatchAbove = 1000

// subscribe opens a monitor on a connection of its own. A lasting
// connection would be shared: the monitor would read the replies meant
// for our dumps, and its Close would close nothing (trap 9).
func (c *Conn) subscribe() (chan *nftables.MonitorEvents, *nftables.Monitor, error) {
	nl, err := nftables.New(nftables.WithNetNSFd(c.nsFD), nftables.WithSockOptions(c.sizeBuffers))
	if err != nil {
		return nil, nil, wrapPerm(fmt.Errorf("opening netlink socket: %w", err))
	}
	// Only the "any object" filter works: the library tests
	// flags&1<<type, which Go reads as (flags&1)<<type.
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(256))
	events, err := nl.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, nil, wrapPerm(fmt.Errorf("subscribing to nftables events: %w", err))
	}
	c.watch.mu.Lock()
	c.watch.subs++
	c.watch.mu.Unlock()
	return events, mon, nil
}

// deliver reports transactions until ctx ends or the subscription fails.
func (c *Conn) deliver(ctx context.Context, events chan *nftables.MonitorEvents, report func(Change)) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok || ev.GeneratedBy == nil || ev.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
				return
			}
			gen, _ := ev.GeneratedBy.Data.(*nftables.GenMsg)
			if gen == nil || ownThread(gen.ProcPID) {
				continue
			}
			if touched, certain := touches(ev.Changes); touched {
				report(Change{By: fmt.Sprintf("%s (pid %d)", gen.ProcComm, gen.ProcPID), Certain: certain})
			}
		}
	}
}

// ownThread reports whether pid is a thread of this process: the kernel
// names the committing task's thread id, not the process id.
func ownThread(pid uint32) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", pid))
	return err == nil
}

// touches reports whether the changes touch table inet hostwall, and
// whether that is certain.
func touches(changes []*nftables.MonitorEvent) (touched, certain bool) {
	ours := func(t *nftables.Table) bool {
		return t != nil && t.Name == tableName && t.Family == nftables.TableFamilyINet
	}
	for _, e := range changes {
		switch d := e.Data.(type) {
		case *nftables.Table:
			if ours(d) {
				return true, true
			}
		case *nftables.Chain:
			if d != nil && ours(d.Table) {
				return true, true
			}
		case *nftables.Rule:
			if d != nil && ours(d.Table) {
				return true, true
			}
		default:
			// Sets and elements come without their table, and events the
			// library fails to decode without anything.
			touched = true
		}
	}
	return touched, false
}
