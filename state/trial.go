package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Trial is a generation applied on trial: unless confirmed before Deadline,
// the guard restores Previous.
type Trial struct {
	Generation int       `json:"generation"`
	Previous   int       `json:"previous"` // 0: there was no table before
	Deadline   time.Time `json:"deadline"`
	NetNS      string    `json:"netns,omitempty"`
	StateDir   string    `json:"state_dir"`
	HostName   string    `json:"host_name"`
	GuardPID   int       `json:"guard_pid,omitempty"`
	// Rebooted is set when the trial was found only in the state
	// directory: the run directory was emptied, so the machine rebooted
	// during the trial.
	Rebooted bool `json:"-"`
}

// Outcome is how the last trial ended.
type Outcome struct {
	Generation int       `json:"generation"`
	Result     string    `json:"result"` // "confirmed" or "rolled back"
	Previous   int       `json:"previous"`
	Time       time.Time `json:"time"`
	Detail     string    `json:"detail,omitempty"`
}

// Outcome results.
const (
	Confirmed  = "confirmed"
	RolledBack = "rolled back"
)

// RunDir holds the trial of each namespace. The run directory is a tmpfs
// that a reboot empties, so the pending trial is mirrored into Persist (the
// state directory): a reboot during a trial must still end on the previous
// generation.
type RunDir struct {
	Dir     string
	Persist string
}

// SocketPath is where the agent of a namespace listens.
func (r RunDir) SocketPath(netns string) string {
	return filepath.Join(r.Dir, "agent-"+nsName(netns)+".sock")
}

func (r RunDir) trialPath(netns string) string {
	return filepath.Join(r.Dir, "trial-"+nsName(netns)+".json")
}

func (r RunDir) outcomePath(netns string) string {
	return filepath.Join(r.Dir, "trial-"+nsName(netns)+".outcome.json")
}

// WriteTrial records a pending trial.
func (r RunDir) WriteTrial(t *Trial) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	os.Remove(r.outcomePath(t.NetNS))
	if r.Persist != "" {
		if err := os.MkdirAll(r.Persist, 0o700); err != nil {
			return err
		}
		if err := writeFile(r.persistPath(t.NetNS), data, 0o600); err != nil {
			return err
		}
	}
	return writeFile(r.trialPath(t.NetNS), data, 0o600)
}

func (r RunDir) persistPath(netns string) string {
	return filepath.Join(r.Persist, "pending-trial-"+nsName(netns)+".json")
}

// ReadTrial returns the pending trial of netns, or nil.
func (r RunDir) ReadTrial(netns string) (*Trial, error) {
	data, err := os.ReadFile(r.trialPath(netns))
	rebooted := false
	if errors.Is(err, os.ErrNotExist) && r.Persist != "" {
		data, err = os.ReadFile(r.persistPath(netns)) // the run dir was emptied by a reboot
		rebooted = err == nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := &Trial{Rebooted: rebooted}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("%s: %w", r.trialPath(netns), err)
	}
	return t, nil
}

// ErrNoTrial is Confirm's error when no trial is pending.
var ErrNoTrial = errors.New("no trial is pending")

// RolledBackError is Confirm's error when the last trial was rolled back.
type RolledBackError struct{ Outcome *Outcome }

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("the trial of generation %d was ROLLED BACK at %s: %s",
		e.Outcome.Generation, e.Outcome.Time.Format(time.TimeOnly), e.Outcome.Detail)
}

// Confirm ends the pending trial of netns as confirmed, keeping its
// generation; the caller holds the lock. Without a pending trial it
// returns a *RolledBackError when the last one was rolled back, else
// ErrNoTrial.
func (r RunDir) Confirm(netns, detail string) (*Trial, error) {
	t, err := r.ReadTrial(netns)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if o, _ := r.LastOutcome(netns); o != nil && o.Result == RolledBack {
			return nil, &RolledBackError{Outcome: o}
		}
		return nil, ErrNoTrial
	}
	return t, r.EndTrial(t, Confirmed, detail)
}

// EndTrial removes the pending trial and records how it ended.
func (r RunDir) EndTrial(t *Trial, result, detail string) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	o := Outcome{Generation: t.Generation, Result: result, Previous: t.Previous, Time: time.Now(), Detail: detail}
	data, _ := json.MarshalIndent(o, "", "  ")
	if err := writeFile(r.outcomePath(t.NetNS), data, 0o600); err != nil {
		return err
	}
	if r.Persist != "" {
		if err := os.Remove(r.persistPath(t.NetNS)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := syncDir(r.Persist); err != nil {
			return err
		}
	}
	if err := os.Remove(r.trialPath(t.NetNS)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(r.Dir)
}

// LastOutcome returns how the last trial of netns ended, or nil.
func (r RunDir) LastOutcome(netns string) (*Outcome, error) {
	return readJSON[Outcome](r.outcomePath(netns))
}
