// Helpers for tests that run hafab's daemons as real processes (controller, agents, gateway).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "testing/wait.h"

namespace hafab::e2e {

// The whole file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// The last `bytes` of every *.log file under `dir` (sorted by path), each after a line
// "--- PATH (tail)": what a failed test prints of a cluster's daemons and instances.
std::string TailLogs(const std::string& dir, size_t bytes = 3000);

// Starts argv[0] (a path) in a process group of its own, stdout and stderr appended to
// `log`, with `env` added to the environment, in directory `cwd` ("" = this one). Killing
// the group (StopGroup) kills what it started too: a node's agent and its instances.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::map<std::string, std::string>& env = {}, const std::string& cwd = "");

// Runs argv[0] (a path) in `cwd` ("" = this one) until it exits; its stdout and stderr in
// *out. The exit code, 128 + the signal if it was killed, -1 if it could not be started.
int RunCapture(const std::vector<std::string>& argv, const std::string& cwd, std::string* out);

// Live (not zombie) processes other than this one whose command line or environment
// contains `text` (a state directory): what a clean stop must not leave behind.
std::vector<pid_t> ProcessesNaming(const std::string& text);

// Sends `sig` to the group of `pid`, waits for `pid` to exit (SIGKILL to the group after
// `grace`) and sets `pid` to 0. Nothing if `pid` <= 0.
void StopGroup(pid_t& pid, int sig, Duration grace = std::chrono::seconds(10));

// Whether a `hafab status` table lists a primary of `role` that is running and ready.
bool StatusShowsReadyPrimary(const std::string& status_table, const std::string& role);

// {instance, node} of `role`'s primary in a controller's /v1/status answer, when exactly
// one instance of the role runs and it is the primary, ready, holding `volume`; else {}.
std::pair<std::string, std::string> SolePrimary(const nlohmann::json& status,
                                                const std::string& role, const std::string& volume);

// Polls `pred` every 20 ms until it holds or `timeout` passes; on a timeout the test fails,
// naming `what`.
inline bool WaitFor(const std::string& what, const std::function<bool()>& pred,
                    Duration timeout = std::chrono::seconds(30)) {
  if (testing::WaitFor(pred, timeout, std::chrono::milliseconds(20))) return true;
  ADD_FAILURE() << "timed out waiting for " << what;
  return false;
}

}  // namespace hafab::e2e
