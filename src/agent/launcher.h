// Launcher: the seam through which the agent starts, signals and reaps instance processes.
// ProcessLauncher (process_launcher.h) uses fork/exec; testing::FakeLauncher records calls
// and lets a test decide when a process exits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace hafab::agent {

struct LaunchSpec {
  // argv[0] is looked up on PATH (from `env`) when it has no '/'. REQUIRES: not empty.
  std::vector<std::string> argv;
  // The complete environment of the process (nothing is inherited implicitly).
  std::map<std::string, std::string> env;
  std::string cwd;       // "" = the agent's working directory
  std::string log_path;  // stdout and stderr, opened O_APPEND|O_CREAT; "" = /dev/null
  // When >= 0 (SpawnProcess only): the child's stdout instead (its stderr still goes to
  // log_path) — a hook whose answer the agent reads. The caller keeps and closes it.
  // When not empty, stdout and stderr go instead through a pipe to this program (its stdin),
  // started detached (a session of its own, reparented away from the agent) so that it
  // outlives an agent restart: `hafab log-writer`, which writes and rotates the log
  // (log_writer.h). Its failure to start fails the launch.
  std::vector<std::string> log_writer_argv;
  // Files the child writes its own pid into before exec (cgroup.procs of its cgroups).
  std::vector<std::string> cgroup_procs;
  // Run as another account: setgroups(groups), setgid(gid), setuid(uid) before exec, then
  // chdir(cwd) as that account. REQUIRES: the agent runs as root.
  bool switch_account = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // Directories the program must be able to use (its volume): checked after the switch.
  std::vector<std::string> reach_dirs;
  int stdout_fd = -1;
  uint64_t rlimit_as_bytes = 0;  // RLIMIT_AS when no memory cgroup is available; 0 = none
  int nice = 0;                  // added to the child's niceness when no cpu cgroup is available
};

// How a process ended, as waitpid reports it.
struct ProcessExit {
  pid_t pid = 0;
  bool signaled = false;  // killed by `code` (a signal number), else exited with `code`
  int code = 0;
  bool unknown = false;  // an adopted non-child: it is gone, its status is not known

  bool Success() const { return !unknown && !signaled && code == 0; }
  // "exit 0", "exit 3", "signal 9 (Killed)", "exited (status unknown)".
  std::string Describe() const;
};

// Not thread-safe: used from the agent's io_context thread only.
class Launcher {
 public:
  virtual ~Launcher() = default;

  // Starts a process in a new process group whose id is its pid. Returns the pid.
  // Errors: NotFound if argv[0] is not found on PATH or not executable; Internal for
  // fork/exec failures (the message names the errno); InvalidArgument for an empty argv.
  virtual Result<pid_t> Start(const LaunchSpec& spec) = 0;

  // Sends `signal` to the whole process group `pgid`. OK if the group no longer exists.
  virtual Status SignalGroup(pid_t pgid, int signal) = 0;

  // Starts watching `pid`, a process this launcher did not start (left by a previous agent),
  // identified by its start time (/proc/<pid>/stat field 22) so a reused pid is not mistaken.
  // Its exit is reported by Reap() with unknown = true.
  virtual void Adopt(pid_t pid, uint64_t start_time) = 0;

  // Never blocks. Returns the processes started or adopted here that have ended since the
  // last call (children are reaped: no zombies are left).
  virtual std::vector<ProcessExit> Reap() = 0;
};

}  // namespace hafab::agent
