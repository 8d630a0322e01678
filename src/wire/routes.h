// The routing table (GET /v1/routes, docs/architecture.md): written by the controller, read
// by every gateway, which compiles it into its own RouteTable (gateway/route_table.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hafab::wire {

enum class RoutingMode {
  kActivePassive,  // only the primary of the endpoint's epoch (replicated roles: not yet)
  kLoadBalanced,   // every ready, non-busy backend
};
std::string_view RoutingModeName(RoutingMode m);  // "active-passive", "load-balanced"
std::optional<RoutingMode> ParseRoutingMode(std::string_view name);
std::string RoutingModeNames();

struct RouteBackend {
  std::string instance;
  std::string node;
  std::string address;  // the node's, numeric
  int port = 0;         // 1..65535
  int64_t epoch = 0;
  bool ready = false;
  bool busy = false;
  // Active-passive: a primary handing its connections over (a planned switchover): no new
  // connection goes to it; open ones stay until it closes them.
  bool handing_over = false;

  bool operator==(const RouteBackend&) const = default;
};

struct RouteEndpoint {
  std::string role;
  RoutingMode mode = RoutingMode::kLoadBalanced;
  std::string listen;  // "127.0.0.1:7000"
  // CIDRs (role names resolved by the controller). Absent: every address; empty: none (an
  // allow list whose roles have no node yet).
  std::optional<std::vector<std::string>> allow;
  int64_t epoch = 0;  // active-passive: the epoch whose primary may serve
  std::vector<RouteBackend> backends;
  // The routes version at which this endpoint last changed (0: not said). A gateway keeps
  // what it compiled for an endpoint whose role, listen and revision it already has.
  int64_t revision = 0;

  bool operator==(const RouteEndpoint&) const = default;
};

struct Routes {
  int64_t version = 0;
  std::vector<RouteEndpoint> endpoints;
};

nlohmann::json ToJson(const Routes& routes);
// Errors: InvalidArgument naming the member ("endpoints[0].backends[1].port: must be between
// 1 and 65535"). Addresses and CIDRs are strings here; the gateway checks their syntax.
Result<Routes> ParseRoutes(const nlohmann::json& body);

}  // namespace hafab::wire
