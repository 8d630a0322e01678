#include "agent/fence_watchdog.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agent/process_tracker.h"
#include "agent/procfs.h"
#include "wire/assignments.h"

namespace hafab::agent {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Alive(pid_t pid, uint64_t start_time) {
  auto st = ReadProcStat(pid);
  return st && st->state != 'Z' && (start_time == 0 || st->start_time == start_time);
}

}  // namespace

WatchdogPass RunWatchdogPass(Clock& clock, const std::string& data_dir) {
  WatchdogPass pass;
  int64_t ns = 0;
  std::istringstream(ReadFile(data_dir + "/run/lease")) >> ns;
  // TEST ONLY (tests/faults proves its checker catches broken fencing): never fence.
  const bool expired = !getenv("HAFAB_TEST_SKIP_SELF_FENCE") &&
                       (ns <= 0 || clock.Now() >= TimePoint(std::chrono::duration_cast<Duration>(
                                                      std::chrono::nanoseconds(ns))));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(data_dir + "/run", ec)) {
    if (entry.path().extension() != ".pid" || entry.path().filename() == kWatchdogPidFile) {
      continue;
    }
    try {
      auto j = nlohmann::json::parse(ReadFile(entry.path().string()));
      pid_t pid = j.at("pid").get<pid_t>();
      uint64_t start = j.at("start_time").get<uint64_t>();
      auto a = wire::ParseAssignment(j.at("assignment").get<std::string>());
      if (!a.ok() || !a->IsActivePrimary() || pid <= 1) continue;
      const bool alive = Alive(pid, start);
      if (!expired) {
        if (alive) ++pass.live_primaries;
        continue;
      }
      // What the primary left outside its group (a daemon) dies too, even if the primary
      // itself is already gone.
      const int strays = KillTracked(j.value("tracker", ""));
      if (!alive && strays == 0) continue;
      spdlog::error(
          "watchdog: lease ran out with no agent renewing it: killing primary {} (pid {}{})",
          a->instance, pid, alive ? "" : ", already gone; its leftover processes");
      if (alive) kill(-pid, SIGKILL);
      ++pass.killed;
    } catch (const std::exception&) {
      // a pid file being rewritten: look again next pass
    }
  }
  return pass;
}

int RunFenceWatchdog(Clock& clock, const std::string& data_dir, pid_t agent_pid,
                     uint64_t agent_start, Duration poll) {
  const pid_t self = getpid();
  spdlog::info("watchdog {}: guarding the primaries of agent {} in {}", self, agent_pid, data_dir);
  while (true) {
    int64_t registered = 0;
    std::istringstream(ReadFile(data_dir + "/run/" + kWatchdogPidFile)) >> registered;
    if (registered != 0 && registered != self) {
      spdlog::info("watchdog {}: replaced by watchdog {}; exiting", self, registered);
      return 0;
    }
    WatchdogPass pass = RunWatchdogPass(clock, data_dir);
    if (!Alive(agent_pid, agent_start) && pass.live_primaries == 0 && pass.killed == 0) {
      spdlog::info("watchdog {}: agent {} is gone and no primary is left; exiting", self,
                   agent_pid);
      return 0;
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace hafab::agent
