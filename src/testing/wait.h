// Waiting on a condition with a deadline (real time): how tests wait for real processes
// and sockets, never with fixed sleeps.
#pragma once

#include <functional>
#include <thread>

#include "core/clock.h"

namespace hafab::testing {

// Polls `cond` every `poll` until it holds or `timeout` passes; the last answer of `cond`.
inline bool WaitFor(const std::function<bool()>& cond, Duration timeout = std::chrono::seconds(15),
                    Duration poll = std::chrono::milliseconds(5)) {
  const TimePoint deadline = RealClock().Now() + timeout;
  while (RealClock().Now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(poll);
  }
  return cond();
}

}  // namespace hafab::testing
