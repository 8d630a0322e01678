#include "controller/autoscaler.h"

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;

class AutoscalerTest : public ::testing::Test {
 protected:
  AutoscalerTest() {
    policy_.min = 2;
    policy_.max = 10;
    policy_.target = 50;
    policy_.stabilization = 30s;
    policy_.cooldown = 10s;
  }

  // `per_instance` spread over the current instances (each reports the same value).
  AutoscaleDecision Eval(double per_instance) {
    std::vector<double> samples(static_cast<size_t>(current_), per_instance);
    AutoscaleDecision d = a_.Evaluate("web", policy_, current_, samples, "connections");
    if (d.changed()) {
      current_ = d.desired;
      ++changes_;
    }
    return d;
  }
  // The same total load, whatever the instance count.
  AutoscaleDecision EvalTotal(double total) { return Eval(total / current_); }

  testing::FakeClock clock_;
  Autoscaler a_{clock_};
  AutoscalePolicy policy_;
  int current_ = 2;
  int changes_ = 0;
};

TEST_F(AutoscalerTest, ScalesUpAtOnceUnderLoad) {
  auto d = EvalTotal(260);  // 260 / 50 = 5.2 -> 6
  EXPECT_EQ(d.desired, 6);
  EXPECT_EQ(d.recommendation, 6);
  EXPECT_NE(d.reason.find("connections 130.0 per instance"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("2 -> 6"), std::string::npos) << d.reason;
}

TEST_F(AutoscalerTest, StaysWithinTheToleranceBand) {
  current_ = 4;
  EXPECT_FALSE(Eval(54).changed());  // +8%
  EXPECT_FALSE(Eval(46).changed());  // -8%
  clock_.Advance(60s);
  EXPECT_FALSE(Eval(46).changed());
  EXPECT_EQ(Eval(56).desired, 5);  // +12%: 224 / 50 -> 5
}

TEST_F(AutoscalerTest, ClampsToMinAndMax) {
  EXPECT_EQ(EvalTotal(100000).desired, 10);
  clock_.Advance(60s);
  for (int i = 0; i < 40; ++i) {
    EvalTotal(0);
    clock_.Advance(1s);
  }
  EXPECT_EQ(current_, 2);
  // A count outside the bounds (a manual scale) comes back at once, cooldown or not.
  current_ = 1;
  auto d = Eval(0);
  EXPECT_EQ(d.desired, 2);
  EXPECT_NE(d.reason.find("outside min 2 / max 10"), std::string::npos) << d.reason;
}

TEST_F(AutoscalerTest, NoSamplesNoChange) {
  auto d = a_.Evaluate("web", policy_, 3, {}, "cpu");
  EXPECT_FALSE(d.changed());
  EXPECT_EQ(d.reason, "no instance reports cpu yet");
}

TEST_F(AutoscalerTest, DoesNotScaleDownBeforeWatchingForTheWindow) {
  current_ = 6;  // e.g. a controller restarted while the role ran 6 instances
  for (int i = 0; i < 29; ++i) {
    EXPECT_FALSE(EvalTotal(10).changed()) << i;
    clock_.Advance(1s);
  }
  clock_.Advance(1s);
  EXPECT_EQ(EvalTotal(10).desired, 2);
}

// The stabilisation window: after the load drops, the count stays until the window has
// passed since the last high recommendation, then goes to what the window still allows.
TEST_F(AutoscalerTest, ScalesBackDownOnlyAfterTheWindow) {
  EXPECT_EQ(EvalTotal(400).desired, 8);
  clock_.Advance(1s);
  int down_at_s = -1;
  for (int s = 1; s <= 60; ++s) {
    AutoscaleDecision d = EvalTotal(90);  // 90 / 50 -> 2
    if (d.changed() && down_at_s < 0) down_at_s = s;
    clock_.Advance(1s);
  }
  // Recommendations of 8 stay in the window for 30 s after the last one.
  EXPECT_EQ(down_at_s, 31);
  EXPECT_EQ(current_, 2);
  EXPECT_EQ(changes_, 2);
}

// A noisy signal around the target: per-instance load jumping between -40% and +40% every
// second. Without stabilisation the count would move almost every evaluation; with it, it
// goes up once and stays, and comes down once when the load really drops.
TEST_F(AutoscalerTest, NoFlappingOnANoisySignal) {
  current_ = 4;
  const double base = 4 * 50;  // total load that 4 instances carry at the target
  const double noise[] = {1.4, 0.6, 1.3, 0.7, 0.6, 1.35, 0.65, 1.1, 0.6, 1.4};
  int raw_moves = 0;  // how often the unstabilised recommendation differs from the last one
  int last_rec = current_;
  for (int s = 0; s < 600; ++s) {
    AutoscaleDecision d = EvalTotal(base * noise[s % 10]);
    if (d.recommendation != last_rec) ++raw_moves;
    last_rec = d.recommendation;
    clock_.Advance(1s);
  }
  EXPECT_GT(raw_moves, 300);  // the signal would flap
  EXPECT_EQ(changes_, 1);     // 4 -> 6 on the first +40% and nothing after
  EXPECT_EQ(current_, 6);
  // The load really drops: one step down after the window, and no more.
  for (int s = 0; s < 120; ++s) {
    EvalTotal(base * 0.25 * noise[s % 10]);
    clock_.Advance(1s);
  }
  EXPECT_EQ(changes_, 2);
  EXPECT_EQ(current_, 2);
}

TEST_F(AutoscalerTest, CooldownHoldsTheNextChange) {
  EXPECT_EQ(EvalTotal(160).desired, 4);  // 3.2 -> 4
  clock_.Advance(5s);
  auto d = EvalTotal(400);  // would be 8, but 5 s into a 10 s cooldown
  EXPECT_FALSE(d.changed());
  EXPECT_NE(d.reason.find("cooling down for 5.0s"), std::string::npos) << d.reason;
  clock_.Advance(5s);
  EXPECT_EQ(EvalTotal(400).desired, 8);
  EXPECT_EQ(changes_, 2);
}

TEST_F(AutoscalerTest, ForgetStartsAfresh) {
  current_ = 6;
  EXPECT_FALSE(EvalTotal(10).changed());
  clock_.Advance(40s);
  EvalTotal(10);  // watched for the window since the first call: scales down
  EXPECT_EQ(current_, 2);
  a_.Forget("web");
  current_ = 6;
  EXPECT_FALSE(EvalTotal(10).changed());  // a fresh role must be watched first
}

}  // namespace
}  // namespace hafab::controller
