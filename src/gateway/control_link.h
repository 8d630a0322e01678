// ControlLink: the gateway's two calls to the controller, the seam between its control plane
// (control_plane.h) and the transport. HttpControlLink (http_control_link.h) makes them over
// HTTP; the control plane's tests use testing::FakeGatewayLink (src/testing/fake_gateway_link.h)
// in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "wire/agent_heartbeat.h"
#include "wire/gateway_heartbeat.h"
#include "wire/routes.h"

namespace hafab::gateway {

// Not thread-safe: called on the gateway's control io_context thread only. Every call runs its
// `done` exactly once, on that thread, after the call has returned (never from within it).
class ControlLink {
 public:
  virtual ~ControlLink() = default;

  // The routing table: at once when the controller's version is greater than `after`, else
  // when it changes or `wait` has passed (a long poll; the answer then carries the same
  // version). Errors: Unavailable or DeadlineExceeded (not reached, not the leader, or no
  // answer in time: try again), PermissionDenied (the credential was refused), Internal (the
  // controller refused the request), InvalidArgument (the answer is not a routing table).
  // Every message starts with the controller's URL of the request.
  virtual void FetchRoutes(uint64_t after, Duration wait,
                           std::function<void(Result<wire::Routes>)> done) = 0;

  // Reports the routes version the gateway runs (acknowledging it) and its connections, and
  // renews its lease. Errors as FetchRoutes; InvalidArgument means the controller took the
  // heartbeat but its answer did not parse.
  virtual void Heartbeat(const std::string& gateway_id, const wire::GatewayHeartbeat& heartbeat,
                         Duration timeout,
                         std::function<void(Result<wire::HeartbeatAnswer>)> done) = 0;

  // `fn` runs on the io thread when a controller that is not the leader named the leader and
  // the link now talks to it, before the failed call's `done`: a caller backing off between
  // attempts may try again at once. One observer; a later call replaces it.
  virtual void OnLeaderFound(std::function<void()> fn) = 0;

  // The controller the next call goes to, for status and log lines ("http://10.0.0.2:7070").
  virtual std::string Current() const = 0;
};

}  // namespace hafab::gateway
