// Running an io_context until a condition holds, with a deadline (real time): how tests of
// asynchronous components on one thread wait for real sockets and processes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

#include "core/clock.h"

namespace hafab::testing {

// Runs `io` in 5 ms slices until `cond` holds or `timeout` passes; the last answer of `cond`.
inline bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& cond,
                     Duration timeout = std::chrono::seconds(10)) {
  const TimePoint deadline = RealClock().Now() + timeout;
  while (!cond() && RealClock().Now() < deadline) {
    io.run_for(std::chrono::milliseconds(5));
    io.restart();
  }
  return cond();
}

}  // namespace hafab::testing
