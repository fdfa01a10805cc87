package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Trial is a change applied on trial: unless confirmed before Deadline,
// Previous is restored.
type Trial struct {
	// Generation is the generation on trial, Previous the one it replaced
	// (0: there was no table before).
	Generation int       `json:"generation"`
	Previous   int       `json:"previous"`
	Deadline   time.Time `json:"deadline"`
	NetNS      string    `json:"netns,omitempty"`
	StateDir   string    `json:"state_dir"`
	RunDir     string    `json:"run_dir,omitempty"`
	HostName   string    `json:"host_name"`
	// GuardPID is the guard holding the timer; 0 while it starts.
	GuardPID int `json:"guard_pid,omitempty"`
	// Committed is the kernel's ruleset generation right after the change
	// went in; 0 until it has (its guard plans the rollback then).
	Committed uint32 `json:"committed,omitempty"`
	// Cookie is the namespace's (Namespace.Cookie) when the trial began.
	Cookie uint64 `json:"cookie"`
	// Rebooted is set when the trial's record names an earlier namespace
	// than the one it is read in (a reboot, or the namespace made again):
	// the ruleset on trial is not in the kernel any more, and whatever is
	// must end on the previous generation now. Read sets it.
	Rebooted bool `json:"rebooted,omitempty"`
	// Unreadable, set, says that no copy of the pending trial's record
	// reads, and this Trial stands in for it (engine); never recorded.
	Unreadable string `json:"unreadable,omitempty"`
}

// Outcome is how the last trial ended.
type Outcome struct {
	Generation int       `json:"generation"`
	Result     string    `json:"result"` // Confirmed, RolledBack or NotApplied
	Previous   int       `json:"previous"`
	Time       time.Time `json:"time"`
	// Deadline is the trial's.
	Deadline time.Time `json:"deadline"`
	Detail   string    `json:"detail,omitempty"`
	Cookie   uint64    `json:"cookie,omitempty"`
}

// Outcome results.
const (
	Confirmed  = "confirmed"
	RolledBack = "rolled back"
	// NotApplied: the change on trial never reached the kernel (it was
	// refused, or its process died before sending it).
	NotApplied = "not applied"
)

// Trials keeps a namespace's pending trial: in the namespace's directory,
// mirrored into the state directory, because /run is a tmpfs that a reboot
// empties and a reboot during a trial must still end on the previous
// generation. Changes happen under the namespace's lock.
type Trials struct {
	NS    Namespace
	Store *Store
}

func (t Trials) path() string        { return filepath.Join(t.NS.Dir, "trial.json") }
func (t Trials) outcomePath() string { return filepath.Join(t.NS.Dir, "outcome.json") }
func (t Trials) mirrorPath() string  { return t.mirrorIn(t.Store.Dir) }

// mirrorIn is the trial's mirror in the state directory dir.
func (t Trials) mirrorIn(dir string) string {
	return filepath.Join(dir, "pending-trial-"+t.NS.FileName()+".json")
}

// mirrorOf is where tr's mirror is: in the state directory of the apply
// that started it.
func (t Trials) mirrorOf(tr *Trial) string {
	if tr.StateDir != "" {
		return t.mirrorIn(tr.StateDir)
	}
	return t.mirrorPath()
}

// Path is the pending trial's file (a guard watches it).
func (t Trials) Path() string { return t.path() }

// Write records tr as the namespace's pending trial, durably, in both
// places.
func (t Trials) Write(tr *Trial) error {
	tr.Cookie = t.NS.Cookie
	data, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(t.Store.Dir, 0o700); err != nil {
		return err
	}
	if err := writeFile(t.mirrorPath(), data, 0o600); err != nil {
		return fmt.Errorf("recording the trial in %s: %w", t.Store.Dir, err)
	}
	if err := t.NS.mkdir(); err != nil {
		return err
	}
	os.Remove(t.outcomePath())
	// The directory is keyed by the namespace's inode, which the kernel
	// gives again to later namespaces: what an earlier one left there in
	// the record's place (a directory, say) is no record, and goes.
	removeIfNotRegular(t.path())
	if err := writeFile(t.path(), data, 0o600); err != nil {
		return fmt.Errorf("recording the trial in %s: %w", t.NS.Dir, err)
	}
	return nil
}

// removeIfNotRegular removes whatever is at path when it is not a regular
// file.
func removeIfNotRegular(path string) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		os.RemoveAll(path)
	}
}

// Update writes tr again (its guard's pid, say): in the namespace's
// directory first, which the guard and the agent read, then in the mirror,
// which only a reboot reads.
func (t Trials) Update(tr *Trial) error {
	tr.Cookie = t.NS.Cookie
	data, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(t.path(), data, 0o600); err != nil {
		return err
	}
	return writeFile(t.mirrorPath(), data, 0o600)
}

// Read returns the namespace's pending trial, or nil. A trial of a dead
// namespace that had the same directory is no trial of this one. When the
// namespace's record is gone, or does not read, the state directory's
// mirror stands in — marked Rebooted when it names an earlier namespace
// (a reboot, or the namespace made again). When no copy reads, the error
// is a *DamagedTrialError.
func (t Trials) Read() (*Trial, error) {
	tr, nsErr := readJSON[Trial](t.path())
	if nsErr == nil && tr != nil && tr.Cookie == t.NS.Cookie {
		tr.Rebooted, tr.Unreadable = false, ""
		return tr, nil
	}
	mirror, mErr := readJSON[Trial](t.mirrorPath())
	switch {
	case mErr == nil && mirror != nil:
		mirror.Rebooted, mirror.Unreadable = mirror.Cookie != t.NS.Cookie, ""
		return mirror, nil
	case mErr == nil:
		// No mirror here: a pending trial of this state directory always
		// has one (Write makes it first, End removes it after the
		// outcome), so whatever the namespace's record holds — nothing,
		// a stale record, or bytes that do not read — no trial of this
		// state directory is pending.
		return nil, nil
	case nsErr != nil:
		return nil, &DamagedTrialError{Path: t.path(), Err: nsErr}
	}
	return nil, &DamagedTrialError{Path: t.mirrorPath(), Err: mErr}
}

// DamagedTrialError says the pending trial's record does not read: a
// trial is pending, but which is not known.
type DamagedTrialError struct {
	Path string
	Err  error
}

func (e *DamagedTrialError) Error() string {
	return fmt.Sprintf("the pending trial's record %s does not read: %v", e.Path, e.Err)
}

func (e *DamagedTrialError) Unwrap() error { return e.Err }

// ErrNoTrial is Confirm's error when no trial is pending.
var ErrNoTrial = errors.New("no trial is pending")

// RolledBackError is Confirm's error when the last trial was rolled back.
type RolledBackError struct{ Outcome *Outcome }

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("the trial of generation %d was ROLLED BACK at %s: %s",
		e.Outcome.Generation, e.Outcome.Time.Format(time.TimeOnly), e.Outcome.Detail)
}

// Confirm ends the pending trial as confirmed, keeping its generation.
// Without a pending trial it returns a *RolledBackError when the last one
// was rolled back, else ErrNoTrial.
func (t Trials) Confirm(detail string) (*Trial, error) {
	tr, err := t.Read()
	if err != nil {
		return nil, err
	}
	if tr == nil {
		if o, _ := t.LastOutcome(); o != nil && o.Result == RolledBack {
			return nil, &RolledBackError{Outcome: o}
		}
		return nil, ErrNoTrial
	}
	if tr.Rebooted {
		return nil, fmt.Errorf("the trial of generation %d was interrupted by a reboot (or its namespace was made again): it can only be rolled back; run hostwall guard", tr.Generation)
	}
	if !time.Now().Before(tr.Deadline) {
		return nil, fmt.Errorf("the trial of generation %d was due to roll back at %s, and can no longer be confirmed; hostwall status says why it is not rolled back yet, and hostwall rollback %d ends it keeping generation %d",
			tr.Generation, tr.Deadline.Format(time.DateTime), tr.Generation, tr.Generation)
	}
	return tr, t.End(tr, Confirmed, detail)
}

// End removes the pending trial and records how it ended: the outcome
// first (whoever sees the trial gone finds it), then the mirror in the
// state directory of the apply that started it — nothing more when that
// fails, so the trial stays pending whole and is ended again — then the
// namespace's record.
func (t Trials) End(tr *Trial, result, detail string) error {
	if err := t.NS.mkdir(); err != nil {
		return err
	}
	o := Outcome{Generation: tr.Generation, Result: result, Previous: tr.Previous, Time: time.Now(), Deadline: tr.Deadline, Detail: detail, Cookie: t.NS.Cookie}
	data, _ := json.MarshalIndent(o, "", "  ")
	if err := writeFile(t.outcomePath(), data, 0o600); err != nil {
		return err
	}
	if err := removeSynced(t.mirrorOf(tr)); err != nil {
		return fmt.Errorf("removing the pending trial from %s: %w", filepath.Dir(t.mirrorOf(tr)), err)
	}
	if tr.StateDir != t.Store.Dir {
		removeSynced(t.mirrorPath()) // a copy this state directory may hold
	}
	return removeSynced(t.path())
}

// LastOutcome returns how the namespace's last trial ended, or nil.
func (t Trials) LastOutcome() (*Outcome, error) {
	o, err := readJSON[Outcome](t.outcomePath())
	if err != nil || o == nil || o.Cookie != t.NS.Cookie {
		return nil, err
	}
	return o, nil
}

// removeSynced removes path, durably; a missing file is no error.
func removeSynced(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}
