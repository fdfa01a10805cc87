package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenDocsCmd writes the man pages and shell completions the packages
// ship. Hidden: it is for the build, not for operators.
func newGenDocsCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write man pages (DIR/man) and shell completions (DIR/completions)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			man, comp := filepath.Join(args[0], "man"), filepath.Join(args[0], "completions")
			for _, d := range []string{man, comp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			// Reproducible: the date of the source, as SOURCE_DATE_EPOCH gives it.
			date := time.Now()
			if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
				date = time.Unix(s, 0).UTC()
			}
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "HOSTWALL", Section: "8", Date: &date,
				Source: "hostwall " + version, Manual: "hostwall manual"}
			if err := doc.GenManTree(root, hdr, man); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			for name, gen := range map[string]func(string) error{
				"hostwall.bash": func(p string) error { return root.GenBashCompletionFileV2(p, true) },
				"_hostwall":     root.GenZshCompletionFile,
				"hostwall.fish": func(p string) error { return root.GenFishCompletionFile(p, true) },
			} {
				if err := gen(filepath.Join(comp, name)); err != nil {
					return fmt.Errorf("completion %s: %w", name, err)
				}
			}
			return nil
		},
	}
}
