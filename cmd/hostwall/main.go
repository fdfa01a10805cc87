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

// oneShotGCPercent is the garbage collector's target for the commands that
// run once and exit: collecting a quarter as often makes loading a large
// configuration a quarter faster for a quarter more peak memory
// (docs/performance.md). The agent, which lives on, keeps Go's default
// (setDefaultGC). GOGC in the environment overrides both.
const oneShotGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(oneShotGCPercent)
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

// setDefaultGC gives a long-running command Go's default collector target,
// unless GOGC says otherwise.
func setDefaultGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(100)
	}
}
