package agent

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/hostwall/hostwall/loader"
)

// watcher reports changes to policy files of a directory, surviving
// rename-saves and the directory being removed and created again (it also
// watches the parent).
type watcher struct {
	fs  *fsnotify.Watcher
	dir string
	// changes holds the time of the latest change not yet taken.
	changes chan time.Time
	log     *zap.Logger
	done    chan struct{}
}

func newWatcher(dir string, log *zap.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	w := &watcher{fs: fw, dir: dir, changes: make(chan time.Time, 1), log: log, done: make(chan struct{})}
	if err := fw.Add(filepath.Dir(dir)); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching %s: %w", filepath.Dir(dir), err)
	}
	if err := fw.Add(dir); err != nil {
		log.Warn("the configuration directory is missing; waiting for it", zap.String("dir", dir))
	}
	go w.loop()
	return w, nil
}

func (w *watcher) loop() {
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			switch {
			case ev.Name == w.dir:
				if ev.Has(fsnotify.Create) {
					w.fs.Add(w.dir) // the directory came back
				}
				w.signal()
			case filepath.Dir(ev.Name) == w.dir && loader.IsWatched(filepath.Base(ev.Name)):
				w.signal()
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching the configuration directory", zap.Error(err))
			w.signal() // events may have been lost: look again
		}
	}
}

func (w *watcher) signal() {
	now := time.Now()
	for {
		select {
		case w.changes <- now:
			return
		default:
			select { // an older change not taken yet: this one is later
			case <-w.changes:
			default:
			}
		}
	}
}

func (w *watcher) close() {
	close(w.done)
	w.fs.Close()
}
