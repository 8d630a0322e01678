// The assignments of one node (GET /v1/agents/{node}/assignments, docs/architecture.md): what
// the controller wants each instance on the node to be. The controller builds the structs,
// the agent parses them (and keeps each one in its instance's pid file, for adoption), the
// tests' fakes write them with ToJson.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "manifest/model.h"
#include "wire/replica.h"
#include "wire/ring.h"

namespace hafab::wire {

struct Assignment {
  std::string instance;  // becomes file names (logs, pid files, cgroups): a plain name
  std::string role;
  manifest::RoleMode mode = manifest::RoleMode::kLoadBalanced;
  bool run = true;     // false: a standby, kept stopped
  uint64_t epoch = 0;  // the role's fencing token (HAFAB_EPOCH)
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  int port = 0;
  std::string volume;  // "" = no volume here (detach it)
  // The controller's hash of what a change of restarts the instance (not drain, stop_grace).
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
  // A replicated role's replica: its configuration (docs/replication.md), given at start in
  // the environment and, when it changes, to the running replica without a restart (not in
  // spec_hash); `replica_hook` is the manifest's replication.hook ("" = over HTTP).
  std::optional<ReplicaConfig> replica;
  std::string replica_hook;

  // A primary of an active-passive role: the instances self-fencing kills.
  bool IsActivePrimary() const { return run && mode == manifest::RoleMode::kActivePassive; }

  bool operator==(const Assignment&) const = default;
};

struct AssignmentList {
  uint64_t generation = 0;
  std::vector<Assignment> assignments;
  // The ring neighbours the node watches (failure_detector: ring); empty with the star.
  std::vector<RingPeer> ring;
  // The key the node's ring datagrams are signed with (agent/ring_datagram.h); with `ring`.
  std::string ring_key;
  // The answer to a long poll asked with `brief` whose wait ended with the generation still
  // `after`: no assignments, no ring; the node keeps the list of that generation.
  bool unchanged = false;

  bool operator==(const AssignmentList&) const = default;
};

nlohmann::json ToJson(const Assignment& a);
nlohmann::json ToJson(const AssignmentList& list);
// The list's content without its generation (63 bits, never 0): every member the wire
// carries, but what spec_hash stands for (command, args, env, port, probes, restart,
// resources, user, group) only as spec_hash. The same for the list a controller builds and
// the one its agent parsed. The agent reports the digest of the list it runs
// (AgentHeartbeat::assignments_digest), and a controller that took over keeps that list's
// generation when it would send the same content (Controller::AdoptGeneration). A version
// that computes it otherwise only makes the agent fetch its list again.
uint64_t ContentDigest(const AssignmentList& list);
// The runtime parts of a role an assignment carries. The controller's stored role spec
// (controller/records.cc) writes them the same way, and its spec_hash hashes them.
nlohmann::json ToJson(const manifest::Probes& p);
nlohmann::json ToJson(const manifest::Restart& r);
nlohmann::json ToJson(const manifest::Resources& r);
nlohmann::json ToJson(const manifest::DrainHook& d);

// Parses the answer's text. Unknown members are ignored (the protocol only adds members); absent
// ones take the defaults above. Errors: InvalidArgument for text that is not a JSON object, or
// naming the assignment and the member ("assignments[1] (instance kvd-0): probes.liveness.kind:
// 'udp' is not one of tcp, http, exec"); an instance that is not a plain name, an empty command
// or an empty drain command are refused.
Result<AssignmentList> ParseAssignments(std::string_view body);
// One assignment object's text, as Dump(ToJson(Assignment)) writes it (the agent's pid files).
Result<Assignment> ParseAssignment(std::string_view body);

}  // namespace hafab::wire
