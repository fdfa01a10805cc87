package planner

import "errors"

// ErrStale is the error (wrapped) of applying a plan to a kernel whose
// ruleset moved on since the plan was made: the kernel checked the plan's
// Generation and refused the whole batch, so nothing changed. Every Kernel
// (nft.Conn, nfttest.Fake) returns it, and the caller plans again.
var ErrStale = errors.New("the nftables ruleset changed since it was read")

// ErrNotCommitted is the error (wrapped) of a change that provably did not
// reach the kernel: the kernel refused the batch whole, or it was never
// sent. Any other error of a Kernel's Apply leaves it unknown whether the
// change went in.
var ErrNotCommitted = errors.New("nothing was committed")
