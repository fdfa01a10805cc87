package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/hostwall/hostwall/planner"
)

// savedPlan is the file plan -o writes.
type savedPlan struct {
	FormatVersion string           `json:"format_version"`
	NetNS         string           `json:"netns"`
	ConfigDir     string           `json:"config_dir"`
	ConfigHash    string           `json:"config_hash"`
	HostName      string           `json:"host_name"`
	Plan          planner.JSONPlan `json:"plan"`
}

// writeSavedPlan saves p, planned from the configuration whose files hash
// to configHash, compiled for host.
func writeSavedPlan(path string, g *globals, configHash, host string, p *planner.Plan) error {
	data, err := json.MarshalIndent(savedPlan{FormatVersion: planner.FormatVersion, NetNS: g.netns, ConfigDir: g.configDir,
		ConfigHash: configHash, HostName: host, Plan: p.JSON()}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

func readSavedPlan(path string) (*savedPlan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sp := &savedPlan{}
	if err := json.Unmarshal(data, sp); err != nil {
		return nil, fmt.Errorf("%s is not a saved plan: %w", path, err)
	}
	if sp.FormatVersion != planner.FormatVersion {
		return nil, fmt.Errorf("%s is a plan of format %q; this hostwall reads %q", path, sp.FormatVersion, planner.FormatVersion)
	}
	return sp, nil
}

// samePlan compares two plans as their JSON.
func samePlan(a, b planner.JSONPlan) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
