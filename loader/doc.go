// Package loader reads the configuration directory into one config.Config.
//
// It finds the policy files (lexical order; editor and package-manager
// leftovers ignored), parses each (native HCL today), checks every value,
// and merges all files into one model. Every problem is collected as an
// hcl.Diagnostic whose Subject points at the file, line and column; callers
// apply nothing when any diagnostic is an error.
//
// Large lists are never decoded through gohcl: values are evaluated once
// with Expr.Value and walked element by element.
package loader
