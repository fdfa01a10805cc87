// Package planner diffs the desired table against the live one and returns
// a Plan: what to create, update in place, recreate or delete, down to single
// rules and set elements.
//
// Diff is pure and deterministic. It never compares decoded expressions
// for identity: a live rule is hostwall's only if its stored ID (user data)
// equals the hash of what it decodes to; anything else in the table is drift
// and is removed. Reasons on changes are for people only; nft.Apply must not
// branch on them.
package planner
