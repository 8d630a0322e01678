// LeaseTracker: the agent's view of its lease with the controller, for self-fencing.
//
// The lease runs from the moment the agent SENT the heartbeat that the controller answered
// OK, not from when the answer arrived: the controller counts its own lease from when it
// RECEIVED that heartbeat, which is later, so the agent's deadline is never later than the
// controller's (see docs/architecture.md, "Self-fencing").
#pragma once

#include "core/clock.h"

namespace hafab::agent {

// Not thread-safe.
class LeaseTracker {
 public:
  explicit LeaseTracker(Clock& clock) : clock_(clock) {}

  // The heartbeat sent at `sent_at` was answered OK with `ttl`. The deadline never moves
  // back (answers may arrive out of order).
  void Renewed(TimePoint sent_at, Duration ttl) {
    TimePoint d = sent_at + ttl;
    if (!held_ || d > deadline_) deadline_ = d;
    held_ = true;
  }
  // A deadline inherited from the previous agent run (persisted in the data dir).
  void Restore(TimePoint deadline) {
    deadline_ = deadline;
    held_ = true;
  }
  // True once a lease was ever held (renewed or restored).
  bool held() const { return held_; }
  bool Valid() const { return held_ && clock_.Now() < deadline_; }
  // True when a lease was held and has run out: time to fence.
  bool Expired() const { return held_ && clock_.Now() >= deadline_; }
  TimePoint deadline() const { return deadline_; }

 private:
  Clock& clock_;
  bool held_ = false;
  TimePoint deadline_{};
};

}  // namespace hafab::agent
