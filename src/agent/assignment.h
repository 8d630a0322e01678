// Assignment: what the controller wants one instance on this node to be (docs/architecture.md,
// GET /v1/agents/{node}/assignments), parsed from its JSON.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "manifest/model.h"

namespace hafab::agent {

struct Assignment {
  std::string instance;
  std::string role;
  manifest::RoleMode mode = manifest::RoleMode::kLoadBalanced;
  bool run = true;     // false: a standby, kept stopped
  uint64_t epoch = 0;  // the role's fencing token (HAFAB_EPOCH)
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  int port = 0;
  std::string volume;  // "" = no volume here
  std::string spec_hash;
  Duration stop_grace = std::chrono::seconds(5);
  std::optional<manifest::DrainHook> drain;  // run at a graceful stop, before SIGTERM
  manifest::Probes probes;
  manifest::Restart restart;
  manifest::Resources resources;
  // Restarts of a crash loop on the nodes this instance was moved away from: its first start
  // here waits the backoff they earned, and the backoff goes on doubling from there.
  int prior_restarts = 0;
  // The account to run as (manifest user:, group:); "" = the agent's own.
  std::string user;
  std::string group;
  std::string raw_json;  // the assignment as received, kept in pid files for adoption

  // A primary of an active-passive role: the instances self-fencing kills.
  bool IsActivePrimary() const { return run && mode == manifest::RoleMode::kActivePassive; }
};

struct AssignmentList {
  uint64_t generation = 0;
  std::vector<Assignment> assignments;
};

// Parses the assignments answer. Unknown fields are ignored (the protocol only adds fields).
// Errors: InvalidArgument naming the bad field and instance.
Result<AssignmentList> ParseAssignments(const std::string& json);

// Parses one assignment object (as kept in Assignment::raw_json).
Result<Assignment> ParseAssignment(const std::string& json);

}  // namespace hafab::agent
