package state

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Verified is the last time hostwall knew the kernel to hold exactly the
// ruleset compiled from a configuration: by a full read, or by an apply
// verified by its generation (agent.ByGeneration). While the kernel's
// ruleset generation has not moved since, and the configuration and
// everything else the compiled ruleset depends on (Key) are the same, the
// kernel still holds it: a plan needs neither a compile nor a read. Every
// nftables transaction of the namespace, by anyone, moves the generation.
// While only the configuration moved, the ruleset's sets, kept beside the
// record (SaveVerified's base), stand in for a read of the kernel's.
type Verified struct {
	// Key is what else the ruleset depends on: hostwall's version, the
	// host name, the limits, the namespace's identity.
	Key string `json:"key"`
	// Generation is the kernel's ruleset generation of that read.
	Generation uint32 `json:"generation"`
	// ConfigHash is loader.HashSources of the configuration's files, and
	// NetsFiles the nets files among them, in load order.
	ConfigHash string   `json:"config_hash"`
	NetsFiles  []string `json:"nets_files"`
	// HostName is the host name the ruleset was compiled for (saved plans
	// name it).
	HostName string `json:"host_name"`
	// Domains is set when the configuration names domains: what they
	// resolve to may change with the files unchanged, so the record never
	// stands in for loading them.
	Domains bool `json:"domains,omitempty"`
	// Rules is the number of rules, for the message.
	Rules int `json:"rules"`
	// Chains is a hash of the ruleset's chains as rendered, and Base the
	// SHA-256 of the base saved with the record (hex; empty: none).
	Chains string `json:"chains"`
	Base   string `json:"base,omitempty"`
	// Ruleset is HashRuleset of the ruleset's rendering, as a generation
	// of it records (empty in records of older versions).
	Ruleset string `json:"ruleset,omitempty"`
}

func (r RunDir) verifiedPath(netns string) string {
	return filepath.Join(r.Dir, "verified-"+nsName(netns)+".json")
}

func (r RunDir) basePath(netns string) string {
	return filepath.Join(r.Dir, "verified-"+nsName(netns)+".base")
}

// StagedBase is a verified record's base written ahead of the record: an
// apply stages it while the kernel commits, and SaveVerified, once the
// commit gave the generation, puts it in place by a rename. Nil stands for
// no base.
type StagedBase struct {
	path, sum string
}

// Sum is the base's SHA-256, which a record saved with it names.
func (b *StagedBase) Sum() string { return b.sum }

// StageVerifiedBase writes base beside the namespace's record under a name
// of its own, for SaveVerified; nil base stages none. The run directory is
// a tmpfs: a reboot, which restarts the generations, forgets it; so nothing
// here is synced (a torn record does not parse, a torn base fails v.Base).
func (r RunDir) StageVerifiedBase(netns string, base []byte) (*StagedBase, error) {
	if base == nil {
		return nil, nil
	}
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := writeTemp(r.basePath(netns), "staged", base, 0o600, false)
	if err != nil {
		return nil, err
	}
	return &StagedBase{path: tmp, sum: hashHex(base)}, nil
}

// Discard removes a staged base that SaveVerified did not take (the commit
// failed); nil does nothing.
func (b *StagedBase) Discard() {
	if b != nil {
		os.Remove(b.path)
	}
}

// SaveVerified records v for the namespace, with the base staged for it
// (nil for none).
func (r RunDir) SaveVerified(netns string, v *Verified, base *StagedBase) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return err
	}
	v.Base = ""
	if base != nil {
		if err := os.Rename(base.path, r.basePath(netns)); err != nil {
			return err
		}
		v.Base = base.sum
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileUnsynced(r.verifiedPath(netns), data, 0o600)
}

// LoadVerified returns the namespace's record, nil when there is none.
// A damaged record is an error, which plan takes as no record: it reads
// the kernel.
func (r RunDir) LoadVerified(netns string) (*Verified, error) {
	return readJSON[Verified](r.verifiedPath(netns))
}

// LoadVerifiedBase returns the base saved with v, or nil when there is none
// or it is not the one v was saved with.
func (r RunDir) LoadVerifiedBase(netns string, v *Verified) []byte {
	if v.Base == "" {
		return nil
	}
	data, err := readFile(r.basePath(netns), -1)
	if err != nil || hashHex(data) != v.Base {
		return nil
	}
	return data
}

// RunDir is the run directory: the verified records, the agent's control
// socket and the guard's log (a tmpfs, private to root). What coordinates
// the writers of a namespace is not here but in its Namespace directory,
// which every run directory shares.
type RunDir struct {
	Dir string
}

// SocketPath is where the agent of a namespace listens.
func (r RunDir) SocketPath(netns string) string {
	return filepath.Join(r.Dir, "agent-"+nsName(netns)+".sock")
}

// Clean removes the temporary and staged files of writers that died.
func (r RunDir) Clean() { removeDead(r.Dir) }
