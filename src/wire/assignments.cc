#include "wire/assignments.h"

#include <algorithm>

#include "core/fnv.h"
#include "manifest/limits.h"
#include "wire/fields.h"

namespace hafab::wire {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

json ToJson(const std::optional<manifest::Probe>& p) {
  if (!p) return nullptr;
  return {{"kind", manifest::ProbeKindName(p->kind)},
          {"interval_ms", ToMs(p->interval)},
          {"timeout_ms", ToMs(p->timeout)},
          {"failure_threshold", p->failure_threshold},
          {"success_threshold", p->success_threshold},
          {"failover_after_ms", ToMs(p->failover_after)},
          {"path", p->path},
          {"command", p->command}};
}

}  // namespace

json ToJson(const manifest::Probes& p) {
  return {{"liveness", ToJson(p.liveness)}, {"readiness", ToJson(p.readiness)}};
}

json ToJson(const manifest::Restart& r) {
  return {{"policy", manifest::RestartPolicyName(r.policy)},
          {"max_restarts", r.max_restarts},
          {"window_ms", ToMs(r.window)},
          {"backoff_initial_ms", ToMs(r.backoff_initial)},
          {"backoff_max_ms", ToMs(r.backoff_max)}};
}

json ToJson(const manifest::Resources& r) {
  return {{"cpu", r.cpu}, {"memory_bytes", r.memory_bytes}};
}

json ToJson(const manifest::DrainHook& d) {
  return {{"command", d.command}, {"timeout_ms", ToMs(d.timeout)}};
}

json ToJson(const Assignment& a) {
  json j = {{"instance", a.instance},
            {"role", a.role},
            {"mode", manifest::RoleModeName(a.mode)},
            {"run", a.run},
            {"epoch", a.epoch},
            {"command", a.command},
            {"args", a.args},
            {"env", a.env},
            {"port", a.port},
            {"spec_hash", a.spec_hash},
            {"stop_grace_ms", ToMs(a.stop_grace)},
            {"probes", ToJson(a.probes)},
            {"restart", ToJson(a.restart)},
            {"resources", ToJson(a.resources)}};
  // Optional members are written only when set (the answer's shape, docs/architecture.md).
  if (!a.volume.empty()) j["volume"] = a.volume;
  if (!a.user.empty()) j["user"] = a.user;
  if (!a.group.empty()) j["group"] = a.group;
  if (a.prior_restarts > 0) j["prior_restarts"] = a.prior_restarts;
  if (a.drain) j["drain"] = ToJson(*a.drain);
  if (a.replica) j["replica"] = ToJson(*a.replica);
  if (!a.replica_hook.empty()) j["replica_hook"] = a.replica_hook;
  return j;
}

json ToJson(const AssignmentList& list) {
  if (list.unchanged) return {{"generation", list.generation}, {"unchanged", true}};
  json assignments = json::array();
  for (const Assignment& a : list.assignments) assignments.push_back(ToJson(a));
  json j = {{"generation", list.generation}, {"assignments", std::move(assignments)}};
  if (!list.ring.empty()) {
    j["ring"] = json::array();
    for (const RingPeer& p : list.ring)
      j["ring"].push_back({{"node", p.node}, {"address", p.address}});
  }
  if (!list.ring_key.empty()) j["ring_key"] = list.ring_key;
  return j;
}

namespace {

// Each string with its length first, so that no two contents feed the same bytes.
class ContentHash {
 public:
  ContentHash& Add(std::string_view s) {
    h_.Add(static_cast<uint64_t>(s.size())).Add(s);
    return *this;
  }
  ContentHash& Add(uint64_t v) {
    h_.Add(v);
    return *this;
  }
  ContentHash& Add(const ReplicaMember& m) {
    return Add(m.instance).Add(m.address).Add(static_cast<uint64_t>(m.role));
  }
  // 63 bits: a JSON integer that every reader takes (wire/fields.h reads up to INT64_MAX).
  uint64_t value() const { return std::max<uint64_t>(h_.value() >> 1, 1); }

 private:
  Fnv1a h_;
};

}  // namespace

uint64_t ContentDigest(const AssignmentList& list) {
  ContentHash h;
  h.Add(list.assignments.size());
  for (const Assignment& a : list.assignments) {
    // What spec_hash stands for (command, args, env, port, probes, restart, resources, user,
    // group) goes in as spec_hash: the controller gives a new one when any of them changes.
    h.Add(a.instance).Add(a.role).Add(static_cast<uint64_t>(a.mode)).Add(a.run).Add(a.epoch);
    h.Add(a.spec_hash).Add(a.volume).Add(static_cast<uint64_t>(ToMs(a.stop_grace)));
    h.Add(static_cast<uint64_t>(a.prior_restarts)).Add(a.replica_hook);
    h.Add(a.drain.has_value());
    if (a.drain) {
      h.Add(a.drain->command.size());
      for (const std::string& arg : a.drain->command) h.Add(arg);
      h.Add(static_cast<uint64_t>(ToMs(a.drain->timeout)));
    }
    h.Add(a.replica.has_value());
    if (a.replica) {
      const ReplicaConfig& c = *a.replica;
      h.Add(c.instance).Add(static_cast<uint64_t>(c.role)).Add(static_cast<uint64_t>(c.epoch));
      h.Add(static_cast<uint64_t>(c.quorum)).Add(c.primary.has_value());
      if (c.primary) h.Add(*c.primary);
      h.Add(c.replicas.size());
      for (const ReplicaMember& m : c.replicas) h.Add(m);
    }
  }
  h.Add(list.ring.size());
  for (const RingPeer& p : list.ring) h.Add(p.node).Add(p.address);
  return h.Add(list.ring_key).value();
}

namespace {

// Ten years: more than any grace, window or backoff, and far from overflowing a Duration.
constexpr int64_t kMaxMs = int64_t{10} * 365 * 24 * 3600 * 1000;

Status ReadMs(const json& j, std::string_view key, const std::string& path, Duration* out) {
  int64_t ms = ToMs(*out);
  HAFAB_RETURN_IF_ERROR(Read(j, key, path, &ms, 0, kMaxMs));
  *out = milliseconds(ms);
  return Status::Ok();
}

// The object member `key`: nullptr when absent or null.
Status ReadObject(const json& j, std::string_view key, const std::string& path, const json** out) {
  *out = nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Status::InvalidArgument(Where(path, key) + ": must be an object");
  *out = &*it;
  return Status::Ok();
}

// An enum of the manifest by the name manifest/model.h gives it, for ReadEnum.
template <typename E, E... kValues>
struct Names {
  static std::optional<E> Parse(std::string_view name) {
    for (E v : {kValues...}) {
      if (Name(v) == name) return v;
    }
    return std::nullopt;
  }
  static std::string List() {
    std::string out;
    for (E v : {kValues...}) out += (out.empty() ? "" : ", ") + std::string(Name(v));
    return out;
  }
  static std::string_view Name(manifest::RoleMode m) { return manifest::RoleModeName(m); }
  static std::string_view Name(manifest::ProbeKind k) { return manifest::ProbeKindName(k); }
  static std::string_view Name(manifest::RestartPolicy p) { return manifest::RestartPolicyName(p); }
};
using RoleModes = Names<manifest::RoleMode, manifest::RoleMode::kActivePassive,
                        manifest::RoleMode::kLoadBalanced, manifest::RoleMode::kReplicated>;
using ProbeKinds = Names<manifest::ProbeKind, manifest::ProbeKind::kTcp, manifest::ProbeKind::kHttp,
                         manifest::ProbeKind::kExec>;
using RestartPolicies = Names<manifest::RestartPolicy, manifest::RestartPolicy::kAlways,
                              manifest::RestartPolicy::kOnFailure, manifest::RestartPolicy::kNever>;

Status ParseProbe(const json& probes, const char* key, const std::string& path,
                  std::optional<manifest::Probe>* out) {
  const json* j = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadObject(probes, key, path, &j));
  if (j == nullptr) return Status::Ok();
  const std::string where = Where(path, key);
  manifest::Probe p;
  HAFAB_RETURN_IF_ERROR(
      ReadEnum(*j, "kind", where, &ProbeKinds::Parse, &ProbeKinds::List, &p.kind));
  HAFAB_RETURN_IF_ERROR(Read(*j, "path", where, &p.path));
  HAFAB_RETURN_IF_ERROR(Read(*j, "command", where, &p.command));
  HAFAB_RETURN_IF_ERROR(ReadMs(*j, "interval_ms", where, &p.interval));
  HAFAB_RETURN_IF_ERROR(ReadMs(*j, "timeout_ms", where, &p.timeout));
  HAFAB_RETURN_IF_ERROR(Read(*j, "failure_threshold", where, &p.failure_threshold));
  HAFAB_RETURN_IF_ERROR(Read(*j, "success_threshold", where, &p.success_threshold));
  p.failure_threshold = std::max(1, p.failure_threshold);
  p.success_threshold = std::max(1, p.success_threshold);
  p.failover_after = p.DefaultFailoverAfter();
  HAFAB_RETURN_IF_ERROR(ReadMs(*j, "failover_after_ms", where, &p.failover_after));
  *out = std::move(p);
  return Status::Ok();
}

// Errors name the member from the assignment object down ("probes.liveness.kind: ...").
Status ParseOne(const json& j, Assignment* a) {
  if (!j.is_object()) return Status::InvalidArgument("not a JSON object");
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", "", &a->instance));
  // The name becomes file names (logs, pid files, cgroups): no path tricks.
  if (a->instance.empty() || a->instance == "." || a->instance == ".." ||
      a->instance.find('/') != std::string::npos || a->instance.find('\0') != std::string::npos) {
    return Status::InvalidArgument("instance: must be a plain name, not '" + a->instance + "'");
  }
  HAFAB_RETURN_IF_ERROR(Read(j, "role", "", &a->role));
  HAFAB_RETURN_IF_ERROR(ReadEnum(j, "mode", "", &RoleModes::Parse, &RoleModes::List, &a->mode));
  HAFAB_RETURN_IF_ERROR(Read(j, "run", "", &a->run));
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", "", &a->epoch));
  HAFAB_RETURN_IF_ERROR(Read(j, "command", "", &a->command));
  if (a->command.empty()) return Status::InvalidArgument("command: must not be empty");
  HAFAB_RETURN_IF_ERROR(Read(j, "args", "", &a->args));
  HAFAB_RETURN_IF_ERROR(Read(j, "env", "", &a->env));
  int64_t port = 0;
  HAFAB_RETURN_IF_ERROR(Read(j, "port", "", &port, 0, 65535));
  a->port = static_cast<int>(port);
  HAFAB_RETURN_IF_ERROR(Read(j, "volume", "", &a->volume));
  HAFAB_RETURN_IF_ERROR(Read(j, "spec_hash", "", &a->spec_hash));
  HAFAB_RETURN_IF_ERROR(ReadMs(j, "stop_grace_ms", "", &a->stop_grace));
  HAFAB_RETURN_IF_ERROR(Read(j, "prior_restarts", "", &a->prior_restarts));
  a->prior_restarts = std::max(0, a->prior_restarts);
  HAFAB_RETURN_IF_ERROR(Read(j, "user", "", &a->user));
  HAFAB_RETURN_IF_ERROR(Read(j, "group", "", &a->group));
  HAFAB_RETURN_IF_ERROR(Read(j, "replica_hook", "", &a->replica_hook));
  const json* m = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadObject(j, "replica", "", &m));
  if (m != nullptr) {
    auto c = ParseReplicaConfig(*m);
    if (!c.ok()) return Status::InvalidArgument("replica." + c.status().message());
    a->replica = std::move(*c);
  }
  HAFAB_RETURN_IF_ERROR(ReadObject(j, "drain", "", &m));
  if (m != nullptr) {
    manifest::DrainHook d;
    HAFAB_RETURN_IF_ERROR(Read(*m, "command", "drain", &d.command));
    if (d.command.empty()) return Status::InvalidArgument("drain.command: must not be empty");
    HAFAB_RETURN_IF_ERROR(ReadMs(*m, "timeout_ms", "drain", &d.timeout));
    a->drain = std::move(d);
  }
  HAFAB_RETURN_IF_ERROR(ReadObject(j, "probes", "", &m));
  if (m != nullptr) {
    HAFAB_RETURN_IF_ERROR(ParseProbe(*m, "liveness", "probes", &a->probes.liveness));
    HAFAB_RETURN_IF_ERROR(ParseProbe(*m, "readiness", "probes", &a->probes.readiness));
  }
  HAFAB_RETURN_IF_ERROR(ReadObject(j, "restart", "", &m));
  if (m != nullptr) {
    manifest::Restart& r = a->restart;
    HAFAB_RETURN_IF_ERROR(ReadEnum(*m, "policy", "restart", &RestartPolicies::Parse,
                                   &RestartPolicies::List, &r.policy));
    HAFAB_RETURN_IF_ERROR(Read(*m, "max_restarts", "restart", &r.max_restarts));
    HAFAB_RETURN_IF_ERROR(ReadMs(*m, "window_ms", "restart", &r.window));
    HAFAB_RETURN_IF_ERROR(ReadMs(*m, "backoff_initial_ms", "restart", &r.backoff_initial));
    HAFAB_RETURN_IF_ERROR(ReadMs(*m, "backoff_max_ms", "restart", &r.backoff_max));
  }
  HAFAB_RETURN_IF_ERROR(ReadObject(j, "resources", "", &m));
  if (m != nullptr) {
    HAFAB_RETURN_IF_ERROR(Read(*m, "cpu", "resources", &a->resources.cpu));
    HAFAB_RETURN_IF_ERROR(Read(*m, "memory_bytes", "resources", &a->resources.memory_bytes));
  }
  return Status::Ok();
}

// "assignments[2] (instance kvd-0)": which assignment an error is about.
std::string Which(const std::string& where, const Assignment& a) {
  return a.instance.empty() ? where : where + " (instance " + a.instance + ")";
}

}  // namespace

Result<AssignmentList> ParseAssignments(std::string_view text) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return Status::InvalidArgument("assignments: not a JSON object");
  AssignmentList list;
  HAFAB_RETURN_IF_ERROR(Read(body, "generation", "", &list.generation));
  HAFAB_RETURN_IF_ERROR(Read(body, "unchanged", "", &list.unchanged));
  if (list.unchanged) return list;
  const json* items = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadArray(body, "assignments", "",
                                  static_cast<size_t>(manifest::kMaxTotalInstances), &items));
  list.assignments.resize(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    Assignment& a = list.assignments[i];
    if (Status st = ParseOne((*items)[i], &a); !st.ok()) {
      return Status::InvalidArgument(Which(At("assignments", i), a) + ": " + st.message());
    }
  }
  HAFAB_RETURN_IF_ERROR(ReadArray(body, "ring", "", kMaxRingPeers, &items));
  list.ring.resize(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    const json& p = (*items)[i];
    if (!p.is_object()) return Status::InvalidArgument(At("ring", i) + ": must be an object");
    HAFAB_RETURN_IF_ERROR(Read(p, "node", At("ring", i), &list.ring[i].node));
    HAFAB_RETURN_IF_ERROR(Read(p, "address", At("ring", i), &list.ring[i].address));
  }
  HAFAB_RETURN_IF_ERROR(Read(body, "ring_key", "", &list.ring_key));
  return list;
}

Result<Assignment> ParseAssignment(std::string_view text) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  Assignment a;
  if (Status st = ParseOne(body, &a); !st.ok()) {
    return Status::InvalidArgument(Which("assignment", a) + ": " + st.message());
  }
  return a;
}

}  // namespace hafab::wire
