// Package engine is hostwall's host transaction, written once: load and
// compile the configuration, plan it against the kernel (with every
// shortcut the verified record allows), check it against lockout, commit
// it as one netlink batch in write-ahead order, verify it, record it as a
// generation, and run trials, confirmations, rollbacks, drift repairs and
// the recovery of what a dead writer left. The CLI (cmd/hostwall) and the
// agent are its two front doors: they parse flags, show, ask and listen
// for events, and call the engine; neither holds transaction logic.
//
// Invariants:
//   - Every change to a namespace's table happens under the namespace's
//     lock (state.Namespace.Lock), whatever run directory each writer uses.
//   - Before a batch is sent, the generation it applies, the intent and,
//     for a trial, the trial and its armed guard are durable (commit.go).
//     The kernel is never changed by a change whose records could not be
//     written.
//   - A generation is applied only if it reads back exactly as recorded
//     (state.Store.Load checks every file's SHA-256); a damaged one never
//     is.
//   - What is reported is what the kernel holds: an apply is a success only
//     once the kernel's generation (one commit on from the plan's read) or
//     a read-back proves it.
//
// It talks to the kernel only through Kernel, which nft.Conn and
// nfttest.Fake implement; it never imports nft.
package engine
