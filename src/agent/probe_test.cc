#include "agent/probe.h"

#include <gtest/gtest.h>

namespace hafab::agent {
namespace {

TEST(ProbeTrackerTest, LivenessNeedsConsecutiveFailures) {
  ProbeTracker t(3, 1);
  EXPECT_EQ(t.liveness(), Liveness::kUnknown);
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.liveness(), Liveness::kOk);
  t.Record(ProbeOutcome::kFailed);
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.liveness(), Liveness::kFailing);
  t.Record(ProbeOutcome::kOk);  // resets the count
  t.Record(ProbeOutcome::kFailed);
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.liveness(), Liveness::kFailing);
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.liveness(), Liveness::kFailed);
}

TEST(ProbeTrackerTest, SuccessThreshold) {
  ProbeTracker t(1, 3);
  t.Record(ProbeOutcome::kOk);
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.readiness(), Readiness::kUnknown);
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.readiness(), Readiness::kReady);
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.readiness(), Readiness::kFailed);
  t.Record(ProbeOutcome::kOk);
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.readiness(), Readiness::kFailed);
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.readiness(), Readiness::kReady);
}

TEST(ProbeTrackerTest, BusyIsNotFailed) {
  ProbeTracker t(2, 1);
  t.Record(ProbeOutcome::kOk);
  for (int i = 0; i < 10; ++i) t.Record(ProbeOutcome::kBusy);
  EXPECT_EQ(t.readiness(), Readiness::kBusy);
  EXPECT_EQ(t.liveness(), Liveness::kOk);  // busy is alive: never a reason to restart
  t.Record(ProbeOutcome::kOk);
  EXPECT_EQ(t.readiness(), Readiness::kReady);
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.readiness(), Readiness::kReady);  // below the failure threshold
  t.Record(ProbeOutcome::kFailed);
  EXPECT_EQ(t.readiness(), Readiness::kFailed);
}

}  // namespace
}  // namespace hafab::agent
