// ProcessLauncher: the real Launcher, on fork/exec.
#pragma once

#include <map>

#include "agent/launcher.h"

namespace hafab::agent {

class ProcessLauncher final : public Launcher {
 public:
  Result<pid_t> Start(const LaunchSpec& spec) override;
  Status SignalGroup(pid_t pgid, int signal) override;
  void Adopt(pid_t pid, uint64_t start_time) override;
  std::vector<ProcessExit> Reap() override;

 private:
  std::map<pid_t, bool> children_;     // started here; value unused
  std::map<pid_t, uint64_t> adopted_;  // pid -> start time
};

// Resolves `file` on `path_var` (colon-separated) like execvp; "" if not found.
std::string FindOnPath(const std::string& file, const std::string& path_var);

// Forks and execs `spec` in a new process group. The caller reaps the pid.
// Errors as Launcher::Start.
Result<pid_t> SpawnProcess(const LaunchSpec& spec);

}  // namespace hafab::agent
