package engine

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzSavedPlan: any file given to `apply PLANFILE` is refused with an
// error or read as a plan whose JSON reads back the same; nothing panics.
func FuzzSavedPlan(f *testing.F) {
	f.Add([]byte(`{"format_version":"1","plan":{"changes":[]}}`))
	f.Add([]byte(`{"format_version":"1","netns":"x","config_hash":"ab","plan":{"generation":3,"create_table":true,"changes":[{"kind":"chain","name":"c","action":"create","rules":[{"rule":"accept"}]}]}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "plan")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := ReadSavedPlan(path)
		if err != nil {
			return
		}
		if sp.path != path {
			t.Errorf("a saved plan read from %s names %s", path, sp.path)
		}
	})
}
