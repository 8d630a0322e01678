// NullLauncher: the load generator's Launcher (agent/launcher.h). Its "processes" exist only
// in memory: Start hands out a pid no real process can have (above the kernel's pid_max), a
// SIGTERM or SIGKILL ends one at once, and Reap reports it. The agent's Supervisor, leases and
// heartbeats run as they would, without a fork per instance.
#pragma once

#include <signal.h>

#include <set>
#include <vector>

#include "agent/launcher.h"

namespace hafab::bench {

class NullLauncher final : public agent::Launcher {
 public:
  // Above any pid_max (at most 2^22): /proc never has these.
  static constexpr pid_t kFirstPid = 100'000'000;

  Result<pid_t> Start(const agent::LaunchSpec& spec) override {
    if (spec.argv.empty()) return Status::InvalidArgument("launch: empty argv");
    pid_t pid = next_pid_++;
    alive_.insert(pid);
    ++started_;
    return pid;
  }

  Status SignalGroup(pid_t pgid, int signal) override {
    if ((signal == SIGTERM || signal == SIGKILL) && alive_.erase(pgid) > 0) {
      agent::ProcessExit e;
      e.pid = pgid;
      e.signaled = true;
      e.code = signal;
      exits_.push_back(e);
    }
    return Status::Ok();
  }

  void Adopt(pid_t pid, uint64_t) override { alive_.insert(pid); }

  std::vector<agent::ProcessExit> Reap() override {
    std::vector<agent::ProcessExit> out;
    out.swap(exits_);
    return out;
  }

  size_t running() const { return alive_.size(); }
  int started() const { return started_; }

 private:
  pid_t next_pid_ = kFirstPid;
  std::set<pid_t> alive_;
  std::vector<agent::ProcessExit> exits_;
  int started_ = 0;
};

}  // namespace hafab::bench
