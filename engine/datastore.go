package engine

import (
	"fmt"

	"github.com/hostwall/hostwall/datastore"
	"github.com/hostwall/hostwall/state"
)

// Datastore gives the resources of Calico's etcdv3 datastore to load with
// the files: the agent's follower (the latest revision it read), or a
// command's one list.
type Datastore interface {
	Snapshot() (*datastore.Snapshot, error)
}

// DatastoreFunc is a function as a Datastore.
type DatastoreFunc func() (*datastore.Snapshot, error)

// Snapshot calls f.
func (f DatastoreFunc) Snapshot() (*datastore.Snapshot, error) { return f() }

// DatastoreError is a load that found no datastore snapshot to load with
// the files (etcd never reached): nothing is applied, since the files
// alone would take the datastore's policies away.
type DatastoreError struct{ Err error }

func (e *DatastoreError) Error() string {
	return fmt.Sprintf("the etcd datastore was not read (the files alone would drop its policies): %v", e.Err)
}

func (e *DatastoreError) Unwrap() error { return e.Err }

// takeSnapshot takes the datastore's resources for the operation under way
// (Options.Datastore): each load and each record of it uses this one.
func (e *Engine) takeSnapshot() error {
	if e.o.Datastore == nil {
		return nil
	}
	s, err := e.o.Datastore.Snapshot()
	if err != nil {
		return &DatastoreError{err}
	}
	e.snap = s
	e.o.Load.Datastore = nil
	if s != nil {
		e.o.Load.Datastore = s.Sources
	}
	return nil
}

// datastoreRecord is what a generation made from the snapshot taken
// records of it.
func (e *Engine) datastoreRecord() *state.Datastore {
	if e.o.Datastore == nil || e.snap == nil {
		return nil
	}
	c := e.snap.Config
	return &state.Datastore{Type: datastore.Type, Endpoints: c.Endpoints, CA: c.CA, Cert: c.Cert, Key: c.Key,
		Revision: e.snap.Revision}
}

// snapshotRevision is the revision of the snapshot taken (0: none).
func (e *Engine) snapshotRevision() int64 {
	if e.o.Datastore == nil || e.snap == nil {
		return 0
	}
	return e.snap.Revision
}

// RecordedDatastore is the datastore the current generation read and the
// host it was made for, from its record alone; rec is nil for a generation
// of the files alone, or none. An error when the record does not read
// (then nobody can tell whether the datastore is meant).
func (e *Engine) RecordedDatastore() (rec *state.Datastore, host string, err error) {
	g, err := e.store.CurrentMeta()
	if err == nil && g == nil {
		// No generation is current: none was ever made, or the pointer to
		// it is gone. Then the newest says whether the datastore is meant.
		if nums, _ := e.store.Numbers(); len(nums) > 0 {
			if newest, err := e.store.Meta(nums[len(nums)-1]); err != nil || newest.Datastore != nil {
				return nil, "", fmt.Errorf("%s has generations but none is current, and the newest read the etcd datastore (or does not read)", e.o.StateDir)
			}
		}
	}
	if err != nil || g == nil || g.Datastore == nil {
		return nil, "", err
	}
	return g.Datastore, g.HostName, nil
}

// RecordedSnapshot is the datastore snapshot the current generation
// recorded, to start from until etcd answers; nil when it has none, or its
// resources do not read (damaged).
func (e *Engine) RecordedSnapshot() *datastore.Snapshot {
	g, err := e.store.CurrentMeta()
	if err != nil || g == nil || g.Datastore == nil {
		return nil
	}
	full, err := e.store.Load(g.Number)
	if err != nil {
		e.notice("the generation in force's datastore resources do not read (%v): nothing to start from until etcd answers", err)
		return nil
	}
	d := full.Datastore
	return datastore.FromRecord(datastore.Config{Endpoints: d.Endpoints, CA: d.CA, Cert: d.Cert, Key: d.Key}, d.Revision, loaderSources(full))
}

// RecordedRevision is the etcd revision generation n's datastore
// resources are as of (0: none, or n does not read).
func (e *Engine) RecordedRevision(n int) int64 {
	g, err := e.store.Meta(n)
	if err != nil || g == nil || g.Datastore == nil {
		return 0
	}
	return g.Datastore.Revision
}

// loadedFrom names what a load read: the directory, and the datastore's
// revision with it.
func (e *Engine) loadedFrom() string {
	if r := e.snapshotRevision(); e.snap != nil {
		return fmt.Sprintf("%s and the etcd datastore (revision %d)", e.o.ConfigDir, r)
	}
	return e.o.ConfigDir
}

// DatastoreReason is why the agent applies a change of the datastore (its
// generations that changed nothing on this host are pruned first:
// state.DatastoreReason).
const DatastoreReason = state.DatastoreReason
