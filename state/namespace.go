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

	"golang.org/x/sys/unix"

	"github.com/hostwall/hostwall/internal/netif"
)

// NamespacesDir holds one directory per network namespace that hostwall
// changes, whatever --run-dir and --state-dir say: the lock every writer of
// that namespace's table takes, the running agent's registration, the
// pending trial and how the last one ended. Two processes given different
// run directories still meet here. It is under /run, a tmpfs: a reboot, which
// empties every namespace's ruleset, empties it too (a trial pending at the
// reboot is mirrored in the state directory: Trials).
const NamespacesDir = "/run/hostwall/netns"

// Namespace is one network namespace as hostwall coordinates its writers.
// Its directory is named by the namespace file's inode, which the kernel
// reuses once a namespace is gone; so every record kept there carries the
// namespace's cookie (SO_NETNS_COOKIE, never reused while the kernel runs),
// and a record with another cookie is a dead namespace's, ignored.
type Namespace struct {
	// Name is --netns ("" for hostwall's own namespace); it names the
	// namespace's files in the state and run directories.
	Name string
	// Path is the namespace file.
	Path   string
	Inode  uint64
	Cookie uint64
	// Dir is the namespace's directory (NamespacesDir/<inode>).
	Dir string
}

// OpenNamespace identifies the namespace of name (as --netns gives it; ""
// for the current one) whose file is path ("" for the current one).
func OpenNamespace(name, path string) (Namespace, error) {
	ns := Namespace{Name: name, Path: path}
	file := path
	if file == "" {
		file = "/proc/self/ns/net"
	}
	fi, err := os.Stat(file)
	if err != nil {
		return ns, fmt.Errorf("network namespace %s: %w", file, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ns, fmt.Errorf("network namespace %s: no inode", file)
	}
	ns.Inode = st.Ino
	ns.Dir = filepath.Join(NamespacesDir, strconv.FormatUint(st.Ino, 10))
	err = netif.In(path, func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ns.Cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		return err
	})
	if err != nil {
		return ns, fmt.Errorf("network namespace %s: reading its cookie: %w", file, err)
	}
	return ns, nil
}

// FileName is how the namespace's files in the state and run directories
// are named: "host" for hostwall's own namespace.
func (ns Namespace) FileName() string { return nsName(ns.Name) }

func nsName(netns string) string {
	if netns == "" {
		return "host"
	}
	return strings.ReplaceAll(filepath.Base(netns), string(filepath.Separator), "_")
}

func (ns Namespace) mkdir() error {
	if err := os.MkdirAll(ns.Dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", ns.Dir, err)
	}
	return nil
}

// Lock is the exclusive right to change one namespace's table, or an
// agent's registration.
type Lock struct{ f *os.File }

// Holder says who holds a lock: it is written into the lock file.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	RunDir  string    `json:"run_dir"`
	Since   time.Time `json:"since"`
	// Socket is an agent's control socket (the agent's registration only).
	Socket string `json:"socket,omitempty"`
	Cookie uint64 `json:"cookie"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%q, run directory %s, since %s)", h.PID, h.Command, h.RunDir, h.Since.Format(time.RFC3339))
}

// NewHolder describes this process, using runDir.
func NewHolder(runDir string) Holder {
	return Holder{PID: os.Getpid(), Command: strings.Join(os.Args, " "), RunDir: runDir, Since: time.Now()}
}

// ErrLocked is returned (wrapped, with the holder) when the lock is taken.
var ErrLocked = errors.New("another hostwall is changing this firewall")

// ErrAgentRunning is returned (wrapped, with the holder) by RegisterAgent
// when another agent serves the namespace.
var ErrAgentRunning = errors.New("another agent is running on this network namespace")

// Lock takes the namespace's apply lock, waiting up to timeout (forever
// when negative). Every change to the namespace's table by hostwall — an
// apply, a rollback, a guard's or an agent's — happens under it.
func (ns Namespace) Lock(timeout time.Duration, h Holder) (*Lock, error) {
	l, err := ns.flock("lock", timeout, h)
	if errors.Is(err, errBusy) {
		return nil, fmt.Errorf("%w: %s (give --lock-timeout to wait for it)", ErrLocked, ns.holderOf("lock"))
	}
	return l, err
}

// RegisterAgent marks the namespace as served by the agent h describes,
// for as long as the returned lock is held; a second agent is refused with
// the first one named.
func (ns Namespace) RegisterAgent(h Holder) (*Lock, error) {
	// A moment's wait: Agent takes the registration shared for an instant
	// to see whether an agent holds it.
	l, err := ns.flock("agent", 200*time.Millisecond, h)
	if errors.Is(err, errBusy) {
		return nil, fmt.Errorf("%w: %s; one agent per network namespace", ErrAgentRunning, ns.holderOf("agent"))
	}
	return l, err
}

// Agent returns the registration of the agent serving the namespace, nil
// when none runs.
func (ns Namespace) Agent() *Holder {
	path := filepath.Join(ns.Dir, "agent")
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		return nil // nobody holds it: no agent
	}
	h, err := readJSON[Holder](path)
	if err != nil || h == nil || h.Cookie != ns.Cookie {
		return nil
	}
	return h
}

var errBusy = errors.New("busy")

// flock takes the named lock file of the namespace exclusively, waiting up
// to timeout (forever when negative), and writes h into it.
func (ns Namespace) flock(name string, timeout time.Duration, h Holder) (*Lock, error) {
	if err := ns.mkdir(); err != nil {
		return nil, err
	}
	path := filepath.Join(ns.Dir, name)
	removeIfNotRegular(path) // an earlier namespace's leftover (trial.go)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("the lock %s is not a regular file: remove it", path)
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
		if timeout >= 0 && !time.Now().Before(deadline) {
			f.Close()
			return nil, errBusy
		}
		time.Sleep(20 * time.Millisecond) // flock has no timeout of its own
	}
	h.Cookie = ns.Cookie
	data, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(data, '\n'), 0)
	}
	return &Lock{f: f}, nil
}

// holderOf says who holds the named lock. The holder writes itself in
// just after it took the lock (truncating first), so a read that finds
// nothing is tried again a few times before giving up.
func (ns Namespace) holderOf(name string) string {
	for range 5 {
		if h, err := readJSON[Holder](filepath.Join(ns.Dir, name)); err == nil && h != nil {
			return h.String()
		}
		time.Sleep(10 * time.Millisecond) // the holder is writing its name
	}
	return "a process"
}

// Release gives the lock up; a nil or released lock does nothing.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// Clean removes the temporary files of dead writers from the namespace's
// directory.
func (ns Namespace) Clean() { removeDead(ns.Dir) }
