#include "wire/agent_heartbeat.h"

#include "manifest/limits.h"
#include "wire/fields.h"

namespace hafab::wire {

using nlohmann::json;

json ToJson(const AgentHeartbeat& hb) {
  json j{{"node", hb.node}, {"boot_id", hb.boot_id}};
  if (hb.same_as != 0) {
    j["same_as"] = hb.same_as;
  } else {
    json instances = json::array();
    for (const InstanceReport& r : hb.instances) {
      json o = {{"instance", r.instance},
                {"role", r.role},
                {"epoch", r.epoch},
                {"run", r.run},
                {"state", InstanceStateName(r.state)},
                {"pid", r.pid},
                {"liveness", LivenessName(r.liveness)},
                {"readiness", ReadinessName(r.readiness)},
                {"restarts", r.restarts},
                {"last_exit", r.last_exit},
                {"message", r.message},
                {"cpu_percent", r.cpu_percent},
                {"rss_bytes", r.rss_bytes}};
      if (r.replica) o["replica"] = ToJson(*r.replica);
      instances.push_back(std::move(o));
    }
    json volumes = json::array();
    for (const VolumeReport& v : hb.volumes) {
      json o{{"name", v.name}, {"state", VolumeStateName(v.state)}, {"instance", v.instance}};
      if (!v.error.empty()) o["error"] = v.error;
      volumes.push_back(std::move(o));
    }
    if (hb.report != 0) j["report"] = hb.report;
    j["address"] = hb.address;
    j["agent_version"] = hb.agent_version;
    j["labels"] = hb.labels;
    j["assignments_generation"] = hb.assignments_generation;
    if (hb.assignments_digest != 0) j["assignments_digest"] = hb.assignments_digest;
    j["instances"] = std::move(instances);
    j["volumes"] = std::move(volumes);
    if (!hb.resource_limits.empty()) j["resource_limits"] = hb.resource_limits;
  }
  if (!hb.ring.empty()) {
    j["ring"] = json::array();
    for (const RingReport& r : hb.ring)
      j["ring"].push_back({{"about", r.about}, {"suspect", r.suspect}});
  }
  if (hb.ring_endpoint) {
    const RingEndpoint& e = *hb.ring_endpoint;
    j["ring_endpoint"] = {{"port", e.port},
                          {"sent", e.sent},
                          {"received", e.received},
                          {"dropped_invalid", e.dropped_invalid}};
  }
  if (hb.fence) {
    j["fence"] = {{"reason", hb.fence->reason},
                  {"at_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                     hb.fence->at.time_since_epoch())
                                     .count()},
                  {"killed", hb.fence->killed}};
  }
  return j;
}

namespace {

Status ParseInstance(const json& j, const std::string& path, InstanceReport* r) {
  if (!j.is_object()) return Status::InvalidArgument(path + ": must be an object");
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", path, &r->instance));
  if (r->instance.empty()) return Status::InvalidArgument(path + ".instance: required");
  HAFAB_RETURN_IF_ERROR(Read(j, "role", path, &r->role));
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", path, &r->epoch, 0));
  HAFAB_RETURN_IF_ERROR(Read(j, "run", path, &r->run));
  HAFAB_RETURN_IF_ERROR(
      ReadEnum(j, "state", path, &ParseInstanceState, &InstanceStateNames, &r->state));
  HAFAB_RETURN_IF_ERROR(Read(j, "pid", path, &r->pid, 0));
  HAFAB_RETURN_IF_ERROR(
      ReadEnum(j, "liveness", path, &ParseLiveness, &LivenessNames, &r->liveness));
  HAFAB_RETURN_IF_ERROR(
      ReadEnum(j, "readiness", path, &ParseReadiness, &ReadinessNames, &r->readiness));
  HAFAB_RETURN_IF_ERROR(Read(j, "restarts", path, &r->restarts));
  HAFAB_RETURN_IF_ERROR(Read(j, "last_exit", path, &r->last_exit));
  HAFAB_RETURN_IF_ERROR(Read(j, "message", path, &r->message));
  HAFAB_RETURN_IF_ERROR(Read(j, "cpu_percent", path, &r->cpu_percent));
  HAFAB_RETURN_IF_ERROR(Read(j, "rss_bytes", path, &r->rss_bytes));
  if (auto it = j.find("replica"); it != j.end() && !it->is_null()) {
    auto status = ParseReplicaStatus(*it);
    if (!status.ok())
      return Status::InvalidArgument(path + ".replica." + status.status().message());
    r->replica = std::move(*status);
  }
  return Status::Ok();
}

Status ParseVolume(const json& j, const std::string& path, VolumeReport* v) {
  if (!j.is_object()) return Status::InvalidArgument(path + ": must be an object");
  HAFAB_RETURN_IF_ERROR(Read(j, "name", path, &v->name));
  if (v->name.empty()) return Status::InvalidArgument(path + ".name: required");
  HAFAB_RETURN_IF_ERROR(
      ReadEnum(j, "state", path, &ParseVolumeState, &VolumeStateNames, &v->state));
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", path, &v->instance));
  HAFAB_RETURN_IF_ERROR(Read(j, "error", path, &v->error));
  return Status::Ok();
}

// The members of a full report (a keep-alive carries none of them).
constexpr const char* kReportMembers[] = {"report",
                                          "address",
                                          "agent_version",
                                          "labels",
                                          "assignments_generation",
                                          "assignments_digest",
                                          "instances",
                                          "volumes",
                                          "resource_limits"};

Status ParseReport(const json& body, AgentHeartbeat* hb) {
  HAFAB_RETURN_IF_ERROR(Read(body, "report", "", &hb->report));
  HAFAB_RETURN_IF_ERROR(Read(body, "address", "", &hb->address));
  HAFAB_RETURN_IF_ERROR(Read(body, "agent_version", "", &hb->agent_version));
  HAFAB_RETURN_IF_ERROR(Read(body, "labels", "", &hb->labels));
  HAFAB_RETURN_IF_ERROR(Read(body, "assignments_generation", "", &hb->assignments_generation));
  HAFAB_RETURN_IF_ERROR(Read(body, "assignments_digest", "", &hb->assignments_digest));
  HAFAB_RETURN_IF_ERROR(Read(body, "resource_limits", "", &hb->resource_limits));
  const json* list = nullptr;
  HAFAB_RETURN_IF_ERROR(
      ReadArray(body, "instances", "", static_cast<size_t>(manifest::kMaxTotalInstances), &list));
  hb->instances.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    HAFAB_RETURN_IF_ERROR(ParseInstance((*list)[i], At("instances", i), &hb->instances[i]));
  }
  HAFAB_RETURN_IF_ERROR(
      ReadArray(body, "volumes", "", static_cast<size_t>(manifest::kMaxRoles), &list));
  hb->volumes.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    HAFAB_RETURN_IF_ERROR(ParseVolume((*list)[i], At("volumes", i), &hb->volumes[i]));
  }
  return Status::Ok();
}

}  // namespace

Result<AgentHeartbeat> ParseAgentHeartbeat(const json& body) {
  if (!body.is_object()) return Status::InvalidArgument("body: must be a JSON object");
  AgentHeartbeat hb;
  HAFAB_RETURN_IF_ERROR(Read(body, "node", "", &hb.node));
  HAFAB_RETURN_IF_ERROR(Read(body, "boot_id", "", &hb.boot_id));
  HAFAB_RETURN_IF_ERROR(Read(body, "same_as", "", &hb.same_as));
  if (hb.same_as == 0) {
    HAFAB_RETURN_IF_ERROR(ParseReport(body, &hb));
  } else {
    for (const char* member : kReportMembers) {
      if (body.contains(member)) {
        return Status::InvalidArgument(
            std::string("same_as: a keep-alive carries no report, but '") + member + "' is given");
      }
    }
  }
  const json* list = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadArray(body, "ring", "", kMaxRingPeers, &list));
  hb.ring.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const json& r = (*list)[i];
    if (!r.is_object()) return Status::InvalidArgument(At("ring", i) + ": must be an object");
    HAFAB_RETURN_IF_ERROR(Read(r, "about", At("ring", i), &hb.ring[i].about));
    HAFAB_RETURN_IF_ERROR(Read(r, "suspect", At("ring", i), &hb.ring[i].suspect));
  }
  if (auto e = body.find("ring_endpoint"); e != body.end() && !e->is_null()) {
    if (!e->is_object()) return Status::InvalidArgument("ring_endpoint: must be an object");
    RingEndpoint& out = hb.ring_endpoint.emplace();
    int64_t port = 0;
    HAFAB_RETURN_IF_ERROR(Read(*e, "port", "ring_endpoint", &port, 0, 65535));
    out.port = static_cast<uint16_t>(port);
    HAFAB_RETURN_IF_ERROR(Read(*e, "sent", "ring_endpoint", &out.sent));
    HAFAB_RETURN_IF_ERROR(Read(*e, "received", "ring_endpoint", &out.received));
    HAFAB_RETURN_IF_ERROR(Read(*e, "dropped_invalid", "ring_endpoint", &out.dropped_invalid));
  }
  auto fence = body.find("fence");
  if (fence != body.end() && !fence->is_null()) {
    if (!fence->is_object()) return Status::InvalidArgument("fence: must be an object");
    FenceReport f;
    int64_t at_ms = 0;
    HAFAB_RETURN_IF_ERROR(Read(*fence, "reason", "fence", &f.reason));
    // At most what a WallTime holds (year 2262): a larger one overflows its nanoseconds.
    HAFAB_RETURN_IF_ERROR(Read(
        *fence, "at_unix_ms", "fence", &at_ms, 0,
        std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::max()).count()));
    HAFAB_RETURN_IF_ERROR(Read(*fence, "killed", "fence", &f.killed));
    f.at = WallTime(std::chrono::milliseconds(at_ms));
    hb.fence = std::move(f);
  }
  return hb;
}

json ToJson(const HeartbeatAnswer& answer) {
  json j = {{"lease_ttl_ms",
             std::chrono::duration_cast<std::chrono::milliseconds>(answer.lease_ttl).count()},
            {"assignments_generation", answer.assignments_generation}};
  if (answer.lease) {
    j["lease_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(*answer.lease).count();
  }
  if (answer.keepalive) j["keepalive_ms"] = ToMs(*answer.keepalive);
  return j;
}

Result<HeartbeatAnswer> ParseHeartbeatAnswer(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument("heartbeat answer: not a JSON object");
  HeartbeatAnswer a;
  int64_t ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(a.lease_ttl).count();
  HAFAB_RETURN_IF_ERROR(Read(j, "lease_ttl_ms", "", &ttl_ms, 1,
                             std::chrono::milliseconds(manifest::kMaxLeaseTtl).count()));
  HAFAB_RETURN_IF_ERROR(Read(j, "assignments_generation", "", &a.assignments_generation));
  a.lease_ttl = std::chrono::milliseconds(ttl_ms);
  if (j.contains("lease_ms") && !j["lease_ms"].is_null()) {
    int64_t lease_ms = 0;
    HAFAB_RETURN_IF_ERROR(Read(j, "lease_ms", "", &lease_ms, 0,
                               std::chrono::milliseconds(manifest::kMaxLeaseTtl).count()));
    a.lease = std::chrono::milliseconds(lease_ms);
  }
  if (j.contains("keepalive_ms") && !j["keepalive_ms"].is_null()) {
    int64_t keepalive_ms = 0;
    HAFAB_RETURN_IF_ERROR(Read(j, "keepalive_ms", "", &keepalive_ms, 1,
                               std::chrono::milliseconds(manifest::kMaxLeaseTtl).count()));
    a.keepalive = std::chrono::milliseconds(keepalive_ms);
  }
  return a;
}

}  // namespace hafab::wire
