// Package agent is the daemon's front door to the engine: it watches the
// configuration directory (fsnotify, debounced), the kernel's events
// (drift), signals, the control socket and the trial's deadline, and turns
// each event into one engine call. It keeps only what status shows; the
// transaction — load, plan, commit, record, trial, repair — is the
// engine's.
package agent
