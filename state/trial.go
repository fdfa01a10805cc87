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

// RunDir holds the trial of each namespace.
type RunDir struct{ Dir string }

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
	return writeFile(r.trialPath(t.NetNS), data, 0o600)
}

// ReadTrial returns the pending trial of netns, or nil.
func (r RunDir) ReadTrial(netns string) (*Trial, error) {
	data, err := os.ReadFile(r.trialPath(netns))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := &Trial{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("%s: %w", r.trialPath(netns), err)
	}
	return t, nil
}

// EndTrial removes the pending trial and records how it ended.
func (r RunDir) EndTrial(t *Trial, result, detail string) error {
	o := Outcome{Generation: t.Generation, Result: result, Previous: t.Previous, Time: time.Now(), Detail: detail}
	data, _ := json.MarshalIndent(o, "", "  ")
	if err := writeFile(r.outcomePath(t.NetNS), data, 0o600); err != nil {
		return err
	}
	if err := os.Remove(r.trialPath(t.NetNS)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(r.Dir)
}

// LastOutcome returns how the last trial of netns ended, or nil.
func (r RunDir) LastOutcome(netns string) (*Outcome, error) {
	data, err := os.ReadFile(r.outcomePath(netns))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o := &Outcome{}
	return o, json.Unmarshal(data, o)
}
