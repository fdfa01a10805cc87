package planner

import "errors"

// ErrStale is the error (wrapped) of applying a plan to a kernel whose
// ruleset moved on since the plan was made: the kernel checked the plan's
// Generation and refused the whole batch, so nothing changed. Every Kernel
// (nft.Conn, nfttest.Fake) returns it, and the caller plans again.
var ErrStale = errors.New("the nftables ruleset changed since it was read")
