#include "cli/restart_delay.h"

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace hafab::cli {
namespace {

using namespace std::chrono_literals;

TEST(RestartDelayTest, FirstCrashRestartsAtOnceACrashLoopBacksOff) {
  testing::FakeClock clock;
  RestartDelay d(0ms, 200ms, 1s, 10s);
  d.Started(clock.Now(), false);
  clock.Advance(3s);
  EXPECT_EQ(d.Died(clock.Now()), 0ms);  // ran, then crashed: at once
  d.Started(clock.Now(), true);
  clock.Advance(50ms);
  EXPECT_EQ(d.Died(clock.Now()), 200ms);  // died right after its restart: a loop
  clock.Advance(200ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 400ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 800ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 1s);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 1s);  // capped
}

TEST(RestartDelayTest, AStableRunEndsTheLoop) {
  testing::FakeClock clock;
  RestartDelay d(0ms, 200ms, 1s, 10s);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 200ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 400ms);
  d.Started(clock.Now(), true);
  clock.Advance(10s);
  EXPECT_EQ(d.Died(clock.Now()), 0ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 200ms);  // the backoff starts over
}

TEST(RestartDelayTest, DyingAtItsFirstStartIsNotALoop) {
  testing::FakeClock clock;
  RestartDelay d(0ms, 200ms, 1s, 10s);
  d.Started(clock.Now(), false);
  EXPECT_EQ(d.Died(clock.Now()), 0ms);
}

TEST(RestartDelayTest, AFirstDelayAppliesToEveryRestartOutsideALoop) {
  testing::FakeClock clock;
  RestartDelay d(200ms, 300ms, 1s, 10s);
  d.Started(clock.Now(), false);
  EXPECT_EQ(d.Died(clock.Now()), 200ms);
  d.Started(clock.Now(), true);
  EXPECT_EQ(d.Died(clock.Now()), 300ms);
  d.Started(clock.Now(), true);
  clock.Advance(10s);
  EXPECT_EQ(d.Died(clock.Now()), 200ms);
}

}  // namespace
}  // namespace hafab::cli
