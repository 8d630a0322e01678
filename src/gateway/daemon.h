// The `hafab gateway` process: Proxy + (ControlPlane | static routes file) + MetricsServer,
// until SIGTERM/SIGINT, then a graceful drain.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/proxy.h"

namespace hafab::gateway {

struct GatewayOptions {
  std::string id;                        // gateway id, for heartbeats
  std::vector<std::string> controllers;  // base URLs; empty with routes_file
  std::string token_file;                // with controllers
  std::string routes_file;               // static mode: routes JSON, no lease; SIGHUP reloads
  int threads = 0;                       // 0: one per core
  Duration primary_wait = std::chrono::seconds(5);
  Duration idle_timeout = std::chrono::seconds(60);
  Duration drain_timeout = std::chrono::seconds(10);
  // 0: half the open-file limit less 512 (each proxied connection holds two descriptors).
  size_t max_connections = 0;
  std::string metrics_listen = "127.0.0.1:0";
  std::string state_dir;  // if set: gateway.addr holds the bound metrics address
  DataPath data_path = DataPath::kUser;
  bool splice = true;
};

// Runs the gateway until SIGTERM or SIGINT, drains, and returns the process exit code:
// 0 after a clean drain, 1 if it could not start (the reason is logged).
// REQUIRES: called from the main thread before any other thread is started (it blocks
// the signals it waits for in every thread).
int RunGateway(const GatewayOptions& options);

}  // namespace hafab::gateway
