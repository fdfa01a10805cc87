package nft

import (
	"context"

	"github.com/google/nftables"
)

// DeleteTable removes table inet hostwall in one batch, provided the kernel
// is still at generation gen; a missing table is no error. It is how a trial
// of the very first configuration returns to "no firewall".
func (c *Conn) DeleteTable(ctx context.Context, gen uint32) error {
	if err := ctx.Err(); err != nil {
		return notSent(err)
	}
	msgs, err := encode(func(nl *nftables.Conn) error {
		nl.AddTable(c.table()) // makes the delete safe when the table is gone (trap 4)
		nl.DelTable(c.table())
		return nil
	})
	if err != nil {
		return notSent(err)
	}
	describe := func(i int) string {
		return describeMessage(msgs[max(0, min(i, len(msgs)-1))]).verb + " inet " + tableName
	}
	if _, _, err := c.commit(framesOf(msgs), gen, false, "deleting table inet "+tableName, describe); err != nil {
		return wrapPerm(err)
	}
	return nil
}
