// Package explain is the reference evaluator of a configuration: given a
// packet, it walks the configuration as docs/semantics.md states it and
// returns the verdict and the step that decided it.
//
// It deliberately shares no code with package compile. The differential
// test sends real packets through the compiled ruleset in network
// namespaces and requires the kernel and this package to agree, so a bug in
// either shows as a disagreement.
package explain
