// Reading /proc: process start times (to recognise a pid across agent restarts), CPU and
// memory use per process group, and which processes hold files under a directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hafab::agent {

struct ProcStat {
  pid_t pid = 0;
  pid_t pgid = 0;
  char state = '?';          // R, S, D, T (stopped), Z, ...
  uint32_t flags = 0;        // field 9: PF_* flags
  uint64_t cpu_ticks = 0;    // utime + stime, in clock ticks
  uint64_t start_time = 0;   // field 22: clock ticks after boot
  uint64_t start_stack = 0;  // field 28: where the stack starts (random per exec; 0 if hidden)
};

// /proc/<pid>/stat. nullopt if the process does not exist.
std::optional<ProcStat> ReadProcStat(pid_t pid);

// Resident set size of `pid` from /proc/<pid>/statm, in bytes; 0 if it does not exist.
uint64_t ReadRssBytes(pid_t pid);

// Every live process of process group `pgid` (scans /proc).
std::vector<ProcStat> ProcessGroupMembers(pid_t pgid);

// Processes with an open file descriptor or their cwd at or under `dir` (scans /proc).
// Used before detaching a volume: the detach waits until this is empty.
std::vector<pid_t> ProcessesHolding(const std::string& dir);

// CPU and memory of one process group.
struct GroupUsage {
  uint64_t cpu_ticks = 0;
  uint64_t rss_bytes = 0;
};

// Usage of each of the given process groups, summed over their live members (one /proc scan).
std::map<pid_t, GroupUsage> UsageOfGroups(const std::vector<pid_t>& pgids);

// The value of environment variable `name` of every process that has it (scans
// /proc/*/environ; processes whose environment cannot be read are skipped). A process in the
// middle of an exec shows an empty environment for an instant: it is read again until its new
// one is laid out, so a scan does not miss it.
std::map<pid_t, std::string> ProcessesWithEnv(const std::string& name);

// This process's cgroup path in the hierarchy of `controller` ("" = the cgroup v2 one), from
// /proc/self/cgroup; "" for the root.
std::string OwnCgroupPath(const std::string& controller);

// sysconf(_SC_CLK_TCK).
uint64_t ClockTicksPerSecond();

// /proc/sys/kernel/random/boot_id, "" if unreadable.
std::string ReadBootId();

}  // namespace hafab::agent
