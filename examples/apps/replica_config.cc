#include "replica_config.h"

#include <nlohmann/json.hpp>

namespace hafab::apps {
namespace {

using nlohmann::json;

Status Bad(const std::string& field, const std::string& why) {
  return Status::InvalidArgument(field + ": " + why);
}

Result<std::string> String(const json& object, const std::string& name, const std::string& at) {
  auto it = object.find(name);
  if (it == object.end()) return Bad(at + name, "missing");
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return Bad(at + name, "must be a non-empty string");
  }
  return it->get<std::string>();
}

Result<ReplicaRole> Role(const json& object, const std::string& at) {
  HAFAB_ASSIGN_OR_RETURN(std::string name, String(object, "role", at));
  for (auto role : {ReplicaRole::kPrimary, ReplicaRole::kSecondary, ReplicaRole::kBuilding}) {
    if (name == RoleName(role)) return role;
  }
  return Bad(at + "role", "must be primary, secondary or building, got \"" + name + "\"");
}

Result<ReplicaPeer> Peer(const json& object, const std::string& at, bool with_role) {
  if (!object.is_object()) return Bad(at.substr(0, at.size() - 1), "must be an object");
  ReplicaPeer peer;
  HAFAB_ASSIGN_OR_RETURN(peer.instance, String(object, "instance", at));
  HAFAB_ASSIGN_OR_RETURN(peer.address, String(object, "address", at));
  if (peer.address.rfind(':') == std::string::npos) {
    return Bad(at + "address", "must be host:port, got \"" + peer.address + "\"");
  }
  if (with_role) {
    HAFAB_ASSIGN_OR_RETURN(peer.role, Role(object, at));
  }
  return peer;
}

}  // namespace

std::string_view RoleName(ReplicaRole role) {
  switch (role) {
    case ReplicaRole::kPrimary:
      return "primary";
    case ReplicaRole::kSecondary:
      return "secondary";
    case ReplicaRole::kBuilding:
      return "building";
  }
  return "?";
}

const ReplicaPeer* ReplicaConfig::Find(const std::string& name) const {
  for (const auto& peer : replicas) {
    if (peer.instance == name) return &peer;
  }
  return nullptr;
}

Result<ReplicaConfig> ParseReplicaConfig(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("configuration", "not valid JSON");
  if (!j.is_object()) return Bad("configuration", "must be a JSON object");
  ReplicaConfig config;
  HAFAB_ASSIGN_OR_RETURN(config.instance, String(j, "instance", ""));
  HAFAB_ASSIGN_OR_RETURN(config.role, Role(j, ""));
  auto epoch = j.find("epoch");
  if (epoch == j.end() || !epoch->is_number_unsigned()) {
    return Bad("epoch", "must be a non-negative integer");
  }
  config.epoch = epoch->get<uint64_t>();
  auto replicas = j.find("replicas");
  if (replicas == j.end() || !replicas->is_array()) return Bad("replicas", "must be an array");
  int voters = 0;
  for (size_t i = 0; i < replicas->size(); ++i) {
    HAFAB_ASSIGN_OR_RETURN(auto peer,
                           Peer((*replicas)[i], "replicas[" + std::to_string(i) + "].", true));
    if (peer.role != ReplicaRole::kBuilding) ++voters;
    config.replicas.push_back(std::move(peer));
  }
  const ReplicaPeer* self = config.Find(config.instance);
  if (self == nullptr) return Bad("replicas", "does not list this replica, " + config.instance);
  auto quorum = j.find("quorum");
  if (quorum == j.end() || !quorum->is_number_unsigned() || quorum->get<uint64_t>() < 1 ||
      quorum->get<uint64_t>() > static_cast<uint64_t>(voters)) {
    return Bad("quorum", "must be an integer from 1 to the " + std::to_string(voters) +
                             " primary and secondary replicas");
  }
  config.quorum = quorum->get<int>();
  auto primary = j.find("primary");
  if (primary != j.end() && !primary->is_null()) {
    HAFAB_ASSIGN_OR_RETURN(config.primary, Peer(*primary, "primary.", false));
    config.primary->role = ReplicaRole::kPrimary;
  }
  if (config.role == ReplicaRole::kPrimary &&
      (!config.primary.has_value() || config.primary->instance != config.instance)) {
    return Bad("primary",
               "must name this replica, " + config.instance + ", when its role is primary");
  }
  if (config.role != ReplicaRole::kPrimary && config.primary.has_value() &&
      config.primary->instance == config.instance) {
    return Bad("primary",
               "names this replica, but its role is " + std::string(RoleName(config.role)));
  }
  return config;
}

}  // namespace hafab::apps
