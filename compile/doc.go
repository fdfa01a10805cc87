// Package compile turns a config.Config into the desired nftables table for
// one host: pure translation, no I/O.
//
// It resolves which host endpoints this host enforces, which policies select
// each of them (by label selector, in order), and emits the chains, rules,
// verdict maps and interval sets of docs/semantics.md. Problems that only
// show in context (a rule that can never match, two endpoints on one
// interface) come back as diagnostics pointing at the configuration.
package compile
