// Package state is hostwall's on-disk memory: numbered generations under
// the state directory (every successful apply: the configuration files as
// read, the rendered ruleset and who applied it, NixOS-style), the pending
// trial and the apply lock under the run directory.
//
// Every write is crash-safe: a temporary file or directory, fsync, rename,
// fsync of the parent directory. A process killed at any point leaves the
// previous state readable.
package state
