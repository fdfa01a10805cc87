// Package config is hostwall's user-facing model: the host, its host
// endpoints, network sets, policies and failsafe ports, independent of the
// file format they were written in, plus the selector language.
//
// Every object records the range it was declared at (an hcl.Range, also for
// YAML input), so later stages can point diagnostics back at the file.
// Package config does no I/O; package loader fills it and package compile
// reads it.
package config
