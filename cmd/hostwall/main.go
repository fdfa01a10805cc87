// Command hostwall is a declarative host firewall: it plans the policy files
// of /etc/hostwall as a diff against the kernel's nftables state and applies
// it as one atomic transaction.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// exitError carries an exit code other than 1 (DESIGN §10: 2 = plan has
// changes with --detailed-exitcode) or an error already reported.
type exitError struct {
	code int
	err  error // nil: already printed
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// gcPercent is the garbage collector's target: collecting a quarter as
// often as Go's default makes loading a large configuration a quarter
// faster for more peak memory while working (docs/performance.md). The
// agent hands its memory back after each piece of work, so its resting
// memory hardly changes. GOGC in the environment overrides it.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			os.Exit(code)
		}
		err = ee.err
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	os.Exit(code)
}
