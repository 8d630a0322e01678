// The controller's durable records (desired state and decisions), their store keys and
// their JSON form. Observed state (heartbeats) is never a record: it lives in memory. The key
// layout, with the keys other files own (leader, availability), is in docs/architecture.md
// ("Controller records").
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "manifest/model.h"
#include "wire/replica.h"
#include "wire/states.h"

namespace hafab::controller {

inline constexpr char kRolesPrefix[] = "/hafab/roles/";
inline constexpr char kInstancesPrefix[] = "/hafab/instances/";
inline constexpr char kNodesPrefix[] = "/hafab/nodes/";
inline constexpr char kGatewaysPrefix[] = "/hafab/gateways/";
inline constexpr char kOpsPrefix[] = "/hafab/ops/";
inline constexpr char kEventsPrefix[] = "/hafab/events/";
inline constexpr char kSeqKey[] = "/hafab/seq";

std::string ModeName(manifest::RoleMode m);  // "active-passive", "load-balanced", "replicated"

// A role as applied, and the role-wide state failover moves.
struct RoleRecord {
  manifest::Role spec;
  int64_t epoch = 1;    // bumped at fencing; the fencing token of the primary
  std::string primary;  // active-passive: the instance that is (or becomes) primary
  bool routed = true;   // active-passive: whether the gateway may route to the primary
  // Rolling upgrades (rollout.h): the revision of `spec`, and while instances may still run
  // the spec before it, that spec and its revision. An instance runs `previous` when its
  // revision is `previous_revision` (and that differs from `revision`), else `spec`.
  int64_t revision = 0;
  std::optional<manifest::Role> previous;
  int64_t previous_revision = 0;

  bool operator==(const RoleRecord&) const = default;
};

// One instance `<role>-<ordinal>` and what its node's agent must do with it.
struct InstanceRecord {
  std::string name;
  std::string role;
  int ordinal = 0;
  std::string node;
  int port = 0;
  bool run = true;      // false: a standby, kept stopped
  bool volume = false;  // the role's volume is assigned to this instance's node
  int64_t epoch = 1;
  int64_t created_ms = 0;  // wall time, for "age"
  int64_t revision = 0;    // the role spec revision it runs (0: the role's current one)
  bool routed = true;      // false: out of rotation (a rollout drains it)
  // A crash loop carried across relocations: the restarts counted on the nodes it left for
  // crashing, the last move at crash_moved_ms (wall time). Within the role's restart window
  // the next node continues the backoff from there instead of from zero.
  int crash_restarts = 0;
  int64_t crash_moved_ms = 0;
  // A replicated role's replica: what it is in the role's configuration (docs/replication.md).
  std::optional<wire::ReplicaRole> replica = std::nullopt;
};

struct NodeRecord {
  std::string name;
  std::string address = "127.0.0.1";
  std::string fault_domain;
  std::string update_domain;
  int capacity = 0;  // 0 = unlimited
  bool drained = false;
  bool down = false;

  bool operator==(const NodeRecord&) const = default;
};

struct GatewayRecord {
  std::string id;
};

// One step of an operation's timeline.
struct StepRecord {
  std::string name;
  int64_t started_ms = 0;    // wall time
  int64_t duration_ms = -1;  // -1 while running
  std::string note;
};

// A failover's part of an operation (planned or not).
struct FailoverOp {
  bool planned = false;
  std::string to;  // planned: the node asked for ("" = any)
  std::string old_primary, old_node;
  // A controller saw old_node silent past its lease plus the fence margin during this
  // operation, and no heartbeat of it has been answered since: a controller that resumes the
  // operation need not wait the margin again (failover_procedure.h).
  bool old_node_fenced = false;
  std::string new_primary, new_node;
  std::string volume;
  int64_t epoch = 0;  // the epoch the new primary serves
};

// A reconfiguration's part (reconfigure_procedure.h): a replicated role's primary moves. The
// failover's fields mean the same (old and new primary, the epoch of the new configuration,
// `to`: the instance a planned one asked for); the volume and old_node_fenced are not used.
struct ReconfigureOp : FailoverOp {
  // The replicas that took the new epoch and where their logs ended then (collect).
  std::map<std::string, wire::Position> positions;
  // Promote even with fewer replicas than every write quorum overlaps (hafab failover
  // --accept-data-loss): acknowledged writes may be lost.
  bool accept_data_loss = false;
};

// A rollout's part of an operation (rollout.h): the revision instances move to (and come
// from), whether this is a rollback, the update domains in order with their state, the wave
// (max_unavailable_domains domains at a time) under way and its instances.
struct RolloutOp {
  int64_t from_revision = 0;
  int64_t to_revision = 0;
  bool rollback = false;
  std::vector<std::string> domains;
  std::map<std::string, wire::DomainState> domain_state;
  int wave = 0;
  int per_wave = 1;  // update.max_unavailable_domains when the rollout started
  std::vector<std::string> wave_instances;
  std::string from_version, to_version;  // the specs' `version`, for people
};

// A journaled operation (op_journal.h): what every kind shares, and its kind's part — a
// failover (planned or not) or a rollout (rollout.h). The kind is the part's.
struct Operation {
  std::string id;
  std::string role;
  std::string reason;
  std::string owner;                              // the controller incarnation driving it
  wire::OpState state = wire::OpState::kRunning;  // a failed failover is followed by a new one
  std::string step;                               // the current step's name
  bool step_begun = false;                        // the current step's start is recorded
  int64_t created_ms = 0;
  int64_t finished_ms = 0;
  std::string error;
  std::vector<StepRecord> steps;
  std::variant<FailoverOp, RolloutOp, ReconfigureOp> part;

  wire::OpKind kind() const {
    if (std::holds_alternative<RolloutOp>(part)) return wire::OpKind::kRollout;
    if (std::holds_alternative<ReconfigureOp>(part)) return wire::OpKind::kReconfigure;
    return wire::OpKind::kFailover;
  }
  // REQUIRES: the operation is of that kind.
  FailoverOp& failover() { return std::get<FailoverOp>(part); }
  const FailoverOp& failover() const { return std::get<FailoverOp>(part); }
  RolloutOp& rollout() { return std::get<RolloutOp>(part); }
  const RolloutOp& rollout() const { return std::get<RolloutOp>(part); }
  ReconfigureOp& reconfigure() { return std::get<ReconfigureOp>(part); }
  const ReconfigureOp& reconfigure() const { return std::get<ReconfigureOp>(part); }
};

struct Event {
  int64_t id = 0;
  int64_t time_ms = 0;  // wall
  std::string type;     // "node-down", "failover-step", ...
  std::string message;
  std::map<std::string, std::string> fields;  // role, node, instance, op
};

nlohmann::json RoleSpecToJson(const manifest::Role& r);
// What an instance's spec hash covers of its role's spec (Controller::BuildAssignments):
// command, args, env, probes, restart, resources, version, and user and group when set; as
// RoleSpecToJson writes them.
nlohmann::json RoleSpecHashedToJson(const manifest::Role& r);
Result<manifest::Role> RoleSpecFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const RoleRecord& r);
nlohmann::json ToJson(const InstanceRecord& r);
nlohmann::json ToJson(const NodeRecord& r);
nlohmann::json ToJson(const Operation& r);
nlohmann::json ToJson(const Event& r);

// Errors: InvalidArgument naming the field that does not fit.
Result<RoleRecord> RoleFromJson(const nlohmann::json& j);
Result<InstanceRecord> InstanceFromJson(const nlohmann::json& j);
Result<NodeRecord> NodeFromJson(const nlohmann::json& j);
Result<Operation> OperationFromJson(const nlohmann::json& j);
Result<Event> EventFromJson(const nlohmann::json& j);

// The key of event `id`: ids sort as keys.
std::string EventKey(int64_t id);
// The id EventKey wrote into `key`; nullopt for a key it did not write.
std::optional<int64_t> EventIdOfKey(std::string_view key);

Duration FromMs(int64_t ms);
// Milliseconds since the Unix epoch of `clock`'s wall time (what records and events carry).
int64_t WallMs(const Clock& clock);

}  // namespace hafab::controller
