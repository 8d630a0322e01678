// ControlPlane: the gateway's side of the controller, apart from the data path. On its own
// io_context thread it long-polls the routing table through its ControlLink (control_link.h;
// over HTTP: `GET /v1/routes?after=V&wait_ms=…`), installs each new table into the Proxy,
// and heartbeats (`POST /v1/gateways/{id}/heartbeat`) with the version every data-path thread
// routes from, which renews the gateway's lease (confirmed fencing). When the controller
// cannot be reached it keeps the last table and retries with backoff (the link tries the
// next controller URL); without a renewal for the lease TTL the Proxy stops routing
// active-passive endpoints by itself.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/control_link.h"
#include "gateway/proxy.h"

namespace hafab::gateway {

struct ControlPlaneOptions {
  std::string gateway_id;
  Duration poll_wait = std::chrono::seconds(5);
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  Duration heartbeat_timeout = std::chrono::seconds(1);
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(2);
  // The lease of a heartbeat whose answer did not parse.
  Duration default_lease_ttl = std::chrono::milliseconds(1500);
  uint64_t seed = 1;       // backoff jitter
  Clock* clock = nullptr;  // nullptr: RealClock()
};

// What the control plane knows, for /stats and tests.
struct ControlPlaneStatus {
  std::string controller;          // in use (ControlLink::Current)
  uint64_t installed_version = 0;  // last table installed
  uint64_t acked_version = 0;      // last routes_version a heartbeat got acknowledged for
  uint64_t poll_failures = 0;      // route polls that failed (unreachable, 5xx, bad table)
  uint64_t heartbeat_failures = 0;
  uint64_t heartbeats_ok = 0;
  bool lease_valid = false;
  std::string last_error;
};

class ControlPlane {
 public:
  // `proxy` outlives this object; `link` works on `io`. REQUIRES: `link` not null.
  ControlPlane(boost::asio::io_context& io, Proxy& proxy, ControlPlaneOptions options,
               std::unique_ptr<ControlLink> link);
  // Calls Stop().
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Starts polling and heartbeating. Call on the io_context's thread (or before it runs).
  void Start();
  // No further requests are sent; replies still in flight are ignored. io_context thread.
  void Stop();
  // Thread-safe.
  ControlPlaneStatus status() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hafab::gateway
