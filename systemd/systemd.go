// Package systemd tells systemd how the agent is doing (sd_notify): ready,
// reloading, stopping, a status line, watchdog pings. Without NOTIFY_SOCKET
// every call does nothing.
package systemd

import (
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier sends sd_notify messages.
type Notifier struct{}

func (Notifier) send(state string) { daemon.SdNotify(false, state) }

// Ready is part of agent.Notifier.
func (n Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Reloading is part of agent.Notifier. systemd (Type=notify) wants the
// monotonic time with RELOADING=1; the library does not add it.
func (n Notifier) Reloading() {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// Stopping is part of agent.Notifier.
func (n Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Status is part of agent.Notifier.
func (n Notifier) Status(s string) { n.send("STATUS=" + s) }

// Watchdog is part of agent.Notifier.
func (n Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog) }

// WatchdogInterval is half of WATCHDOG_USEC, or 0 when systemd does not
// watch this process.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d == 0 {
		return 0
	}
	return d / 2
}
