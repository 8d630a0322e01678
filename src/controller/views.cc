// Read-only views of the controller's state for the API (`GET /v1/status` and friends).
#include "controller/controller.h"

namespace hafab::controller {

using manifest::RoleMode;
using nlohmann::json;

// A replicated role's quorum health: of its voters (primary and secondaries), how many say
// they are at the role's epoch and follow (or are) the primary; writes are acknowledged while
// that is at least the quorum.
json Controller::QuorumJson(const RoleRecord& role) const {
  int voters = 0, following = 0;
  for (const auto& name : FoundOrEmpty(by_role_, role.spec.name)) {
    const InstanceRecord& inst = instances_.at(name);
    if (inst.replica != wire::ReplicaRole::kPrimary &&
        inst.replica != wire::ReplicaRole::kSecondary) {
      continue;
    }
    ++voters;
    const ObservedInstance* o = NodeDown(inst.node) ? nullptr : Observed(inst);
    if (o != nullptr && o->replica && o->replica->epoch == role.epoch &&
        o->replica->role == *inst.replica && !role.primary.empty()) {
      ++following;
    }
  }
  const int quorum = role.spec.replication.QuorumOf(role.spec.instances);
  return {{"quorum", quorum},
          {"voters", voters},
          {"following", following},
          {"writable", following >= quorum}};
}

// A replica as operators see it (hafab get replicas): its place in the configuration, what it
// last said (role, epoch, where its log ends, its state) and how many records it is behind the
// primary's last report.
json Controller::ReplicaJson(const RoleRecord& role, const InstanceRecord& inst,
                             const ObservedInstance* o) const {
  json j = {{"role", wire::ReplicaRoleName(*inst.replica)}, {"epoch", role.epoch}};
  if (o == nullptr || !o->replica) {
    j["says"] = nullptr;
    return j;
  }
  j["says"] = wire::ToJson(*o->replica);
  if (const InstanceRecord* p = Instance(role.primary); p != nullptr) {
    const ObservedInstance* po = NodeDown(p->node) ? nullptr : Observed(*p);
    if (po != nullptr && po->replica) {
      j["lag"] = std::max<int64_t>(0, po->replica->position.index - o->replica->position.index);
    }
  }
  return j;
}

json Controller::RolesJson() const {
  json out = json::array();
  for (const auto& [name, r] : roles_) {
    int placed = 0, ready = 0;
    for (const auto& [iname, inst] : instances_) {
      if (inst.role != name) continue;
      ++placed;
      bool busy;
      if (inst.run && InstanceReady(r, inst, &busy)) ++ready;
    }
    const Operation* op = ActiveOp(name);
    out.push_back({{"name", name},
                   {"mode", ModeName(r.spec.mode)},
                   {"instances", r.spec.instances},
                   {"placed", placed},
                   {"ready", ready},
                   {"epoch", r.epoch},
                   {"primary", r.primary},
                   {"routed", r.routed},
                   {"endpoint", r.spec.endpoint ? r.spec.endpoint->listen : ""},
                   {"volume", r.spec.volume},
                   {"port", r.spec.port},
                   {"version", r.spec.version},
                   {"revision", r.revision},
                   {"autoscale", AutoscaleJson(name)},
                   {"operation", op ? op->id : ""}});
    if (r.spec.mode == RoleMode::kReplicated) out.back()["quorum"] = QuorumJson(r);
  }
  return out;
}

json Controller::NodesJson() const {
  json out = json::array();
  TimePoint now = clock_.Now();
  for (const auto& [name, n] : nodes_) {
    const NodeObservation* obs = Observation(name);
    std::string state = n.down ? "down" : (node_leases_.Live(name) ? "up" : "expiring");
    if (!n.down && obs == nullptr) state = "waiting";  // not heard since this controller started
    auto bn = by_node_.find(name);
    json j = {{"name", name},
              {"node", name},
              {"address", n.address},
              {"fault_domain", n.fault_domain},
              {"update_domain", n.update_domain},
              {"capacity", n.capacity},
              {"state", state},
              {"drained", n.drained},
              {"instances", bn == by_node_.end() ? 0 : bn->second.size()},
              {"agent_version", obs ? obs->agent_version : ""},
              {"assignments_generation", obs ? obs->assignments_generation : 0}};
    j["last_heartbeat_ms_ago"] =
        obs ? json(static_cast<int64_t>(ToMillis(now - obs->last_heartbeat))) : json(nullptr);
    if (obs != nullptr && obs->ring_endpoint) {
      // failure_detector ring: where its probes arrive, what its transport counted, and which
      // neighbours suspect it now.
      const wire::RingEndpoint& e = *obs->ring_endpoint;
      j["ring"] = {{"port", e.port},
                   {"sent", e.sent},
                   {"received", e.received},
                   {"dropped_invalid", e.dropped_invalid},
                   {"suspected_by", arbiter_.AccusersOf(name)}};
    }
    out.push_back(std::move(j));
  }
  return out;
}

json Controller::VolumesJson() const {
  json out = json::array();
  for (const auto& [rname, r] : roles_) {
    if (r.spec.volume.empty()) continue;
    std::string inst_name, node;
    for (const auto& [iname, inst] : instances_) {
      if (inst.role == rname && inst.volume) {
        inst_name = iname;
        node = inst.node;
      }
    }
    json reported = json::array();
    for (const auto& [n, obs] : observed_) {
      auto v = obs.volumes.find(r.spec.volume);
      if (v != obs.volumes.end())
        reported.push_back({{"node", n}, {"state", wire::VolumeStateName(v->second.state)}});
    }
    json j = {{"name", r.spec.volume},
              {"role", rname},
              {"instance", inst_name},
              {"node", node},
              {"reported", reported}};
    if (provider_ != nullptr) {
      auto d = provider_->Describe(r.spec.volume);
      j["attached_to"] = d.ok() ? json(d->node) : json(nullptr);
    }
    out.push_back(std::move(j));
  }
  return out;
}

json Controller::OpsJson() const {
  json out = json::array();
  for (const auto& [id, op] : ops_) out.push_back(ToJson(op));
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a["created_ms"].get<int64_t>() > b["created_ms"].get<int64_t>();
  });
  return out;
}

json Controller::GatewaysJson() const {
  json out = json::array();
  for (const auto& g : gateways_) {
    auto a = gateway_acked_.find(g);
    out.push_back({{"id", g},
                   {"live", gateway_leases_.Live(g)},
                   {"routes_version", a == gateway_acked_.end() ? 0 : a->second}});
  }
  return out;
}

json Controller::StatusJson() const {
  json instances = json::array();
  int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.WallNow().time_since_epoch())
          .count();
  for (const auto& [name, inst] : instances_) {
    auto ri = roles_.find(inst.role);
    if (ri == roles_.end()) continue;
    const RoleRecord& r = ri->second;
    // What a silent node last said is not its state now.
    const ObservedInstance* o = NodeDown(inst.node) ? nullptr : Observed(inst);
    auto ni = nodes_.find(inst.node);
    bool busy = false;
    bool ready = InstanceReady(r, inst, &busy);
    std::string kind = "instance";
    if (r.spec.mode == RoleMode::kActivePassive) kind = name == r.primary ? "primary" : "standby";
    if (inst.replica) kind = wire::ReplicaRoleName(*inst.replica);
    instances.push_back({{"instance", name},
                         {"role", inst.role},
                         {"mode", ModeName(r.spec.mode)},
                         {"kind", kind},
                         {"primary", kind == "primary"},
                         {"node", inst.node},
                         {"fault_domain", ni == nodes_.end() ? "" : ni->second.fault_domain},
                         {"update_domain", ni == nodes_.end() ? "" : ni->second.update_domain},
                         {"port", inst.port},
                         {"run", inst.run},
                         {"volume", inst.volume ? r.spec.volume : ""},
                         {"state", o ? wire::InstanceStateName(o->state) : "unknown"},
                         {"liveness", o ? wire::LivenessName(o->liveness) : "unknown"},
                         {"readiness", o ? wire::ReadinessName(o->readiness) : "unknown"},
                         {"ready", ready},
                         {"busy", busy},
                         {"epoch", inst.epoch},
                         {"routed", inst.routed},
                         {"revision", inst.revision},
                         {"version", SpecFor(r, inst).version},
                         {"restarts", o ? o->restarts : 0},
                         {"pid", o ? o->pid : 0},
                         {"age_s", inst.created_ms > 0 ? (now_ms - inst.created_ms) / 1000 : 0},
                         {"age_ms", inst.created_ms > 0 ? now_ms - inst.created_ms : 0}});
    if (inst.replica) instances.back()["replica"] = ReplicaJson(r, inst, o);
  }
  json ops = OpsJson();
  if (ops.size() > 20) ops.erase(ops.begin() + 20, ops.end());
  return {{"controller", id_},
          {"routes_version", routes_version_},
          {"roles", RolesJson()},
          {"instances", instances},
          {"nodes", NodesJson()},
          {"volumes", VolumesJson()},
          {"operations", ops},
          {"gateways", GatewaysJson()},
          {"last_event", LastEventId()},
          {"store",
           {{"failed_commits", failed_commits_},
            {"last_error", last_commit_error_},
            {"reloading", reload_needed_}}}};
}

}  // namespace hafab::controller
