// Command phases times each step of a full apply (W1) in-process, in a
// namespace of its own, to show where the time goes; make bench prints it
// under the tables. The steps are the CLI's: load, compile, read, diff,
// commit and verify by generation, render, record. The read-back the CLI
// no longer does is timed last, for comparison.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"runtime/debug"
	"time"

	"github.com/hostwall/hostwall/bench/internal/benchns"
	"github.com/hostwall/hostwall/compile"
	"github.com/hostwall/hostwall/engine"
	"github.com/hostwall/hostwall/loader"
	"github.com/hostwall/hostwall/nft"
	"github.com/hostwall/hostwall/planner"
	"github.com/hostwall/hostwall/state"
)

func main() {
	cfg := flag.String("config", "", "configuration directory (bench/gen's output)")
	flag.Parse()
	debug.SetGCPercent(400) // as the CLI's one-shot commands
	if err := run(*cfg); err != nil {
		fmt.Fprintln(os.Stderr, "phases:", err)
		os.Exit(1)
	}
}

func run(cfg string) error {
	ns, del, err := benchns.New("hwphases")
	if err != nil {
		return err
	}
	defer del()
	ctx := context.Background()
	last := time.Now()
	step := func(name string) {
		now := time.Now()
		fmt.Printf("| %s | %.0f ms |\n", name, float64(now.Sub(last).Microseconds())/1000)
		last = now
	}
	fmt.Println("| step of a full apply (bench/phases) | time |\n|---|---|")
	res, diags := loader.LoadDir(cfg, loader.DirOptions{InsecureSkipPerms: true})
	if diags.HasErrors() {
		return diags
	}
	step("load the files")
	desired, diags := compile.Compile(res.Config, compile.Options{HostName: res.Config.HostName("")})
	if diags.HasErrors() {
		return diags
	}
	step("compile")
	conn, err := nft.Open(nft.Options{NetNS: ns})
	if err != nil {
		return err
	}
	defer conn.Close()
	live, gen, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	p := planner.Diff(desired, live)
	p.Generation = gen
	step("open, read (empty), diff")
	if _, _, err := engine.ApplyTable(ctx, conn, desired, p, engine.ByGeneration); err != nil {
		return err
	}
	step("commit, verify by generation")
	rendered := desired.String()
	step("render the ruleset for the generation")
	dir, err := os.MkdirTemp("", "phases")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g := &state.Generation{Ruleset: rendered}
	for _, s := range res.Sources {
		g.Files = append(g.Files, state.File{Path: s.Path, Data: s.Data})
	}
	if err := (&state.Store{Dir: dir}).Record(g); err != nil {
		return err
	}
	step("record the generation")
	if _, err := engine.Verify(ctx, conn, desired); err != nil {
		return err
	}
	step("(a read-back and diff, which the CLI no longer does)")
	return nil
}
