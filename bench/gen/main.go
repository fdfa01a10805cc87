// Command gen writes the benchmark workload of bench/run.sh: policies worth
// -rules rules (100 per policy) and a network set of -cidrs networks read
// from a nets_file (with -inline: listed in the HCL file itself), for a
// host endpoint eth0.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "", "directory to write")
	rules := flag.Int("rules", 10000, "policy rules in all")
	cidrs := flag.Int("cidrs", 100000, "networks in the blocklist")
	inline := flag.Bool("inline", false, "list the networks in host.hcl instead of a nets_file")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	write := func(name string, fill func(w *bufio.Writer)) {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			log.Fatal(err)
		}
		w := bufio.NewWriter(f)
		fill(w)
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	network := func(i int) string {
		// /30 networks with a gap between them, so none merge.
		n := uint32(10<<24) + uint32(i)*8
		return fmt.Sprintf("%d.%d.%d.%d/30", n>>24, n>>16&255, n>>8&255, n&255)
	}
	write("host.hcl", func(w *bufio.Writer) {
		fmt.Fprint(w, "host_endpoint \"eth0\" { interface = \"eth0\" }\nnetwork_set \"blocklist\" {\n  labels    = { blocked = \"true\" }\n")
		if *inline {
			fmt.Fprint(w, "  nets = [")
			for i := 0; i < *cidrs; i++ {
				if i > 0 {
					fmt.Fprint(w, ", ")
				}
				fmt.Fprintf(w, "%q", network(i))
			}
			fmt.Fprint(w, "]\n")
		} else {
			fmt.Fprint(w, "  nets_file = \"blocklist.txt\"\n")
		}
		fmt.Fprint(w, `}
policy "blocklist" {
  order = 10
  ingress {
    action = "deny"
    source { selector = "blocked == 'true'" }
  }
}
`)
	})
	write("policies.hcl", func(w *bufio.Writer) {
		for p := 0; p*100 < *rules; p++ {
			fmt.Fprintf(w, "policy \"svc-%d\" {\n  order = %d\n", p, 100+p)
			for r := 0; r < 100 && p*100+r < *rules; r++ {
				fmt.Fprintf(w, "  ingress {\n    action   = \"allow\"\n    protocol = \"tcp\"\n    destination { ports = [%d] }\n  }\n", 1024+p*100+r)
			}
			fmt.Fprint(w, "}\n")
		}
	})
	if !*inline {
		write("blocklist.txt", func(w *bufio.Writer) {
			for i := 0; i < *cidrs; i++ {
				fmt.Fprintln(w, network(i))
			}
		})
	}
}
