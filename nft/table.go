package nft

import (
	"context"
	"fmt"
)

// DeleteTable removes table inet hostwall in one batch, provided the kernel
// is still at generation gen; a missing table is no error. It is how a trial
// of the very first configuration returns to "no firewall".
func (c *Conn) DeleteTable(ctx context.Context, gen uint32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	nl, err := c.dial()
	if err != nil {
		return err
	}
	defer nl.CloseLasting()
	nl.AddTable(c.table()) // makes the delete safe when the table is gone (trap 4)
	nl.DelTable(c.table())
	if err := c.stillAt(gen); err != nil {
		return err
	}
	if err := nl.Flush(); err != nil {
		return fmt.Errorf("deleting table inet %s: %w", tableName, wrapPerm(err))
	}
	return nil
}
