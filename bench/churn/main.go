// Command churn is the other program of bench/run.sh's busy host: it
// changes table ip busy in a namespace -rate times a second until it is
// sent SIGTERM or SIGINT, then prints how many transactions it committed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hostwall/hostwall/internal/churn"
)

func main() {
	ns := flag.String("netns", "", "the network namespace (a name under /run/netns)")
	rate := flag.Int("rate", 20, "transactions a second")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := churn.Run(ctx, *ns, *rate, nil)
	fmt.Println(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}
