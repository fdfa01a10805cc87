package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/planner"
)

// describer returns what message i of f changes, in words, for the error
// of a refused batch: the kind of change and the object it names, read from
// the message itself, and for a rule its text from the plan.
func (b *batch) describer(f *frames) func(int) string {
	return func(i int) string {
		m, ok := f.message(i)
		if !ok {
			return "the commit"
		}
		d := describeMessage(m)
		if d.comment != "" {
			if text := ruleText(b.plan, d.object, d.comment); text != "" {
				return fmt.Sprintf("%s %q: %s", d.verb, d.object, text)
			}
		}
		return fmt.Sprintf("%s %q", d.verb, d.object)
	}
}

type messageText struct {
	verb    string // "add a rule to chain", ...
	object  string // the chain or set named
	comment string // a rule's comment (hostwall:<id>)
}

// messageKinds gives, by message type, the verb of a message and the
// attribute naming its object.
var messageKinds = map[netlink.HeaderType]struct {
	verb     string
	nameAttr uint16
}{
	unix.NFT_MSG_NEWCHAIN:   {"create chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_DELCHAIN:   {"delete chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_NEWRULE:    {"add a rule to chain", unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_DELRULE:    {"flush chain", unix.NFTA_RULE_CHAIN}, // with a handle: one rule
	unix.NFT_MSG_NEWSET:     {"create set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_DELSET:     {"delete set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_NEWSETELEM: {"add elements to set", unix.NFTA_SET_ELEM_LIST_SET},
	unix.NFT_MSG_DELSETELEM: {"flush set", unix.NFTA_SET_ELEM_LIST_SET}, // with elements: those
}

// describeMessage reads the kind and the object of a batch message.
func describeMessage(m netlink.Message) messageText {
	typ := m.Header.Type & 0xff
	switch typ {
	case unix.NFT_MSG_NEWTABLE:
		return messageText{verb: "create table", object: "inet " + tableName}
	case unix.NFT_MSG_DELTABLE:
		return messageText{verb: "delete table", object: "inet " + tableName}
	}
	kind, ok := messageKinds[typ]
	if !ok {
		return messageText{verb: fmt.Sprintf("message type %d for", typ), object: "inet " + tableName}
	}
	d := messageText{verb: kind.verb}
	nameAttr := kind.nameAttr
	if len(m.Data) < 4 {
		return d
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return d
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		t := ad.Type()
		switch {
		case t == nameAttr:
			d.object = ad.String()
		case typ == unix.NFT_MSG_DELRULE && t == unix.NFTA_RULE_HANDLE:
			d.verb = "delete a rule from chain" // not the whole chain
		case typ == unix.NFT_MSG_NEWRULE && t == unix.NFTA_RULE_USERDATA:
			d.comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case typ == unix.NFT_MSG_DELSETELEM && t == unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			d.verb = "delete elements from set" // not all of them
		}
	}
	return d
}

// ruleText finds the rule of chain whose comment is comment among the
// plan's additions.
func ruleText(p *planner.Plan, chain, comment string) string {
	if p == nil {
		return ""
	}
	for _, ch := range p.Changes {
		if ch.Chain == nil || ch.Name != chain {
			continue
		}
		if ch.Chain.After != nil {
			for _, r := range ch.Chain.After.Rules {
				if r.Comment(chain) == comment {
					return r.String()
				}
			}
		}
		for _, in := range ch.Chain.Inserts {
			if in.Rule.Comment(chain) == comment {
				return in.Rule.String()
			}
		}
	}
	return ""
}
