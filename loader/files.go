package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// Source is one file as read.
type Source struct {
	Path string
	Data []byte
	// SHA256 is Data's SHA-256 in hex, taken as the file was read (the
	// loader's readers fill it: a check, a load and the records would
	// otherwise hash the same 2 MB four times); SourceSum computes it when
	// empty.
	SHA256 string
}

// newSource is the source read from path, hashed.
func newSource(path string, data []byte) Source {
	return Source{Path: path, Data: data, SHA256: sumHex(data)}
}

// SourceSum is s's SHA-256 in hex: s.SHA256, or computed when it is empty.
func SourceSum(s Source) string {
	if s.SHA256 != "" {
		return s.SHA256
	}
	return sumHex(s.Data)
}

func sumHex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// ignored reports whether a file name is an editor or package-manager
// leftover that must never be loaded.
func ignored(name string) bool {
	switch {
	case strings.HasPrefix(name, "."), strings.HasSuffix(name, "~"), strings.HasPrefix(name, "#"),
		strings.Contains(name, ".dpkg-"), strings.Contains(name, ".rpmnew"), strings.Contains(name, ".rpmsave"),
		strings.Contains(name, ".rpmorig"), strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".bak"):
		return true
	}
	return false
}

// policyFile reports whether a file name is one the loader reads.
func policyFile(name string) bool {
	switch filepath.Ext(name) {
	case ".hcl", ".yaml", ".yml":
		return !ignored(name)
	}
	return false
}

// untrustedError is readInput's refusal of a file checkTrust refuses.
type untrustedError struct{ err error }

func (e *untrustedError) Error() string { return "untrusted: " + e.err.Error() }

// tooLargeError is readInput's refusal of a file over the size limit.
type tooLargeError struct {
	path      string
	size, max int64
	flag      string // the flag that raises max
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, above the limit of %d (raise it with %s)", e.path, e.size, e.max, e.flag)
}

// notRegularError is readInput's refusal of anything but a regular file:
// a FIFO or a device could block a read forever, a directory or socket
// holds no policy.
type notRegularError struct {
	path string
	mode fs.FileMode
}

func (e *notRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file: hostwall reads only regular files", e.path, kindOf(e.mode))
}

// kindOf names the type of a file mode, with its article.
func kindOf(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return "a special file"
}

// readInput reads one input of the configuration, a policy file or a nets
// file: with trust, only if checkTrust accepts it; only a regular file
// (what a link points to is looked at before anything is opened, and the
// opened file again, non-blocking, so that nothing swapped in between can
// block); and only up to maxBytes, however much the file grows meanwhile.
func readInput(path string, trust bool, maxBytes int64, flag string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// What is not a regular file is refused as such before its owner and
	// mode are looked at: a link to /dev/null is "a character device", not
	// "writable by others: run chmod go-w /dev/null", which would break the
	// host's /dev/null for everyone.
	if !fi.Mode().IsRegular() {
		return nil, &notRegularError{path, fi.Mode()}
	}
	if trust {
		if err := checkTrust(path); err != nil {
			return nil, &untrustedError{err}
		}
	}
	if fi.Size() > maxBytes {
		return nil, &tooLargeError{path, fi.Size(), maxBytes, flag}
	}
	return readRegular(path, maxBytes, flag)
}

// readRegular reads the regular file path up to maxBytes, by system calls
// on a descriptor opened non-blocking: a file that would block (/proc/kmsg
// is a regular file) fails instead of parking the reader, which Go's
// poller would do with an *os.File. Files of the kernel's pseudo file
// systems are refused before a byte is read: reading some of them takes
// something away (kernel messages), and none holds a configuration.
func readRegular(path string, maxBytes int64, flag string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		fi, _ := os.Stat(path)
		mode := fs.ModeIrregular
		if fi != nil {
			mode = fi.Mode()
		}
		return nil, &notRegularError{path, mode}
	}
	var sfs syscall.Statfs_t
	if err := syscall.Fstatfs(fd, &sfs); err == nil {
		if name, pseudo := pseudoFS[int64(sfs.Type)]; pseudo {
			return nil, fmt.Errorf("%s is on %s, the kernel's, not a file of a configuration: hostwall reads files from a disk", path, name)
		}
	}
	if st.Size > maxBytes {
		return nil, &tooLargeError{path, st.Size, maxBytes, flag}
	}
	buf := make([]byte, 0, min(st.Size+1, maxBytes+1))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > maxBytes {
				return nil, &tooLargeError{path, int64(len(buf)), maxBytes, flag}
			}
			buf = slices.Grow(buf, int(min(int64(max(cap(buf), 4096)), maxBytes+1-int64(len(buf)))))
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return nil, fmt.Errorf("%s would block on reading: not a file of a configuration", path)
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			if int64(len(buf)) > maxBytes {
				return nil, &tooLargeError{path, int64(len(buf)), maxBytes, flag}
			}
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// pseudoFS are the kernel's file systems (statfs f_type) no configuration
// is read from.
var pseudoFS = map[int64]string{
	0x9fa0: "procfs", 0x62656572: "sysfs", 0x64626720: "debugfs", 0x74726163: "tracefs",
	0x73636673: "securityfs", 0x27e0eb: "cgroupfs", 0x63677270: "cgroup2fs", 0x62656570: "configfs",
	0xcafe4a11: "bpffs", 0x6e736673: "nsfs", 0x42494e4d: "binfmt_misc", 0x1cd1: "devpts",
}

// untrusted is the diagnostic for a file or directory checkTrust refuses.
func untrusted(path string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Untrusted configuration",
		Detail:   err.Error() + ". (--insecure-skip-perms loads it anyway, for tests and containers.)",
		Subject:  &hcl.Range{Filename: path},
	}
}

// readDir returns the policy files of dir in lexical order; with trust, it
// refuses any that checkTrust refuses, and any larger than maxBytes. Files
// in overlay (absolute path → file to read instead, "" for none) are read as
// the overlay says.
func readDir(dir string, trust bool, maxBytes int64, overlay map[string]string) ([]Source, hcl.Diagnostics) {
	if trust {
		if err := checkTrust(dir); err != nil && !os.IsNotExist(err) {
			return nil, hcl.Diagnostics{untrusted(dir, err)}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the configuration directory",
			Detail:   fmt.Sprintf("%v. Create it, or point -c/--config at the directory holding the policy files.", err),
		}}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		// Whatever its type: a FIFO, socket or directory named like a
		// policy file is refused by name (readInput), not skipped unseen.
		if from, ok := overlay[filepath.Join(dir, e.Name())]; policyFile(e.Name()) && (!ok || from != "") {
			names = append(names, e.Name())
		}
	}
	for p, from := range overlay {
		if from == "" || filepath.Dir(p) != dir || !policyFile(filepath.Base(p)) {
			continue
		}
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			names = append(names, filepath.Base(p))
		}
	}
	sort.Strings(names)
	var diags hcl.Diagnostics
	srcs := make([]Source, 0, len(names))
	for _, n := range names {
		p := filepath.Join(dir, n)
		from, ok := overlay[p]
		if !ok {
			from = p
		}
		data, err := readInput(from, trust, maxBytes, "--max-file-bytes")
		refuse := func(summary, detail string) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &hcl.Range{Filename: p}})
		}
		var ut *untrustedError
		var big *tooLargeError
		var special *notRegularError
		switch {
		case errors.As(err, &ut):
			diags = append(diags, untrusted(p, ut.err))
			continue
		case errors.As(err, &special):
			refuse("Not a regular file", fmt.Sprintf("%s. Remove it from the configuration directory, or rename it to end in something other than .hcl, .yaml or .yml.", special))
			continue
		case errors.As(err, &big):
			refuse("Policy file too large", fmt.Sprintf("The file is %d bytes, above the limit of %d. If that is intended, raise the limit with --max-file-bytes.", big.size, big.max))
			continue
		case err != nil:
			refuse("Cannot read policy file", fmt.Sprintf("%v.", err))
			continue
		}
		srcs = append(srcs, newSource(p, data))
	}
	return srcs, diags
}

// IsWatched reports whether a change to a file of this name may change the
// configuration: any file but an editor or package-manager leftover (nets
// files may have any name). The content hash decides whether it did.
func IsWatched(name string) bool { return !ignored(name) }

// HashSources is the content hash of a configuration: every file's name and
// contents. Equal hashes mean nothing to reload.
func HashSources(srcs []Source) string {
	h := sha256.New()
	for _, s := range srcs {
		name := filepath.Base(s.Path)
		if IsDatastore(s.Path) {
			name = s.Path // keys of two kinds may end in the same name
		}
		fmt.Fprintf(h, "%s %s\n", name, SourceSum(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReadSources reads, without parsing, what a load of dir reads: its policy
// files as they are now, and the nets files a load of the same policy
// files names (nets, from the last load), under the same trust checks and
// size limit. If their HashSources equals that load's, the configuration is
// the same. Any problem is an error: then load the directory.
func ReadSources(dir string, opts DirOptions, nets []string) ([]Source, error) {
	opts = opts.withDefaults()
	trust := !opts.InsecureSkipPerms && os.Geteuid() == 0
	srcs, diags := readDir(filepath.Clean(dir), trust, opts.MaxFileBytes, nil)
	if diags.HasErrors() {
		return nil, diags
	}
	srcs = append(srcs, opts.Datastore...)
	for _, p := range nets {
		data, err := readInput(p, trust, opts.MaxNetsFileBytes, "--max-nets-file-bytes")
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, newSource(p, data))
	}
	return srcs, nil
}
