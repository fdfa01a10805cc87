package engine

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/resolve"
	"github.com/hostwall/hostwall/state"
)

// records are a change's records, made on other cores while the change is
// planned and approved: the generation, written durably before the commit,
// and the verified record, staged, needed only once the kernel answered.
type records struct {
	gen *state.Pending
	rec *stagedRecord
	// written: gen's files are; genReady: its ruleset too; staged: rec is.
	written, genReady, staged errgroup.Group
}

// startRecords starts writing the files of a change's generation (the
// configuration files, compiled for host, its domain names resolved to
// names); finish adds the rest.
func (e *Engine) startRecords(files []loader.Source, host string, names []resolve.Answer, req ApplyRequest) *records {
	rs := &records{}
	rs.written.Go(func() (err error) {
		rs.gen, err = e.prepare(files, host, names, req)
		return err
	})
	return rs
}

// finish completes the records: the table's text as render renders it,
// written (and hashed as it is written) once the files are, and the
// verified record stage stages from the rendering.
func (rs *records) finish(e *Engine, render func() rendering, stage func(rendering) (*stagedRecord, error)) *records {
	rs.genReady.Go(func() error {
		r := render()
		if err := rs.written.Wait(); err != nil {
			return err
		}
		if err := rs.gen.WriteRuleset(r.text); err != nil {
			return fmt.Errorf("recording generation: %w", err)
		}
		// The text is on disk: not kept while the change goes on (~20 MB
		// at a million networks).
		r.text, r.hash = "", rs.gen.Generation().RulesetHash
		rs.staged.Go(func() (err error) {
			if rs.rec, err = stage(r); err != nil {
				e.notice("cannot record the verified state (the next plan reads the kernel): %v", err)
			}
			return nil
		})
		return nil
	})
	return rs
}

// generation waits for the generation, written in full (not placed).
func (rs *records) generation() (*state.Pending, error) {
	err := rs.genReady.Wait()
	return rs.gen, err
}

// verified waits for the staged verified record; nil when it could not be
// made.
func (rs *records) verified() *stagedRecord {
	rs.genReady.Wait() // first: it starts the staging
	rs.staged.Wait()
	return rs.rec
}

// discard drops the records of a change that was not made (finished or
// not).
func (rs *records) discard() {
	rs.written.Wait()
	if gen, _ := rs.generation(); gen != nil {
		gen.Abort()
	}
	rs.verified().discard()
}

// prepare writes the files of a new generation, compiled for host, durably
// into the state directory's temporary space.
func (e *Engine) prepare(files []loader.Source, host string, names []resolve.Answer, req ApplyRequest) (*state.Pending, error) {
	reason := req.Reason
	if reason == "" {
		reason = "apply"
	}
	if req.Trial > 0 {
		reason += " (trial)"
	}
	g := &state.Generation{Time: time.Now(), UID: os.Getuid(), SSHConnection: req.SSHConnection, HostName: host,
		NetNS: e.o.NetNS, ConfigDir: e.o.ConfigDir, Reason: reason, Limits: e.limits(), Datastore: e.datastoreRecord()}
	for _, s := range files {
		f := state.File{Path: s.Path, Data: s.Data, SHA256: s.SHA256}
		if !loader.IsDatastore(s.Path) {
			g.Files = append(g.Files, f)
			continue
		}
		if g.Datastore == nil {
			g.Datastore = &state.Datastore{Type: "unknown"} // (the engine's snapshot records where they came from)
		}
		if len(g.Datastore.Files) == 0 {
			g.Datastore.At = len(g.Files)
		}
		g.Datastore.Files = append(g.Datastore.Files, f)
	}
	for _, n := range names {
		if g.Names == nil {
			g.Names = map[string][]string{}
		}
		g.Names[n.Name] = []string{} // (recorded without an address too: it had none)
		for _, a := range n.Addrs {
			g.Names[n.Name] = append(g.Names[n.Name], a.String())
		}
	}
	p, err := e.store.Prepare(g)
	if err != nil {
		return nil, fmt.Errorf("recording generation: %w", err)
	}
	return p, nil
}
