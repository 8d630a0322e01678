// A replicated role's replicas as the controller reports them (GET /v1/status, `hafab get
// replicas -o json`): each replica's record and what the replica itself says.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/cluster.h"

namespace hafab::e2e {

struct Replica {
  std::string instance;
  std::string node;
  std::string kind;       // what the controller's record says: primary, secondary, building
  std::string says_role;  // what the replica says ("" when it says nothing)
  int64_t says_epoch = -1;
};

struct ReplicaSet {
  int64_t epoch = 0;  // the role's configuration epoch
  std::vector<Replica> replicas;

  const Replica* Find(const std::string& instance) const;
  const Replica* Primary() const;
  // Three voters, one primary, each saying what its record says at the role's epoch.
  bool Settled() const;
  std::string ToString() const;
};

// `role`'s replicas from `{"instances": [...]}` (GET /v1/status or `hafab get replicas`).
ReplicaSet ParseReplicas(const nlohmann::json& j, const std::string& role);
// From the controller's /v1/status (empty if it does not answer).
ReplicaSet Replicas(Cluster& c, const std::string& role);

}  // namespace hafab::e2e
