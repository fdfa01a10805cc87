// Package ruleset is the nftables model hostwall speaks: one Table with its
// Chains, Rules and Sets, as pure data.
//
// The same types describe the desired table (built by package compile) and the
// live table (read back from the kernel by package nft), so the planner can
// diff them. Every Match kind and Verdict has a canonical String in nft syntax;
// that text is what plans show and what a rule's ID covers.
//
// This package does no I/O and imports only the standard library.
package ruleset
