// The gateway's heartbeat (POST /v1/gateways/{id}/heartbeat, docs/architecture.md): the
// routes version it runs, which acknowledges it, and the connections it holds per backend.
// Answered with a HeartbeatAnswer (agent_heartbeat.h; assignments_generation unused).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"

namespace hafab::wire {

struct GatewayHeartbeat {
  uint64_t routes_version = 0;  // the routing table it has installed
  // instance -> connections open to it (drain, autoscaling)
  std::map<std::string, uint64_t> active;
};

nlohmann::json ToJson(const GatewayHeartbeat& hb);
// Errors: InvalidArgument naming the member; more backends than a cluster's instances
// (manifest/limits.h) are refused.
Result<GatewayHeartbeat> ParseGatewayHeartbeat(const nlohmann::json& body);

}  // namespace hafab::wire
