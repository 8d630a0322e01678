// ControlLink: the agent's two calls to the controller, the seam between the agent and its
// transport. ControllerClient (controller_client.h) makes them over HTTP; the agent's tests use
// testing::FakeControlLink (src/testing/fake_control_link.h) in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"

namespace hafab::agent {

// Not thread-safe: called on the agent's io_context thread only. Every call runs its `done`
// exactly once, on that thread, after the call has returned (never from within it).
class ControlLink {
 public:
  virtual ~ControlLink() = default;

  // Reports the node (heartbeat.node) and renews its lease. Errors: Unavailable or
  // DeadlineExceeded (no answer within `timeout`: try again), PermissionDenied (the
  // credential was refused), InvalidArgument or Internal (the controller refused the report),
  // Conflict (a keep-alive naming a report the controller does not hold: send the whole one).
  virtual void Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                         std::function<void(Result<wire::HeartbeatAnswer>)> done) = 0;

  // The node's assignments: at once when the controller's generation for the node is greater
  // than `after` (or `wait` is zero), else when it changes or `wait` has passed (a long poll).
  // A long poll whose wait passes with the generation still `after` (> 0) may be answered
  // `unchanged` (wire::AssignmentList::unchanged: no list; keep the one you have).
  // `digest`: wire::ContentDigest of the list of generation `after` (0: none), by which a
  // controller that took over may keep that generation (Controller::AdoptGeneration).
  // Errors as Heartbeat; InvalidArgument when the answer does not parse.
  virtual void FetchAssignments(const std::string& node, uint64_t after, uint64_t digest,
                                Duration wait,
                                std::function<void(Result<wire::AssignmentList>)> done) = 0;

  // The controllers the link talks to, the one in use first, for log lines
  // ("http://10.0.0.2:7070,http://10.0.0.1:7070").
  virtual std::string Describe() const = 0;
};

}  // namespace hafab::agent
