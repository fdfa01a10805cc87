package nft

// SetChunkBytes changes the element chunk size for a test and returns a
// function restoring it: with a huge chunk the library truncates elements
// silently (trap 2), which the tests show verification catches.
func SetChunkBytes(n int) (restore func()) {
	old := chunkBytes
	chunkBytes = n
	return func() { chunkBytes = old }
}

// SetCommitReceiveBytes shrinks the receive buffer of the sockets that send
// batches, for a test of error replies that overflow it.
func SetCommitReceiveBytes(n int) (restore func()) {
	old := commitReceiveBytes
	commitReceiveBytes = n
	return func() { commitReceiveBytes = old }
}

// SetPrimeDumps switches the dump-size workaround (trap 11) for a test.
func SetPrimeDumps(on bool) (restore func()) {
	old := primeDumpsOn
	primeDumpsOn = on
	return func() { primeDumpsOn = old }
}

// WatchSubscriptions is how many subscriptions Watch has made on c.
func WatchSubscriptions(c *Conn) int {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	return c.watch.subs
}

// HoldWatch stops Watch reading events until release: the kernel drops
// what overflows the subscription's buffer meanwhile.
func HoldWatch(c *Conn) (release func()) {
	c.watch.gate.Lock()
	return c.watch.gate.Unlock
}

// SetBeforeSend runs f right before each batch is sent (after it was
// vouched for), for a test.
func SetBeforeSend(f func()) (restore func()) {
	old := beforeSend
	beforeSend = f
	return func() { beforeSend = old }
}

// SetDuringRead runs f in each attempt of a read, after the generation
// before it was taken, for a test.
func SetDuringRead(f func()) (restore func()) {
	old := duringRead
	duringRead = f
	return func() { duringRead = old }
}

// Following reports whether a Watch runs on c.
func Following(c *Conn) bool { return c.following() }
