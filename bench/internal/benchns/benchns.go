// Package benchns makes the throwaway network namespaces the benchmark
// commands apply into (the tests use internal/testns, which needs a
// testing.T).
package benchns

import (
	"fmt"
	"os"
	"os/exec"
)

// New creates a namespace named for prefix and this process, with an
// interface eth0 (one end of a veth pair) for the benchmark's host
// endpoint, and returns its name and a function that deletes it.
func New(prefix string) (string, func(), error) {
	ns := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	del := func() { exec.Command("ip", "netns", "del", ns).Run() }
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0").CombinedOutput(); err != nil {
		del()
		return "", nil, fmt.Errorf("ip link add: %v: %s", err, out)
	}
	return ns, del, nil
}
