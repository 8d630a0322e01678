// FakeLauncher: a Launcher whose "processes" exist only in memory. A test decides when
// they exit (Exit/Kill), and can make them ignore SIGTERM to exercise the grace period.
#pragma once

#include <signal.h>

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "agent/launcher.h"

namespace hafab::testing {

class FakeLauncher final : public agent::Launcher {
 public:
  struct Started {
    pid_t pid;
    agent::LaunchSpec spec;
  };

  Result<pid_t> Start(const agent::LaunchSpec& spec) override {
    if (fail_next_start_) {
      Status st = *fail_next_start_;
      fail_next_start_.reset();
      return st;
    }
    if (spec.argv.empty()) return Status::InvalidArgument("launch: empty argv");
    pid_t pid = next_pid_++;
    started_.push_back({pid, spec});
    alive_.insert(pid);
    return pid;
  }

  Status SignalGroup(pid_t pgid, int signal) override {
    signals_.emplace_back(pgid, signal);
    if (!alive_.count(pgid)) return Status::Ok();
    if (signal == SIGKILL || (signal == SIGTERM && !ignore_sigterm_.count(pgid))) {
      Kill(pgid, signal);
    }
    return Status::Ok();
  }

  void Adopt(pid_t pid, uint64_t start_time) override {
    adopted_[pid] = start_time;
    alive_.insert(pid);
  }

  std::vector<agent::ProcessExit> Reap() override {
    std::vector<agent::ProcessExit> out(exits_.begin(), exits_.end());
    exits_.clear();
    return out;
  }

  // --- test controls ---
  // The process exits with `code` (reported by the next Reap()).
  void Exit(pid_t pid, int code) { End(pid, false, code); }
  // The process dies of `signal`.
  void Kill(pid_t pid, int signal) { End(pid, true, signal); }
  void IgnoreSigterm(pid_t pid) { ignore_sigterm_.insert(pid); }
  void FailNextStart(Status st) { fail_next_start_ = std::move(st); }

  bool Alive(pid_t pid) const { return alive_.count(pid) > 0; }
  // Whether an exit waits for the next Reap() (a real agent would have its SIGCHLD).
  bool ExitPending() const { return !exits_.empty(); }
  size_t LiveCount() const { return alive_.size(); }
  const std::vector<Started>& started() const { return started_; }
  const Started& last_started() const { return started_.back(); }
  const std::vector<std::pair<pid_t, int>>& signals() const { return signals_; }
  int SignalsSentTo(pid_t pid, int signal) const {
    int n = 0;
    for (const auto& [p, s] : signals_) n += (p == pid && s == signal);
    return n;
  }

 private:
  void End(pid_t pid, bool signaled, int code) {
    if (!alive_.erase(pid)) return;
    agent::ProcessExit e;
    e.pid = pid;
    e.signaled = signaled;
    e.code = code;
    e.unknown = adopted_.erase(pid) > 0;
    exits_.push_back(e);
  }

  pid_t next_pid_ = 1000;
  std::vector<Started> started_;
  std::set<pid_t> alive_;
  std::set<pid_t> ignore_sigterm_;
  std::map<pid_t, uint64_t> adopted_;
  std::deque<agent::ProcessExit> exits_;
  std::vector<std::pair<pid_t, int>> signals_;
  std::optional<Status> fail_next_start_;
};

}  // namespace hafab::testing
