package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Intent is a change to a namespace's table under way. It is written
// durably before the first netlink message of the change is sent, and
// before the generation it applies is placed, and removed once the outcome is
// recorded (the generation current, or removed again). An intent found by
// the next holder of the namespace's lock is a process that died in
// between: the kernel holds either the change or what it held before, and
// whoever finds it records which (the engine's recovery).
type Intent struct {
	// Op is "apply" or "rollback".
	Op string `json:"op"`
	// Generation is the generation going in (0: the table is removed),
	// Previous the current one before it.
	Generation int `json:"generation"`
	Previous   int `json:"previous"`
	// New: Generation was recorded for this change, and is removed again
	// if it never reached the kernel.
	New bool `json:"new"`
	// Planned is the kernel's ruleset generation the batch was planned at:
	// while the kernel is still there, the batch was not committed.
	Planned uint32    `json:"planned"`
	PID     int       `json:"pid"`
	Time    time.Time `json:"time"`
	// Cookie is the namespace's (Namespace.Cookie).
	Cookie uint64 `json:"cookie"`
}

// IntentPath is the file of the namespace's change under way.
func (s *Store) IntentPath(ns Namespace) string { return s.intentPath(ns) }

func (s *Store) intentPath(ns Namespace) string {
	return filepath.Join(s.Dir, "intent-"+ns.FileName()+".json")
}

// WriteIntent records in, durably, as the namespace's change under way.
func (s *Store) WriteIntent(ns Namespace, in *Intent) error {
	in.Cookie, in.PID, in.Time = ns.Cookie, os.Getpid(), time.Now()
	data, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	return writeFile(s.intentPath(ns), data, 0o600)
}

// ReadIntent returns the namespace's change under way, nil when none. A
// record that does not read is returned as an Intent with Op "" (the change
// it named is unknown).
func (s *Store) ReadIntent(ns Namespace) (*Intent, error) {
	in, err := readJSON[Intent](s.intentPath(ns))
	if err != nil {
		if in == nil {
			return nil, err
		}
		return &Intent{}, nil
	}
	return in, nil
}

// ClearIntent removes the namespace's change under way, durably.
func (s *Store) ClearIntent(ns Namespace) error { return removeSynced(s.intentPath(ns)) }

// Clean removes what writers killed in the middle left in the state
// directory: generations half written and temporary files. Each such name
// carries its writer's pid (tempPattern): only a dead writer's are removed,
// so namespaces sharing the state directory never lose each other's.
func (s *Store) Clean() {
	removeDead(s.genDir())
	removeDead(s.Dir)
}

// tempPattern is the pattern of the temporary names this process makes
// for kind: .<base>.<kind>-<pid>-<random> (os.CreateTemp, os.MkdirTemp).
func tempPattern(base, kind string) string {
	return fmt.Sprintf("%s.%s-%d-*", base, kind, os.Getpid())
}

// removeDead removes the temporary files and directories in dir whose
// writer (the pid in the name) is gone.
func removeDead(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if pid, ok := tempWriter(e.Name()); ok && !alive(pid) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// tempWriter returns the pid in a temporary name made by tempPattern.
func tempWriter(name string) (int, bool) {
	if !strings.HasPrefix(name, ".") {
		return 0, false
	}
	for _, kind := range []string{".tmp-", ".staged-"} {
		if _, rest, ok := strings.Cut(name, kind); ok {
			pid, _, ok := strings.Cut(rest, "-")
			n, err := strconv.Atoi(pid)
			return n, ok && err == nil && n > 0
		}
	}
	return 0, false
}

// alive reports whether a process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
