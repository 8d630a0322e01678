// Clock: the only source of time. Logic takes a Clock& so tests and the simulator
// can drive it with a FakeClock (src/testing/fake_clock.h).
#pragma once

#include <chrono>
#include <cstdint>

namespace hafab {

using Duration = std::chrono::steady_clock::duration;
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time; never goes backwards. Thread-safe.
  virtual TimePoint Now() const = 0;
  // Wall-clock time, only for records shown to people (event and log timestamps).
  virtual WallTime WallNow() const = 0;
};

// The process-wide real clock (steady_clock / system_clock). Thread-safe.
Clock& RealClock();

// Whole milliseconds (truncated), as the wire and the store write durations.
inline int64_t ToMs(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Milliseconds as a double, for printing durations.
inline double ToMillis(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace hafab
