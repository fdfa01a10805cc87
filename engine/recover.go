package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/hostwall/hostwall/state"
)

// Settle settles what a writer that died left behind (recover), when the
// namespace's lock is free at once; a hostwall at work is left alone. It
// makes status and the default rollback target tell the truth after a
// death, before the next change.
func (e *Engine) Settle() error {
	ns, err := e.namespace()
	if err != nil {
		return err
	}
	lock, err := ns.Lock(0, state.NewHolder(e.o.RunDir))
	if err != nil {
		return nil // busy: whoever holds the lock settles it
	}
	defer lock.Release()
	return e.recover(ns)
}

// recover settles what a writer that died left behind; the caller holds
// the namespace's lock, so no writer is at work. Temporary files go. An
// intent (commit.go) means a change was on its way to the kernel when its
// process died: the kernel holds either the change or what it held before,
// and which one decides what is current — the change's generation, or the
// one before, with the change's new generation removed and its trial, if
// any, ended as never applied. A trial whose change did reach the kernel
// is left to its guard and the agent.
func (e *Engine) recover(ns state.Namespace) error {
	e.store.Clean()
	e.run.Clean()
	in, err := e.store.ReadIntent(ns)
	if err != nil || in == nil {
		return err
	}
	if in.Op == "" {
		e.notice("the record of a change under way does not read; it is removed, and the kernel's state is what plan shows")
		return e.store.ClearIntent(ns)
	}
	held, err := e.kernelHolds(in, ns)
	if err != nil {
		return fmt.Errorf("settling the change of pid %d (%s to generation %d, %s) that was interrupted: %w",
			in.PID, in.Op, in.Generation, in.Time.Format("2006-01-02 15:04:05"), err)
	}
	if held {
		if err := e.store.MakeCurrent(in.Generation, in.Previous); err != nil {
			return err
		}
	} else if err := e.undoIntent(ns, in); err != nil {
		return err
	}
	e.notice("settled a change interrupted before it was recorded (pid %d, %s to generation %d): the kernel holds generation %d",
		in.PID, in.Op, in.Generation, map[bool]int{true: in.Generation, false: in.Previous}[held])
	return e.store.ClearIntent(ns)
}

// undoIntent takes back the records of a change that never reached the
// kernel: its new generation, and its trial.
func (e *Engine) undoIntent(ns state.Namespace, in *state.Intent) error {
	if in.New && in.Generation > 0 {
		if err := e.store.Remove(in.Generation); err != nil {
			return err
		}
	}
	t, err := e.trials(ns).Read()
	if err != nil || t == nil || t.Generation != in.Generation || t.Previous != in.Previous {
		return err
	}
	return e.trials(ns).End(t, state.NotApplied, "the change was interrupted before it reached the kernel")
}

// kernelHolds reports whether the kernel holds what intent in applied.
func (e *Engine) kernelHolds(in *state.Intent, ns state.Namespace) (bool, error) {
	if in.Cookie != ns.Cookie {
		return false, nil // the namespace it was applied to is gone, and its ruleset with it
	}
	if e.o.Kernel == nil {
		return false, fmt.Errorf("no kernel to look at")
	}
	gen, err := e.o.Kernel.Generation()
	if err != nil {
		return false, err
	}
	if gen == in.Planned || in.Generation > 0 && !e.store.Has(in.Generation) {
		return false, nil // nothing was committed since the change was planned, or the generation was not yet in place
	}
	if in.Generation == 0 {
		live, _, err := e.o.Kernel.Read(context.Background())
		return live == nil, err
	}
	_, tbl, err := e.generationTable(in.Generation, true)
	if err != nil {
		e.notice("generation %d of the interrupted change cannot be compiled: %v", in.Generation, err)
		return false, nil
	}
	_, err = Verify(context.Background(), e.o.Kernel, tbl)
	if errors.Is(err, ErrNotConverged) {
		return false, nil
	}
	return err == nil, err
}
