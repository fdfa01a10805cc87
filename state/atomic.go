package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// writeFile writes data to path atomically: temp file, fsync, rename, fsync
// of the directory.
func writeFile(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, true)
}

// writeFileUnsynced is writeFile without the fsyncs: readers see the old
// file or the new, but a crash may leave either torn (values that are only
// worth time, checked when read).
func writeFileUnsynced(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, false)
}

func replaceFile(path string, data []byte, perm os.FileMode, sync bool) error {
	tmp, err := writeTemp(path, "tmp", data, perm, sync)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data, with perm (synced if sync), to a new file beside
// path named by tempPattern, and returns its name; on failure it leaves no
// file.
func writeTemp(path, kind string, data []byte, perm os.FileMode, sync bool) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern("."+filepath.Base(path), kind))
	if err != nil {
		return "", err
	}
	if err := writeSyncClose(f, data, perm, sync); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// writeSyncClose writes data to f, sets perm, syncs (if sync) and closes
// it; f is closed whatever happens.
func writeSyncClose(f *os.File, data []byte, perm os.FileMode, sync bool) error {
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileSynced writes a file inside a directory that is itself renamed
// into place afterwards; it only needs its data on disk. A string is
// written as it is (os.File.WriteString does not copy it).
func writeFileSynced[T []byte | string](path string, data T, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	var werr error
	switch d := any(data).(type) {
	case string:
		_, werr = f.WriteString(d)
	case []byte:
		_, werr = f.Write(d)
	}
	if err := werr; err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readJSON decodes the file at path into a new T: nil and no error when
// there is no such file.
func readJSON[T any](path string) (*T, error) {
	data, err := readFile(path, recordLimit)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := new(T)
	return v, json.Unmarshal(data, v)
}

// recordLimit bounds hostwall's own small records (current, intents,
// trials, generation records, verified records, lock holders).
const recordLimit = 16 << 20

// readFile reads the regular file at path, of at most limit bytes (no
// limit when negative). It never blocks on a special file (a FIFO, a
// device) put in the place of a record, and follows no symbolic link:
// either is an error naming the path.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link: hostwall follows none among its records", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): hostwall keeps its records in regular files only", path, fi.Mode().Type())
	}
	if limit >= 0 && fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than a record of hostwall's can be", path, fi.Size())
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}
