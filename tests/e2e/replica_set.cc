#include "tests/e2e/replica_set.h"

namespace hafab::e2e {

using nlohmann::json;

const Replica* ReplicaSet::Find(const std::string& instance) const {
  for (const auto& r : replicas) {
    if (r.instance == instance) return &r;
  }
  return nullptr;
}

const Replica* ReplicaSet::Primary() const {
  for (const auto& r : replicas) {
    if (r.kind == "primary") return &r;
  }
  return nullptr;
}

bool ReplicaSet::Settled() const {
  int primaries = 0;
  for (const auto& r : replicas) {
    if (r.kind != r.says_role || r.says_epoch != epoch || r.kind == "building") return false;
    primaries += r.kind == "primary";
  }
  return replicas.size() == 3 && primaries == 1;
}

std::string ReplicaSet::ToString() const {
  std::string s = "epoch " + std::to_string(epoch) + ":";
  for (const auto& r : replicas) {
    s += " " + r.instance + "@" + r.node + " " + r.kind + " (says " +
         (r.says_role.empty() ? "nothing" : r.says_role) + " at " + std::to_string(r.says_epoch) +
         ")";
  }
  return s;
}

ReplicaSet ParseReplicas(const json& j, const std::string& role) {
  ReplicaSet set;
  for (const auto& i : j.value("instances", json::array())) {
    if (i.value("role", "") != role || !i.contains("replica")) continue;
    const json& rep = i["replica"];
    set.epoch = rep.value("epoch", int64_t{0});
    Replica r;
    r.instance = i.value("instance", "");
    r.node = i.value("node", "");
    r.kind = rep.value("role", "");
    if (rep.contains("says") && rep["says"].is_object()) {
      r.says_role = rep["says"].value("role", "");
      r.says_epoch = rep["says"].value("epoch", int64_t{-1});
    }
    set.replicas.push_back(r);
  }
  return set;
}

ReplicaSet Replicas(Cluster& c, const std::string& role) {
  auto st = c.Api("GET", "/v1/status");
  return st.ok() ? ParseReplicas(*st, role) : ReplicaSet{};
}

}  // namespace hafab::e2e
