// FenceWatchdog: self-fencing that survives the agent. The agent starts `hafab
// agent-watchdog` in its own process group; if the agent dies (crash, OOM, SIGKILL) its
// instances keep running for adoption, and this small process still kills every
// active-passive primary (SIGKILL to its process group and to every process its tracker
// finds, process_tracker.h) once the lease the agent last
// renewed (<data-dir>/run/lease, on the system-wide monotonic clock) has run out. Without
// it, a dead agent's primary would outlive the controller's lease_ttl + margin and overlap
// the new primary.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/clock.h"

namespace hafab::agent {

struct WatchdogPass {
  int live_primaries = 0;  // primaries still running after the pass
  int killed = 0;          // primaries killed by this pass
};

// The watchdog's own pid file in <data-dir>/run/, beside the instances' <instance>.pid files
// (which it and the supervisor read; they skip this one).
inline constexpr char kWatchdogPidFile[] = "watchdog.pid";

// One look: reads the lease deadline (missing or unreadable = expired) and the pid files;
// if the lease has run out, SIGKILLs the process group of every live active-passive primary.
WatchdogPass RunWatchdogPass(Clock& clock, const std::string& data_dir);

// Loops every `poll` until the agent `agent_pid` (with /proc start time `agent_start`) is
// gone and no primary is left, or until <data-dir>/run/watchdog.pid names another watchdog.
// Returns the process exit code.
int RunFenceWatchdog(Clock& clock, const std::string& data_dir, pid_t agent_pid,
                     uint64_t agent_start, Duration poll = std::chrono::milliseconds(50));

}  // namespace hafab::agent
