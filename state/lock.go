package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is the exclusive right to change one namespace's table.
type Lock struct{ f *os.File }

// Holder describes who holds a lock.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// ErrLocked is returned (wrapped, with the holder) when the lock is taken.
var ErrLocked = errors.New("another hostwall is changing this firewall")

func nsName(netns string) string {
	if netns == "" {
		return "host"
	}
	return strings.ReplaceAll(filepath.Base(netns), string(filepath.Separator), "_")
}

// AcquireLock takes the apply lock of netns in runDir, waiting up to
// timeout. The error names the holder.
func AcquireLock(runDir, netns string, timeout time.Duration) (*Lock, error) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", runDir, err)
	}
	path := filepath.Join(runDir, "lock-"+nsName(netns))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			h := readHolder(path)
			f.Close()
			return nil, fmt.Errorf("%w: %s holds %s (give --lock-timeout to wait for it)", ErrLocked, h, path)
		}
		time.Sleep(50 * time.Millisecond) // flock has no timeout of its own
	}
	h := Holder{PID: os.Getpid(), Command: strings.Join(os.Args, " "), Since: time.Now()}
	data, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(data, '\n'), 0)
	}
	return &Lock{f: f}, nil
}

func readHolder(path string) string {
	data, err := os.ReadFile(path)
	var h Holder
	if err != nil || json.Unmarshal(data, &h) != nil {
		return "a process"
	}
	return fmt.Sprintf("pid %d (%q, since %s)", h.PID, h.Command, h.Since.Format(time.RFC3339))
}

// Release gives the lock up.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}
