#include "controller/ring.h"

#include <gtest/gtest.h>

#include "controller/ring_arbiter.h"
#include "testing/fake_clock.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;
using Kind = Verdict::Kind;

TEST(RingTest, EachNodeWatchesKOnEachSideAndIsWatchedByThem) {
  Ring ring(2);
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back("n" + std::to_string(i));
  ring.Set(names);
  for (const auto& n : names) {
    auto mine = ring.Neighbours(n);
    ASSERT_EQ(mine.size(), 4u) << n;
    for (const auto& w : mine) {  // symmetric: my neighbours are my watchers
      auto theirs = ring.Neighbours(w);
      EXPECT_NE(std::find(theirs.begin(), theirs.end(), n), theirs.end()) << n << " " << w;
    }
  }
  // The order is a hash's, the same whatever order the members came in.
  Ring again(2);
  std::reverse(names.begin(), names.end());
  again.Set(names);
  EXPECT_EQ(again.members(), ring.members());
  EXPECT_NE(ring.members()[0] + ring.members()[1], "n0n1");
}

TEST(RingTest, ASmallRingWatchesEveryoneOnceAndAStrangerNobody) {
  Ring ring(2);
  ring.Set({"a", "b", "c"});
  auto n = ring.Neighbours("a");
  std::sort(n.begin(), n.end());
  EXPECT_EQ(n, (std::vector<std::string>{"b", "c"}));
  ring.Set({"a"});
  EXPECT_TRUE(ring.Neighbours("a").empty());
  EXPECT_TRUE(ring.Neighbours("x").empty());
}

class RingArbiterTest : public ::testing::Test {
 protected:
  std::vector<Verdict> Tick() {
    return arbiter_.Tick([this](const std::string&) { return live_watchers_; });
  }
  static std::vector<std::pair<Kind, std::string>> Kinds(const std::vector<Verdict>& v) {
    std::vector<std::pair<Kind, std::string>> out;
    for (const auto& x : v) out.emplace_back(x.kind, x.node);
    return out;
  }

  testing::FakeClock clock_;
  RingArbiter arbiter_{clock_, ArbiterOptions{}};
  int live_watchers_ = 4;
};

TEST_F(RingArbiterTest, TwoAccusersAndSilenceThroughTheCheckMakeANodeDown) {
  arbiter_.Report("a", {"x", true});
  EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kCheck, "x"}}));
  clock_.Advance(200ms);
  arbiter_.Report("b", {"x", true});
  EXPECT_TRUE(Tick().empty());  // the check under way covers the second accuser
  clock_.Advance(200ms);
  auto v = Tick();
  ASSERT_EQ(Kinds(v), (std::vector<std::pair<Kind, std::string>>{{Kind::kDown, "x"}}));
  EXPECT_EQ(v[0].why,
            "suspected by its ring neighbours a, b and silent to the controller for 400ms");
  EXPECT_FALSE(arbiter_.Accused("x"));
}

TEST_F(RingArbiterTest, OneAccuserIsNotEnoughUnlessItIsTheOnlyWatcherAlive) {
  arbiter_.Report("a", {"x", true});
  Tick();
  clock_.Advance(500ms);
  EXPECT_TRUE(Tick().empty());  // the lease decides, or a second accuser
  arbiter_.Report("b", {"x", true});
  EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kCheck, "x"}}));
  arbiter_.Report("b", {"x", false});  // b hears it again
  clock_.Advance(500ms);
  EXPECT_TRUE(Tick().empty());
  live_watchers_ = 1;
  clock_.Advance(1s);  // the standing accusation is checked again
  EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kCheck, "x"}}));
  clock_.Advance(400ms);
  EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kDown, "x"}}));
}

TEST_F(RingArbiterTest, ANodeThatAnswersItsCheckIsIsolatedNotDownAndToldOnce) {
  arbiter_.Report("a", {"x", true});
  arbiter_.Report("b", {"x", true});
  Tick();
  clock_.Advance(100ms);
  arbiter_.Heard("x");
  auto v = Tick();
  ASSERT_EQ(Kinds(v), (std::vector<std::pair<Kind, std::string>>{{Kind::kIsolated, "x"}}));
  EXPECT_EQ(v[0].why,
            "suspected by its ring neighbours a, b, yet it answers the controller: cut from its "
            "neighbours, not failed");
  for (int i = 0; i < 5; ++i) {  // checked every second, answering: nothing more is said
    clock_.Advance(1s);
    EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kCheck, "x"}}));
    clock_.Advance(50ms);
    arbiter_.Heard("x");
    EXPECT_TRUE(Tick().empty());
  }
  // Then it dies: the next check is not answered.
  clock_.Advance(1s);
  Tick();
  clock_.Advance(400ms);
  EXPECT_EQ(Kinds(Tick()), (std::vector<std::pair<Kind, std::string>>{{Kind::kDown, "x"}}));
}

TEST_F(RingArbiterTest, AForgottenAccuserNoLongerCounts) {
  arbiter_.Report("a", {"x", true});
  arbiter_.Report("b", {"x", true});
  Tick();
  arbiter_.Forget("b");  // b itself went down
  EXPECT_EQ(arbiter_.AccusersOf("x"), (std::set<std::string>{"a"}));
  clock_.Advance(400ms);
  EXPECT_TRUE(Tick().empty());
  arbiter_.Forget("a");
  EXPECT_FALSE(arbiter_.Accused("x"));
}

}  // namespace
}  // namespace hafab::controller
