#include "wire/replica.h"

#include "core/json.h"
#include "wire/fields.h"

namespace hafab::wire {

using nlohmann::json;

namespace {

constexpr std::string_view kReplicaRoles[] = {"primary", "secondary", "building"};
constexpr size_t kMaxReplicas = 64;

json ToJson(const ReplicaMember& m) {
  return {{"instance", m.instance}, {"address", m.address}, {"role", ReplicaRoleName(m.role)}};
}

Status ParseMember(const json& j, const std::string& path, ReplicaMember* m) {
  if (!j.is_object()) return Status::InvalidArgument(path + ": must be an object");
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", path, &m->instance));
  HAFAB_RETURN_IF_ERROR(Read(j, "address", path, &m->address));
  HAFAB_RETURN_IF_ERROR(ReadEnum(j, "role", path, &ParseReplicaRole, &ReplicaRoleNames, &m->role));
  if (m->instance.empty()) return Status::InvalidArgument(Where(path, "instance") + ": required");
  return Status::Ok();
}

Status ParsePosition(const json& j, const std::string& path, Position* p) {
  auto it = j.find("position");
  if (it == j.end() || it->is_null()) return Status::Ok();
  const std::string where = Where(path, "position");
  if (!it->is_object()) return Status::InvalidArgument(where + ": must be an object");
  HAFAB_RETURN_IF_ERROR(Read(*it, "epoch", where, &p->epoch, 0));
  HAFAB_RETURN_IF_ERROR(Read(*it, "index", where, &p->index, 0));
  return Status::Ok();
}

}  // namespace

std::string_view ReplicaRoleName(ReplicaRole r) { return kReplicaRoles[static_cast<int>(r)]; }

std::optional<ReplicaRole> ParseReplicaRole(std::string_view name) {
  for (size_t i = 0; i < std::size(kReplicaRoles); ++i) {
    if (kReplicaRoles[i] == name) return static_cast<ReplicaRole>(i);
  }
  return std::nullopt;
}

std::string ReplicaRoleNames() { return "primary, secondary, building"; }

json ToJson(const Position& p) { return {{"epoch", p.epoch}, {"index", p.index}}; }

json ToJson(const ReplicaConfig& c) {
  json replicas = json::array();
  for (const auto& m : c.replicas) replicas.push_back(ToJson(m));
  json j = {{"instance", c.instance},
            {"role", ReplicaRoleName(c.role)},
            {"epoch", c.epoch},
            {"quorum", c.quorum},
            {"replicas", std::move(replicas)}};
  if (c.primary)
    j["primary"] = {{"instance", c.primary->instance}, {"address", c.primary->address}};
  return j;
}

json ToJson(const ReplicaStatus& s) {
  return {{"role", ReplicaRoleName(s.role)},
          {"epoch", s.epoch},
          {"position", ToJson(s.position)},
          {"state", s.state},
          {"primary", s.primary}};
}

Result<ReplicaConfig> ParseReplicaConfig(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("replica configuration: must be an object");
  // No defaults for what decides who acknowledges: a configuration without them is refused.
  for (const char* key : {"instance", "role", "epoch", "quorum"}) {
    if (!j.contains(key) || j[key].is_null())
      return Status::InvalidArgument(std::string(key) + ": required");
  }
  ReplicaConfig c;
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", "", &c.instance));
  HAFAB_RETURN_IF_ERROR(ReadEnum(j, "role", "", &ParseReplicaRole, &ReplicaRoleNames, &c.role));
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", "", &c.epoch, 0));
  int64_t quorum = 1;
  HAFAB_RETURN_IF_ERROR(Read(j, "quorum", "", &quorum, 1, static_cast<int64_t>(kMaxReplicas)));
  c.quorum = static_cast<int>(quorum);
  if (auto it = j.find("primary"); it != j.end() && !it->is_null()) {
    c.primary.emplace();
    c.primary->role = ReplicaRole::kPrimary;
    HAFAB_RETURN_IF_ERROR(ParseMember(*it, "primary", &*c.primary));
  }
  const json* list = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadArray(j, "replicas", "", kMaxReplicas, &list));
  c.replicas.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    HAFAB_RETURN_IF_ERROR(ParseMember((*list)[i], At("replicas", i), &c.replicas[i]));
  }
  return c;
}

Result<ReplicaStatus> ParseReplicaStatus(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("replica status: must be an object");
  ReplicaStatus s;
  HAFAB_RETURN_IF_ERROR(ReadEnum(j, "role", "", &ParseReplicaRole, &ReplicaRoleNames, &s.role));
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", "", &s.epoch, 0));
  HAFAB_RETURN_IF_ERROR(ParsePosition(j, "", &s.position));
  HAFAB_RETURN_IF_ERROR(Read(j, "state", "", &s.state));
  HAFAB_RETURN_IF_ERROR(Read(j, "primary", "", &s.primary));
  return s;
}

std::map<std::string, std::string> ReplicaEnvironment(const ReplicaConfig& c) {
  std::string peers;
  for (const auto& m : c.replicas) {
    if (m.instance == c.instance) continue;
    peers += (peers.empty() ? "" : ",") + m.address;
  }
  return {{"HAFAB_REPLICA_CONFIG", Dump(ToJson(c))},
          {"HAFAB_REPLICA_ROLE", std::string(ReplicaRoleName(c.role))},
          {"HAFAB_REPLICA_EPOCH", std::to_string(c.epoch)},
          {"HAFAB_REPLICA_QUORUM", std::to_string(c.quorum)},
          {"HAFAB_REPLICA_PRIMARY", c.primary ? c.primary->address : ""},
          {"HAFAB_REPLICA_PEERS", peers}};
}

}  // namespace hafab::wire
