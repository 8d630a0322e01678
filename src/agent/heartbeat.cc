#include "agent/heartbeat.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json.h"

namespace hafab::agent {

using nlohmann::json;

std::string BuildHeartbeat(const HeartbeatInput& in) {
  json instances = json::array();
  for (const InstanceReport& r : in.instances) {
    instances.push_back({{"instance", r.instance},
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
                         {"rss_bytes", r.rss_bytes}});
  }
  json volumes = json::array();
  for (const VolumeReport& v : in.volumes) {
    json o{{"name", v.name}, {"state", VolumeStateName(v.state)}, {"instance", v.instance}};
    if (!v.error.empty()) o["error"] = v.error;
    volumes.push_back(std::move(o));
  }
  json j{{"node", in.node},
         {"address", in.address},
         {"agent_version", in.agent_version},
         {"boot_id", in.boot_id},
         {"labels", in.labels},
         {"assignments_generation", in.assignments_generation},
         {"instances", std::move(instances)},
         {"volumes", std::move(volumes)}};
  if (!in.resource_limits.empty()) j["resource_limits"] = in.resource_limits;
  if (in.fence) {
    j["fence"] = {{"reason", in.fence->reason},
                  {"at_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                     in.fence->at.time_since_epoch())
                                     .count()},
                  {"killed", in.fence->killed}};
  }
  return Dump(j);
}

Result<HeartbeatAnswer> ParseHeartbeatAnswer(const std::string& body) {
  try {
    json j = json::parse(body);
    HeartbeatAnswer a;
    if (j.contains("lease_ttl_ms"))
      a.lease_ttl = std::chrono::milliseconds(j["lease_ttl_ms"].get<int64_t>());
    a.assignments_generation = j.value("assignments_generation", uint64_t{0});
    return a;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("heartbeat answer: ") + e.what());
  }
}

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace hafab::agent
