package engine

import (
	"github.com/hostwall/hostwall/state"
)

// The records the front doors show, as the state directory keeps them.
type (
	Trial           = state.Trial
	Outcome         = state.Outcome
	Generation      = state.Generation
	RolledBackError = state.RolledBackError
)

// How a trial ended (Outcome.Result).
const (
	Confirmed  = state.Confirmed
	RolledBack = state.RolledBack
	NotApplied = state.NotApplied
)

// ErrLocked is the error (wrapped, naming the holder) of a change while
// another hostwall changes the namespace.
var ErrLocked = state.ErrLocked

// CheckPrivate makes sure the directories that steer the firewall — the
// state and run directories, and the namespaces' directory — are private
// to the user running hostwall: one open to others is tightened (the
// notices say so), one owned by someone else refused.
func (e *Engine) CheckPrivate() (notices []string, err error) {
	for _, dir := range []string{e.o.StateDir, e.o.RunDir, state.NamespacesDir} {
		notice, err := state.CheckPrivate(dir)
		if err != nil {
			return notices, err
		}
		if notice != "" {
			notices = append(notices, notice)
		}
	}
	return notices, nil
}
