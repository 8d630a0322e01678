// The replicated-role contract (docs/replication.md): the configuration the fabric gives a
// replica (in HAFAB_REPLICA_CONFIG at start, then `PUT /hafab/v1/replica` or `hook
// configure`) and the status a replica answers (`GET /hafab/v1/replica` or `hook status`),
// which the agent carries in its heartbeat.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/result.h"

namespace hafab::wire {

// What a replica is in a configuration: only primary and secondary replicas vote in the
// quorum; a building one is streamed to and not counted.
enum class ReplicaRole { kPrimary, kSecondary, kBuilding };
std::string_view ReplicaRoleName(ReplicaRole r);  // "primary", "secondary", "building"
std::optional<ReplicaRole> ParseReplicaRole(std::string_view name);
std::string ReplicaRoleNames();

// Where a replica's log ends: the epoch and index of its last durable record. Compared by
// epoch, then index: the most advanced replica is promoted.
struct Position {
  int64_t epoch = 0;
  int64_t index = 0;

  auto operator<=>(const Position&) const = default;
};

struct ReplicaMember {
  std::string instance;
  std::string address;  // host:port
  ReplicaRole role = ReplicaRole::kSecondary;

  bool operator==(const ReplicaMember&) const = default;
};

struct ReplicaConfig {
  std::string instance;  // the replica this configuration is for
  ReplicaRole role = ReplicaRole::kSecondary;
  int64_t epoch = 0;
  int quorum = 1;
  std::optional<ReplicaMember> primary;  // absent while there is none (a reconfiguration)
  std::vector<ReplicaMember> replicas;   // every replica of the configuration, itself included

  bool operator==(const ReplicaConfig&) const = default;
};

struct ReplicaStatus {
  ReplicaRole role = ReplicaRole::kSecondary;  // what it acts as now
  int64_t epoch = 0;                           // under which configuration
  Position position;
  std::string state;    // free text for operators: "streaming", "building 40%"
  std::string primary;  // the instance it follows, as it says; "" for none

  bool operator==(const ReplicaStatus&) const = default;
};

nlohmann::json ToJson(const ReplicaConfig& c);
nlohmann::json ToJson(const ReplicaStatus& s);
nlohmann::json ToJson(const Position& p);
// Errors: InvalidArgument naming the member ("replicas[1].role: 'leader' is not one of
// primary, secondary, building").
Result<ReplicaConfig> ParseReplicaConfig(const nlohmann::json& j);
Result<ReplicaStatus> ParseReplicaStatus(const nlohmann::json& j);

// The environment a replica starts with: HAFAB_REPLICA_CONFIG (the JSON) and, for scripts,
// HAFAB_REPLICA_ROLE, _EPOCH, _QUORUM, _PRIMARY (host:port, "" for none) and _PEERS (the
// other replicas' host:port, comma separated).
std::map<std::string, std::string> ReplicaEnvironment(const ReplicaConfig& c);

}  // namespace hafab::wire
