// ReplicaConfig: the configuration the fabric gives a replica of a `mode: replicated` role
// (docs/replication.md), parsed from its JSON (HAFAB_REPLICA_CONFIG, PUT /hafab/v1/replica).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hafab::apps {

enum class ReplicaRole { kPrimary, kSecondary, kBuilding };

// "primary", "secondary", "building".
std::string_view RoleName(ReplicaRole role);

struct ReplicaPeer {
  std::string instance;
  std::string address;  // host:port
  ReplicaRole role = ReplicaRole::kSecondary;
};

struct ReplicaConfig {
  std::string instance;  // this replica
  ReplicaRole role = ReplicaRole::kBuilding;
  uint64_t epoch = 0;
  int quorum = 1;                      // replicas, the primary included, that hold a write
  std::optional<ReplicaPeer> primary;  // absent while there is none
  std::vector<ReplicaPeer> replicas;   // every replica of the configuration

  // The entry of `instance` in `replicas`, nullptr if absent.
  const ReplicaPeer* Find(const std::string& instance) const;
};

// Parses and checks a configuration. Errors: InvalidArgument whose message names the field
// ("epoch: ...", "replicas[2].address: ...") for malformed JSON, a missing or mistyped
// field, an unknown role, a quorum that is not between 1 and the number of voting
// replicas, a primary role without this replica as `primary`, or `instance` not in
// `replicas`.
Result<ReplicaConfig> ParseReplicaConfig(std::string_view json);

}  // namespace hafab::apps
