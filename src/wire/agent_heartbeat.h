// The agent's heartbeat (POST /v1/agents/{node}/heartbeat, docs/architecture.md) and the
// controller's answer: the one definition that the agent writes, the controller reads and
// the tests' fakes use.
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
#include "wire/replica.h"
#include "wire/ring.h"
#include "wire/states.h"

namespace hafab::wire {

// One instance as its agent reports it.
struct InstanceReport {
  std::string instance;
  std::string role;
  int64_t epoch = 0;  // the assignment's (0: none yet)
  bool run = false;
  InstanceState state = InstanceState::kStopped;
  int64_t pid = 0;
  Liveness liveness = Liveness::kUnknown;
  Readiness readiness = Readiness::kUnknown;
  int restarts = 0;
  std::string last_exit;  // "exit 1", "signal 9 (Killed)", "oom", "liveness failed", ...
  std::string message;    // why it is not running as assigned; "" if it is
  double cpu_percent = 0;
  uint64_t rss_bytes = 0;
  // A replicated role's replica: what it last answered about itself (docs/replication.md).
  std::optional<ReplicaStatus> replica;
};

struct VolumeReport {
  std::string name;
  VolumeState state = VolumeState::kDetached;
  std::string instance;
  std::string error;  // why an attach or detach has not succeeded yet; "" if none
};

// A self-fence (the agent's lease ran out) not yet acknowledged by a controller.
struct FenceReport {
  std::string reason;
  WallTime at;
  std::vector<std::string> killed;  // the instances it killed
};

// A heartbeat is a full report or a keep-alive. A full report carries the node's report (its
// address, versions, labels, assignments_generation and _digest, instances, volumes and
// resource_limits) under an id (`report`) that the agent draws at random at start and increments
// with each full report, so that an id names one content. Once a controller has answered report R
// and nothing in it has changed (cpu_percent by under a point, rss_bytes by under 1 MiB:
// agent/report_tracker.h), the agent sends keep-alives (`same_as` R) without the report: the
// controller holds R, renews the lease and compares nothing. A controller that does not hold R (it
// restarted, took over, or a report overtook it) refuses the keep-alive with Conflict, and the
// agent sends a full report at once. The rest (ring, ring_endpoint, fence) goes with both.
struct AgentHeartbeat {
  std::string node;
  std::string boot_id;
  uint64_t report = 0;   // a full report: its id (0: an agent that does not send keep-alives)
  uint64_t same_as = 0;  // a keep-alive: the id of the report that still holds (0: a full report)

  std::string address;  // the node's address, where its instances listen
  std::string agent_version;
  std::map<std::string, std::string> labels;  // fault_domain, update_domain
  uint64_t assignments_generation = 0;        // the assignments the agent runs
  uint64_t assignments_digest = 0;            // their ContentDigest (0: none applied yet)
  std::vector<InstanceReport> instances;
  std::vector<VolumeReport> volumes;
  std::optional<FenceReport> fence;
  std::string resource_limits;  // "cgroup v2", ...; "" = none
  // failure_detector ring: the neighbours it stopped (or started again) hearing since the last
  // heartbeat the controller answered.
  std::vector<RingReport> ring;
  // failure_detector ring: its UDP endpoint and counters ("ring_endpoint"; absent = none).
  std::optional<RingEndpoint> ring_endpoint;
};

// A keep-alive (same_as != 0) is written without the report's members.
nlohmann::json ToJson(const AgentHeartbeat& hb);
// Errors: InvalidArgument naming the member ("instances[1].state: 'x' is not one of ...");
// more instances than manifest/limits.h allows in a cluster, or volumes than roles, are
// refused; so is a keep-alive that also carries a report ("same_as: ...").
Result<AgentHeartbeat> ParseAgentHeartbeat(const nlohmann::json& body);

struct HeartbeatAnswer {
  Duration lease_ttl = std::chrono::milliseconds(1500);
  uint64_t assignments_generation = 0;  // the controller's latest for this node
  // A gateway's answer: what is left of the lease the controller counts it in for ("lease_ms";
  // less than lease_ttl, 0 for none, while the gateway has not acknowledged routes published up
  // to a lease_ttl ago). Absent: a full lease_ttl.
  std::optional<Duration> lease;
  // failure_detector ring: when the agent's next keep-alive is due ("keepalive_ms"; it grows
  // with the cluster: a node with no active-passive primary reports changes at once and
  // otherwise this rarely). Absent: the agent's own heartbeat interval.
  std::optional<Duration> keepalive;
};

nlohmann::json ToJson(const HeartbeatAnswer& answer);
// Errors: InvalidArgument when `body` is not the answer's JSON.
Result<HeartbeatAnswer> ParseHeartbeatAnswer(std::string_view body);

}  // namespace hafab::wire
