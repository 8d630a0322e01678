#include "controller/availability.h"

#include <gtest/gtest.h>

namespace hafab::controller {
namespace {

TEST(AvailabilityLogTest, FractionOverAWindow) {
  AvailabilityLog log(1000);
  EXPECT_TRUE(log.routable());
  EXPECT_FALSE(log.Record(true, 2000));  // no change
  EXPECT_TRUE(log.Record(false, 5000));
  EXPECT_FALSE(log.routable());
  EXPECT_TRUE(log.Record(true, 5500));
  EXPECT_TRUE(log.Record(false, 9000));
  EXPECT_TRUE(log.Record(true, 9250));
  // Window 10 s at t=11000 covers [1000, 11000): 750 ms out of 10000.
  auto r = log.Over(10000, 11000);
  EXPECT_EQ(r.from_ms, 1000);
  EXPECT_EQ(r.to_ms, 11000);
  EXPECT_EQ(r.unavailable_ms, 750);
  EXPECT_EQ(r.outages, 2);
  EXPECT_DOUBLE_EQ(r.availability(), 0.925);
  // A window starting inside the first outage clips it; one before the log starts is clipped
  // to the log's start.
  r = log.Over(6000, 11000);  // [5000, 11000)
  EXPECT_EQ(r.unavailable_ms, 750);
  r = log.Over(5800, 11000);  // [5200, 11000)
  EXPECT_EQ(r.unavailable_ms, 300 + 250);
  r = log.Over(1000, 11000);  // [10000, 11000): no outage
  EXPECT_EQ(r.unavailable_ms, 0);
  EXPECT_EQ(r.outages, 0);
  EXPECT_DOUBLE_EQ(r.availability(), 1.0);
}

TEST(AvailabilityLogTest, AnOpenOutageCountsUntilNow) {
  AvailabilityLog log(0);
  log.Record(false, 4000);
  auto r = log.Over(10000, 10000);
  EXPECT_EQ(r.unavailable_ms, 6000);
  ASSERT_EQ(r.windows.size(), 1u);
  EXPECT_EQ(r.windows[0], std::make_pair(int64_t{4000}, int64_t{10000}));
  EXPECT_DOUBLE_EQ(r.availability(), 0.4);
}

TEST(AvailabilityLogTest, RoundTripsAndTrims) {
  AvailabilityLog log(100);
  for (int i = 0; i < 5; ++i) {
    log.Record(false, 1000 * (i + 1));
    log.Record(true, 1000 * (i + 1) + 10);
  }
  log.Record(false, 9000);
  auto back = AvailabilityLog::FromJson(log.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToJson(), log.ToJson());
  EXPECT_FALSE(back->routable());
  back->Trim(2);  // keeps the last closed one and the open one
  EXPECT_EQ(back->since_ms(), 4010);
  EXPECT_EQ(back->Over(100000, 10000).unavailable_ms, 10 + 1000);
  EXPECT_FALSE(AvailabilityLog::FromJson({{"since_ms", 1}, {"outages", {{1}}}}).ok());
  EXPECT_FALSE(AvailabilityLog::FromJson(nlohmann::json::object()).ok());
}

}  // namespace
}  // namespace hafab::controller
