package nft

import (
	"bytes"
	"context"
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/ruleset"
)

// Element events. A transaction that touched table inet hostwall only by
// adding or removing set elements (a blocklist edited by hand or by
// another tool, another hostwall's incremental apply) and by changing
// chains and rules can be replayed on a read of the table from its events
// and a read of the chains alone: a 100,000-network set need not be read
// again (Changes).

// elemEvent is one NEWSETELEM or DELSETELEM event of table inet hostwall:
// the set, and its elements as the kernel sent them.
type elemEvent struct {
	set     string
	removed bool
	elems   []nftables.SetElement
}

// loggedTx is a transaction that touched the table: its generation and,
// when it only added or removed elements and changed chains and rules
// (replayable), those element events in order and whether chains changed.
type loggedTx struct {
	gen                uint32
	replayable, chains bool
	events             []elemEvent
}

// Bounds of the log of transactions that touched the table: the consumer
// (the agent's kept read) asks about the last few; a flood of changes, or
// one huge one, is read from the kernel instead.
const (
	maxLoggedTx    = 256
	maxLoggedElems = 100_000
)

// parseElemEvent reads an element event's set name and elements; ok is
// false when it cannot be read (then the transaction is not replayed).
func parseElemEvent(data []byte, removed bool) (elemEvent, bool) {
	ev := elemEvent{removed: removed}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return ev, false
	}
	ad.ByteOrder = binary.BigEndian
	ok := true
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			ev.set = string(bytes.TrimRight(ad.Bytes(), "\x00"))
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					if list.Type() != unix.NFTA_LIST_ELEM {
						continue
					}
					e, good := parseElem(list.Bytes())
					ok = ok && good
					ev.elems = append(ev.elems, e)
				}
				return nil
			})
		}
	}
	return ev, ok && ad.Err() == nil && ev.set != ""
}

// nftaSetElemKeyEnd is NFTA_SET_ELEM_KEY_END (x/sys does not name it).
const nftaSetElemKeyEnd = 10

// parseElem reads one NFTA_LIST_ELEM: its key, its interval-end flag and a
// verdict map's data. An element with a key end (a concatenated range) is
// not what hostwall's sets hold: ok is false.
func parseElem(b []byte) (nftables.SetElement, bool) {
	var e nftables.SetElement
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, false
	}
	ad.ByteOrder = binary.BigEndian
	ok := true
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key = dataValue(ad.Bytes())
			ok = ok && e.Key != nil
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_DATA:
			e.Val = dataVerdict(ad.Bytes())
			ok = ok && e.Val != nil
		case nftaSetElemKeyEnd, unix.NFTA_SET_ELEM_TIMEOUT, unix.NFTA_SET_ELEM_EXPIRATION:
			// A concatenated range is not hostwall's; an element with a
			// timeout is read from the kernel, which says so.
			ok = false
		}
	}
	return e, ok && ad.Err() == nil && e.Key != nil
}

// dataValue is the NFTA_DATA_VALUE inside an NFTA_DATA nest; dataVerdict
// the NFTA_DATA_VERDICT nest, as the library hands a map element's data
// over (decodeElementVerdict reads it).
func dataValue(b []byte) []byte   { return inner(b, unix.NFTA_DATA_VALUE) }
func dataVerdict(b []byte) []byte { return inner(b, unix.NFTA_DATA_VERDICT) }

// inner is the attribute of type typ in the nest b (a copy), or nil.
func inner(b []byte, typ uint16) []byte {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == typ {
			return bytes.Clone(ad.Bytes())
		}
	}
	return nil
}

// log keeps a transaction that touched the table; w.mu is held.
func (w *watchState) log(tx loggedTx) {
	w.txs = append(w.txs, tx)
	w.loggedElems += txElems(tx)
	for len(w.txs) > maxLoggedTx || w.loggedElems > maxLoggedElems {
		w.loggedElems -= txElems(w.txs[0])
		w.trimmed = w.txs[0].gen
		w.txs = w.txs[1:]
	}
}

func txElems(tx loggedTx) int {
	n := 0
	for _, ev := range tx.events {
		n += len(ev.elems)
	}
	return n
}

// Changes returns, when the events show it, what the transactions after
// generation since, up to now, did to table inet hostwall: elements of its
// sets added and removed, each change decoded with the set's type that
// set (the caller's read of the table) gives; and whether its chains or
// rules changed (then ReadChains reads them, a set's elements need not be
// read again). ok is false whenever that cannot be told for sure — the
// table, a set or another object changed, a set unknown to set, an event
// not read, lost or not kept — and then the caller reads the table.
func (c *Conn) Changes(ctx context.Context, since, now uint32, set func(name string) *ruleset.Set) (elems []ruleset.ElementChange, chains, ok bool) {
	txs, ok := c.watch.between(ctx, since, now)
	if !ok {
		return nil, false, false
	}
	for _, tx := range txs {
		if !tx.replayable {
			return nil, false, false
		}
		chains = chains || tx.chains
		for _, ev := range tx.events {
			s := set(ev.set)
			if s == nil {
				return nil, false, false
			}
			decoded, good := eventElements(s, ev.elems)
			if !good {
				return nil, false, false
			}
			elems = append(elems, ruleset.ElementChange{Set: ev.set, Removed: ev.removed, Elements: decoded})
		}
	}
	return elems, chains, true
}

// eventElements decodes the elements of an event as set s holds them. An
// interval set's events come as each interval's start and then its end,
// elements of their own (nft sends them so): each start is paired with
// the end right after it. Anything else — an interval open to the top,
// which has no end — is not replayed: the caller reads the set.
func eventElements(s *ruleset.Set, elems []nftables.SetElement) ([]ruleset.Element, bool) {
	if !s.Interval {
		out, err := decodeElements(s, elems)
		return out, err == nil
	}
	if len(elems)%2 != 0 {
		return nil, false
	}
	out := make([]ruleset.Element, 0, len(elems)/2)
	for i := 0; i < len(elems); i += 2 {
		start, end := elems[i], elems[i+1]
		if start.IntervalEnd || !end.IntervalEnd || len(start.Key) != len(end.Key) {
			return nil, false
		}
		pair, err := decodeElements(s, elems[i:i+2])
		if err != nil || len(pair) != 1 {
			return nil, false
		}
		out = append(out, pair[0])
	}
	return out, true
}
