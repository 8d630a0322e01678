// FakeClock: a manual clock for unit tests and the simulator. Time moves only by Advance().
#pragma once

#include <atomic>

#include "core/clock.h"

namespace hafab::testing {

// Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(std::chrono::hours(1000))) : now_(start) {}

  TimePoint Now() const override { return now_.load(); }
  WallTime WallNow() const override {
    return WallTime(std::chrono::duration_cast<WallTime::duration>(now_.load().time_since_epoch() +
                                                                   wall_offset_.load()));
  }
  void Advance(Duration d) { now_.store(now_.load() + d); }
  void Set(TimePoint t) { now_.store(t); }
  // The wall clock alone jumps (NTP, an operator's `date`); the monotonic clock does not.
  void JumpWall(Duration d) { wall_offset_.store(wall_offset_.load() + d); }

 private:
  std::atomic<TimePoint> now_;
  std::atomic<Duration> wall_offset_{};
};

}  // namespace hafab::testing
