// Package benchns makes the throwaway network namespaces the benchmark
// commands apply into (the tests use internal/testns, which needs a
// testing.T).
package benchns

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// ProcField returns the number after name in /proc/pid/file (kB for VmRSS).
func ProcField(pid int, file, name string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/%s", name, pid, file)
}

// CPUAndSwitches returns the process's user+system CPU time in clock ticks
// (1/100 s) over all its threads, and its context switches, voluntary and
// not, summed over all threads.
func CPUAndSwitches(pid int) (ticks, switches int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		v, _ := ProcField(pid, "task/"+strconv.Itoa(tid)+"/status", "voluntary_ctxt_switches:")
		n, _ := ProcField(pid, "task/"+strconv.Itoa(tid)+"/status", "nonvoluntary_ctxt_switches:")
		switches += v + n
	}
	return utime + stime, switches, nil
}
