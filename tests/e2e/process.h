// Helpers for tests that run hafab's daemons as real processes (controller, agents, gateway).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"

namespace hafab::e2e {

// The whole file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// Starts argv[0] (a path) in a process group of its own, stdout and stderr appended to
// `log`, with `env` added to the environment. Killing the group (StopGroup) kills what it
// started too: a node's agent and its instances.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::map<std::string, std::string>& env = {});

// Sends `sig` to the group of `pid`, waits for `pid` to exit (SIGKILL to the group after
// `grace`) and sets `pid` to 0. Nothing if `pid` <= 0.
void StopGroup(pid_t& pid, int sig, Duration grace = std::chrono::seconds(10));

}  // namespace hafab::e2e
