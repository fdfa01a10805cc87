// Package views renders what hostwall has to say to people and programs:
// diagnostics, plans (human, in Terraform's conventions, and JSON from the
// same structure) and tables. It decides nothing.
package views
