#include "controller/records.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <functional>
#include <stdexcept>

#include "wire/assignments.h"

namespace hafab::controller {

using manifest::ProbeKind;
using manifest::RestartPolicy;
using manifest::RoleMode;
using nlohmann::json;

int64_t WallMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.WallNow().time_since_epoch())
      .count();
}

Duration FromMs(int64_t ms) { return std::chrono::milliseconds(ms); }

std::string ModeName(RoleMode m) { return std::string(manifest::RoleModeName(m)); }

namespace {

RoleMode ModeFromName(const std::string& s) {
  if (s == "active-passive") return RoleMode::kActivePassive;
  if (s == "replicated") return RoleMode::kReplicated;
  return RoleMode::kLoadBalanced;
}

ProbeKind KindFromName(const std::string& s) {
  if (s == "http") return ProbeKind::kHttp;
  if (s == "exec") return ProbeKind::kExec;
  return ProbeKind::kTcp;
}

RestartPolicy PolicyFromName(const std::string& s) {
  if (s == "on-failure") return RestartPolicy::kOnFailure;
  if (s == "never") return RestartPolicy::kNever;
  return RestartPolicy::kAlways;
}

std::optional<manifest::Probe> ProbeFromJson(const json& j) {
  if (j.is_null()) return std::nullopt;
  manifest::Probe p;
  p.kind = KindFromName(j.value("kind", "tcp"));
  p.interval = FromMs(j.value("interval_ms", int64_t{200}));
  p.timeout = FromMs(j.value("timeout_ms", int64_t{100}));
  p.failure_threshold = j.value("failure_threshold", 3);
  p.success_threshold = j.value("success_threshold", 1);
  p.failover_after = FromMs(j.value("failover_after_ms", ToMs(p.DefaultFailoverAfter())));
  p.path = j.value("path", "/");
  p.command = j.value("command", std::vector<std::string>{});
  return p;
}

template <typename T>
Result<T> Guard(const char* what, const std::function<T()>& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(what) + ": " + e.what());
  }
}

// "2026-11-23T10:14:27.483Z"
std::string IsoTime(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the format could print (-Wformat-truncation)
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

json RoleSpecHashedToJson(const manifest::Role& r) {
  json j = {{"command", r.command},
            {"args", r.args},
            {"env", r.env},
            {"probes", wire::ToJson(r.probes)},
            {"restart", wire::ToJson(r.restart)},
            {"resources", wire::ToJson(r.resources)},
            {"version", r.version}};
  if (!r.user.empty()) j["user"] = r.user;
  if (!r.group.empty()) j["group"] = r.group;
  return j;
}

json RoleSpecToJson(const manifest::Role& r) {
  json j = RoleSpecHashedToJson(r);  // an object's keys are written sorted: order is free
  j["name"] = r.name;
  j["mode"] = ModeName(r.mode);
  j["instances"] = r.instances;
  j["port"] = r.port;
  j["volume"] = r.volume;
  j["stop_grace_ms"] = ToMs(r.stop_grace);
  if (r.endpoint) j["endpoint"] = {{"listen", r.endpoint->listen}, {"allow", r.endpoint->allow}};
  if (r.autoscale) {
    j["autoscale"] = {{"min", r.autoscale->min},
                      {"max", r.autoscale->max},
                      {"metric", r.autoscale->metric},
                      {"target", r.autoscale->target}};
  }
  if (r.autoscale) {
    j["autoscale"]["stabilization_ms"] = ToMs(r.autoscale->stabilization);
    j["autoscale"]["cooldown_ms"] = ToMs(r.autoscale->cooldown);
  }
  j["update"] = {{"max_unavailable_domains", r.update.max_unavailable_domains},
                 {"ready_timeout_ms", ToMs(r.update.ready_timeout)}};
  if (r.replication != manifest::Replication{}) {
    j["replication"] = {{"quorum", r.replication.quorum},
                        {"rebuild_after_ms", ToMs(r.replication.rebuild_after)},
                        {"hook", r.replication.hook}};
  }
  if (r.drain) j["drain"] = wire::ToJson(*r.drain);
  return j;
}

Result<manifest::Role> RoleSpecFromJson(const json& j) {
  return Guard<manifest::Role>("role spec", [&] {
    manifest::Role r;
    r.name = j.at("name").get<std::string>();
    r.mode = ModeFromName(j.value("mode", "load-balanced"));
    r.command = j.value("command", "");
    r.args = j.value("args", std::vector<std::string>{});
    r.env = j.value("env", std::map<std::string, std::string>{});
    r.instances = j.value("instances", 1);
    r.port = j.value("port", 0);
    r.volume = j.value("volume", "");
    if (j.contains("probes")) {
      r.probes.liveness = ProbeFromJson(j["probes"].value("liveness", json(nullptr)));
      r.probes.readiness = ProbeFromJson(j["probes"].value("readiness", json(nullptr)));
    }
    if (j.contains("restart")) {
      const json& rs = j["restart"];
      r.restart.policy = PolicyFromName(rs.value("policy", "always"));
      r.restart.max_restarts = rs.value("max_restarts", 3);
      r.restart.window = FromMs(rs.value("window_ms", int64_t{60000}));
      r.restart.backoff_initial = FromMs(rs.value("backoff_initial_ms", int64_t{100}));
      r.restart.backoff_max = FromMs(rs.value("backoff_max_ms", int64_t{10000}));
    }
    if (j.contains("resources")) {
      r.resources.cpu = j["resources"].value("cpu", 0.0);
      r.resources.memory_bytes = j["resources"].value("memory_bytes", uint64_t{0});
    }
    r.stop_grace = FromMs(j.value("stop_grace_ms", int64_t{5000}));
    if (j.contains("drain") && j["drain"].is_object()) {
      manifest::DrainHook d;
      d.command = j["drain"].value("command", std::vector<std::string>{});
      d.timeout = FromMs(j["drain"].value("timeout_ms", ToMs(d.timeout)));
      r.drain = d;
    }
    r.version = j.value("version", "");
    r.user = j.value("user", "");
    r.group = j.value("group", "");
    if (j.contains("endpoint") && j["endpoint"].is_object()) {
      manifest::Endpoint e;
      e.listen = j["endpoint"].value("listen", "");
      e.allow = j["endpoint"].value("allow", std::vector<std::string>{});
      r.endpoint = e;
    }
    if (j.contains("autoscale") && j["autoscale"].is_object()) {
      manifest::Autoscale a;
      a.min = j["autoscale"].value("min", 1);
      a.max = j["autoscale"].value("max", 1);
      a.metric = j["autoscale"].value("metric", "cpu");
      a.target = j["autoscale"].value("target", 70.0);
      a.stabilization = FromMs(j["autoscale"].value("stabilization_ms", int64_t{30000}));
      a.cooldown = FromMs(j["autoscale"].value("cooldown_ms", int64_t{30000}));
      r.autoscale = a;
    }
    if (j.contains("replication")) {
      const json& rj = j["replication"];
      r.replication.quorum = rj.value("quorum", 0);
      r.replication.rebuild_after = FromMs(rj.value("rebuild_after_ms", int64_t{30000}));
      r.replication.hook = rj.value("hook", "");
    }
    if (j.contains("update")) {
      r.update.max_unavailable_domains = j["update"].value("max_unavailable_domains", 1);
      r.update.ready_timeout = FromMs(j["update"].value("ready_timeout_ms", int64_t{30000}));
    }
    return r;
  });
}

json ToJson(const RoleRecord& r) {
  json j = {{"spec", RoleSpecToJson(r.spec)},
            {"epoch", r.epoch},
            {"primary", r.primary},
            {"routed", r.routed},
            {"revision", r.revision}};
  if (r.previous) {
    j["previous"] = RoleSpecToJson(*r.previous);
    j["previous_revision"] = r.previous_revision;
  }
  return j;
}

Result<RoleRecord> RoleFromJson(const json& j) {
  RoleRecord r;
  if (!j.is_object() || !j.contains("spec")) return Status::InvalidArgument("role: no spec");
  HAFAB_ASSIGN_OR_RETURN(r.spec, RoleSpecFromJson(j["spec"]));
  if (j.contains("previous") && j["previous"].is_object()) {
    HAFAB_ASSIGN_OR_RETURN(r.previous, RoleSpecFromJson(j["previous"]));
  }
  return Guard<RoleRecord>("role", [&] {
    r.epoch = j.value("epoch", int64_t{1});
    r.primary = j.value("primary", "");
    r.routed = j.value("routed", true);
    r.revision = j.value("revision", int64_t{0});
    r.previous_revision = j.value("previous_revision", int64_t{0});
    return r;
  });
}

json ToJson(const InstanceRecord& r) {
  json j = {{"name", r.name},
            {"role", r.role},
            {"ordinal", r.ordinal},
            {"node", r.node},
            {"port", r.port},
            {"run", r.run},
            {"volume", r.volume},
            {"epoch", r.epoch},
            {"created_ms", r.created_ms},
            {"revision", r.revision},
            {"routed", r.routed},
            {"crash_restarts", r.crash_restarts},
            {"crash_moved_ms", r.crash_moved_ms}};
  if (r.replica) j["replica"] = wire::ReplicaRoleName(*r.replica);
  return j;
}

Result<InstanceRecord> InstanceFromJson(const json& j) {
  return Guard<InstanceRecord>("instance", [&] {
    InstanceRecord r;
    r.name = j.at("name").get<std::string>();
    r.role = j.at("role").get<std::string>();
    r.ordinal = j.value("ordinal", 0);
    r.node = j.value("node", "");
    r.port = j.value("port", 0);
    r.run = j.value("run", true);
    r.volume = j.value("volume", false);
    r.epoch = j.value("epoch", int64_t{1});
    r.created_ms = j.value("created_ms", int64_t{0});
    r.revision = j.value("revision", int64_t{0});
    r.routed = j.value("routed", true);
    r.crash_restarts = j.value("crash_restarts", 0);
    r.crash_moved_ms = j.value("crash_moved_ms", int64_t{0});
    if (j.contains("replica")) {
      const std::string name = j["replica"].get<std::string>();
      r.replica = wire::ParseReplicaRole(name);
      if (!r.replica) {
        throw std::invalid_argument("replica: '" + name + "' is not one of " +
                                    wire::ReplicaRoleNames());
      }
    }
    return r;
  });
}

json ToJson(const NodeRecord& r) {
  return {{"name", r.name},
          {"address", r.address},
          {"fault_domain", r.fault_domain},
          {"update_domain", r.update_domain},
          {"capacity", r.capacity},
          {"drained", r.drained},
          {"down", r.down}};
}

Result<NodeRecord> NodeFromJson(const json& j) {
  return Guard<NodeRecord>("node", [&] {
    NodeRecord r;
    r.name = j.at("name").get<std::string>();
    r.address = j.value("address", "127.0.0.1");
    r.fault_domain = j.value("fault_domain", "");
    r.update_domain = j.value("update_domain", "");
    r.capacity = j.value("capacity", 0);
    r.drained = j.value("drained", false);
    r.down = j.value("down", false);
    return r;
  });
}

// The member `key` of `j` as one of an enum's names; `dflt` when absent. Throws (for Guard)
// naming the member and the allowed names.
template <typename E>
E EnumOr(const json& j, const char* key, E dflt, std::optional<E> (*parse)(std::string_view),
         std::string (*names)()) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  std::optional<E> e = parse(it->get<std::string>());
  if (!e) {
    throw std::runtime_error(std::string(key) + ": '" + it->get<std::string>() +
                             "' is not one of " + names());
  }
  return *e;
}

json ToJson(const Operation& r) {
  json steps = json::array();
  for (const auto& s : r.steps) {
    // "step", "state" and "detail" repeat name/duration/note for readers (the CLI).
    steps.push_back({{"name", s.name},
                     {"step", s.name},
                     {"state", s.duration_ms < 0 ? "running" : "done"},
                     {"started_ms", s.started_ms},
                     {"duration_ms", s.duration_ms},
                     {"note", s.note},
                     {"detail", s.note}});
  }
  // Every record carries the failover's fields (a rollout's at their defaults), as it always
  // has: readers (the CLI, older controllers) find them.
  const FailoverOp* f = std::get_if<FailoverOp>(&r.part);
  const ReconfigureOp* rc = std::get_if<ReconfigureOp>(&r.part);
  if (rc != nullptr) f = rc;
  const FailoverOp none;
  if (f == nullptr) f = &none;
  json j = {{"id", r.id},
            {"kind", wire::OpKindName(r.kind())},
            {"role", r.role},
            {"reason", r.reason},
            {"planned", f->planned},
            {"to", f->to},
            {"owner", r.owner},
            {"state", wire::OpStateName(r.state)},
            {"step", r.step},
            {"step_begun", r.step_begun},
            {"old_primary", f->old_primary},
            {"old_node", f->old_node},
            {"old_node_fenced", f->old_node_fenced},
            {"new_primary", f->new_primary},
            {"new_node", f->new_node},
            {"volume", f->volume},
            {"epoch", f->epoch},
            {"created_ms", r.created_ms},
            {"finished_ms", r.finished_ms},
            {"error", r.error},
            {"steps", steps}};
  if (rc != nullptr) {
    json positions = json::object();
    for (const auto& [name, p] : rc->positions) positions[name] = wire::ToJson(p);
    j["positions"] = std::move(positions);
    j["accept_data_loss"] = rc->accept_data_loss;
  }
  if (const RolloutOp* ro = std::get_if<RolloutOp>(&r.part)) {
    json domains = json::array();
    for (const auto& d : ro->domains) {
      auto it = ro->domain_state.find(d);
      domains.push_back({{"domain", d},
                         {"state", wire::DomainStateName(it == ro->domain_state.end()
                                                             ? wire::DomainState::kPending
                                                             : it->second)}});
    }
    j["from_revision"] = ro->from_revision;
    j["to_revision"] = ro->to_revision;
    j["rollback"] = ro->rollback;
    j["domains"] = domains;
    j["wave"] = ro->wave;
    j["per_wave"] = ro->per_wave;
    j["wave_instances"] = ro->wave_instances;
    j["from_version"] = ro->from_version;
    j["to_version"] = ro->to_version;
  }
  return j;
}

namespace {

FailoverOp FailoverFromJson(const json& j) {
  FailoverOp f;
  f.planned = j.value("planned", false);
  f.to = j.value("to", "");
  f.old_primary = j.value("old_primary", "");
  f.old_node = j.value("old_node", "");
  f.old_node_fenced = j.value("old_node_fenced", false);
  f.new_primary = j.value("new_primary", "");
  f.new_node = j.value("new_node", "");
  f.volume = j.value("volume", "");
  f.epoch = j.value("epoch", int64_t{0});
  return f;
}

RolloutOp RolloutFromJson(const json& j) {
  RolloutOp r;
  r.from_revision = j.value("from_revision", int64_t{0});
  r.to_revision = j.value("to_revision", int64_t{0});
  r.rollback = j.value("rollback", false);
  for (const auto& d : j.value("domains", json::array())) {
    std::string name = d.value("domain", "");
    r.domains.push_back(name);
    r.domain_state[name] = EnumOr(d, "state", wire::DomainState::kPending, wire::ParseDomainState,
                                  wire::DomainStateNames);
  }
  r.wave = j.value("wave", 0);
  r.per_wave = j.value("per_wave", 1);
  r.wave_instances = j.value("wave_instances", std::vector<std::string>{});
  r.from_version = j.value("from_version", "");
  r.to_version = j.value("to_version", "");
  return r;
}

}  // namespace

Result<Operation> OperationFromJson(const json& j) {
  return Guard<Operation>("operation", [&] {
    Operation r;
    r.id = j.at("id").get<std::string>();
    switch (EnumOr(j, "kind", wire::OpKind::kFailover, wire::ParseOpKind, wire::OpKindNames)) {
      case wire::OpKind::kRollout:
        r.part = RolloutFromJson(j);
        break;
      case wire::OpKind::kReconfigure: {
        ReconfigureOp rc;
        static_cast<FailoverOp&>(rc) = FailoverFromJson(j);
        const json positions = j.value("positions", json::object());
        for (const auto& [name, p] : positions.items()) {
          rc.positions[name] = {p.value("epoch", int64_t{0}), p.value("index", int64_t{0})};
        }
        rc.accept_data_loss = j.value("accept_data_loss", false);
        r.part = std::move(rc);
        break;
      }
      case wire::OpKind::kFailover:
        r.part = FailoverFromJson(j);
        break;
    }
    r.role = j.value("role", "");
    r.reason = j.value("reason", "");
    r.owner = j.value("owner", "");
    r.state = EnumOr(j, "state", wire::OpState::kRunning, wire::ParseOpState, wire::OpStateNames);
    r.step = j.value("step", "");
    r.step_begun = j.value("step_begun", false);
    r.created_ms = j.value("created_ms", int64_t{0});
    r.finished_ms = j.value("finished_ms", int64_t{0});
    r.error = j.value("error", "");
    for (const auto& s : j.value("steps", json::array())) {
      r.steps.push_back({s.value("name", ""), s.value("started_ms", int64_t{0}),
                         s.value("duration_ms", int64_t{-1}), s.value("note", "")});
    }
    return r;
  });
}

json ToJson(const Event& e) {
  json j = {{"id", e.id},           {"seq", e.id},
            {"time_ms", e.time_ms}, {"time", IsoTime(e.time_ms)},
            {"type", e.type},       {"message", e.message}};
  for (const auto& [k, v] : e.fields) j[k] = v;
  return j;
}

Result<Event> EventFromJson(const json& j) {
  return Guard<Event>("event", [&] {
    Event e;
    e.id = j.at("id").get<int64_t>();
    e.time_ms = j.value("time_ms", int64_t{0});
    e.type = j.value("type", "");
    e.message = j.value("message", "");
    for (const auto& [k, v] : j.items()) {
      if (v.is_string() && k != "type" && k != "message" && k != "time") {
        e.fields[k] = v.get<std::string>();
      }
    }
    return e;
  });
}

std::string EventKey(int64_t id) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%020lld", kEventsPrefix, static_cast<long long>(id));
  return buf;
}

std::optional<int64_t> EventIdOfKey(std::string_view key) {
  const std::string_view prefix = kEventsPrefix;
  if (key.size() != prefix.size() + 20 || key.substr(0, prefix.size()) != prefix) return {};
  int64_t id = 0;
  const char* end = key.data() + key.size();
  auto [at, ec] = std::from_chars(key.data() + prefix.size(), end, id);
  if (ec != std::errc() || at != end) return {};
  return id;
}

}  // namespace hafab::controller
