#include "tests/e2e/kv_checker.h"

#include <gtest/gtest.h>

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;

Ack A(int64_t key, const std::string& inst, int64_t epoch, int ms) {
  TimePoint t = TimePoint(1000s) + std::chrono::milliseconds(ms);
  return Ack{key, inst, epoch, t, t};
}

TEST(KvCheckerTest, CleanHandoverIsNoSplitBrain) {
  std::vector<Ack> acks = {A(0, "kvd-0", 1, 0), A(1, "kvd-0", 1, 10), A(2, "kvd-1", 2, 500),
                           A(3, "kvd-1", 2, 510)};
  std::vector<std::string> why;
  EXPECT_EQ(KvChecker::SplitBrain(acks, &why), 0);
}

TEST(KvCheckerTest, OverlappingPrimariesAreSplitBrain) {
  std::vector<Ack> acks = {A(0, "kvd-0", 1, 0), A(1, "kvd-1", 2, 10), A(2, "kvd-0", 2, 20),
                           A(3, "kvd-1", 2, 30)};
  std::vector<std::string> why;
  EXPECT_GT(KvChecker::SplitBrain(acks, &why), 0);
  EXPECT_FALSE(why.empty());
}

TEST(KvCheckerTest, StaleEpochIsSplitBrain) {
  std::vector<Ack> acks = {A(0, "kvd-1", 2, 0), A(1, "kvd-0", 1, 500)};
  std::vector<std::string> why;
  EXPECT_EQ(KvChecker::SplitBrain(acks, &why), 1);
  EXPECT_NE(why[0].find("after epoch 2"), std::string::npos);
}

TEST(KvCheckerTest, DowntimeFromFirstFailureToNextSuccess) {
  std::vector<Ack> acks = {A(0, "a", 1, 0), A(1, "a", 1, 10), A(2, "b", 2, 400)};
  std::vector<TimePoint> failures = {TimePoint(1000s) + 100ms, TimePoint(1000s) + 200ms};
  auto w = KvChecker::DowntimeWindows(acks, failures, 1s);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], 390ms);  // from the last success before the failures to the next success
}

TEST(KvCheckerTest, StallWithoutFailuresCountsAsDowntime) {
  std::vector<Ack> acks = {A(0, "a", 1, 0), A(1, "b", 2, 800)};
  auto w = KvChecker::DowntimeWindows(acks, {}, 200ms);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], 800ms);
}

}  // namespace
}  // namespace hafab::e2e
