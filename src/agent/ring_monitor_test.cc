#include "agent/ring_monitor.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>

#include "testing/fake_clock.h"

namespace hafab::agent {
namespace {

using namespace std::chrono_literals;
using Kind = wire::RingMessage::Kind;

// Five agents watching each other (everyone is everyone's neighbour), over a network where
// the test drops messages by link or by node.
class RingMonitorTest : public ::testing::Test {
 protected:
  RingMonitorTest() {
    for (const char* n : {"a", "b", "c", "d", "e"}) {
      names_.push_back(n);
      monitors_[n] = std::make_unique<RingMonitor>(
          clock_, n, RingOptions{},
          [this, from = std::string(n)](const std::string& to, const wire::RingMessage& m) {
            ++sent_[std::make_pair(from, m.kind)];
            if (dead_.count(from) || dead_.count(to) || cut_.count({from, to}) ||
                cut_.count({to, from})) {
              return;
            }
            queue_.push_back({to, m});
          });
    }
    for (auto& [name, m] : monitors_) {
      std::vector<std::string> others;
      for (const auto& n : names_) {
        if (n != name) others.push_back(n);
      }
      m->SetNeighbours(others);
    }
  }

  // `d` of simulated time in 10 ms steps; messages arrive within the step they are sent in.
  void Run(Duration d) {
    for (Duration t{}; t < d; t += 10ms) {
      clock_.Advance(10ms);
      for (auto& [name, m] : monitors_) {
        if (!dead_.count(name)) m->Tick();
      }
      while (!queue_.empty()) {
        auto [to, m] = queue_.front();
        queue_.pop_front();
        monitors_[to]->OnMessage(m);
      }
    }
  }

  std::vector<wire::RingReport> Reports(const std::string& node) {
    return monitors_[node]->TakeReports();
  }

  testing::FakeClock clock_;
  std::vector<std::string> names_;
  std::map<std::string, std::unique_ptr<RingMonitor>> monitors_;
  std::deque<std::pair<std::string, wire::RingMessage>> queue_;
  std::set<std::string> dead_;
  std::set<std::pair<std::string, std::string>> cut_;
  std::map<std::pair<std::string, Kind>, int> sent_;
  int Sent(const std::string& from, Kind k) { return sent_[std::make_pair(from, k)]; }
};

TEST_F(RingMonitorTest, NeighboursThatAnswerAreProbedInTurnAndNeverSuspected) {
  Run(2s);
  for (const auto& n : names_) {
    EXPECT_TRUE(Reports(n).empty()) << n;
    // One probe per interval: 20 in 2 s, each answered.
    EXPECT_EQ(Sent(n, Kind::kPing), 20) << n;
    EXPECT_EQ(Sent(n, Kind::kPingReq), 0) << n;
  }
  EXPECT_EQ(Sent("a", Kind::kAck), 20);  // four neighbours probe it, 5 times each
}

TEST_F(RingMonitorTest, ADeadNeighbourIsSuspectedOnceAfterTheIndirectProbesFail) {
  dead_.insert("c");
  Run(90ms);  // a has probed b (ok) and c (direct timeout not yet passed)
  EXPECT_TRUE(Reports("a").empty());
  Run(200ms);
  EXPECT_EQ(Reports("a"), (std::vector<wire::RingReport>{{"c", true}}));
  EXPECT_GE(Sent("a", Kind::kPingReq), 2);  // asked two others to try
  Run(2s);                                  // probed again and again: no second report
  EXPECT_TRUE(Reports("a").empty());
  EXPECT_TRUE(monitors_["a"]->Suspects("c"));
  EXPECT_FALSE(monitors_["a"]->Suspects("b"));
}

TEST_F(RingMonitorTest, ALostDirectLinkIsBridgedByTheIndirectProbes) {
  cut_.insert({"a", "c"});
  Run(3s);
  EXPECT_TRUE(Reports("a").empty());
  EXPECT_TRUE(Reports("c").empty());
  EXPECT_GT(Sent("a", Kind::kPingReq), 0);
  EXPECT_FALSE(monitors_["a"]->Suspects("c"));
}

TEST_F(RingMonitorTest, ASuspectedNeighbourThatAnswersAgainIsReportedBack) {
  dead_.insert("c");
  Run(1s);
  EXPECT_EQ(Reports("a"), (std::vector<wire::RingReport>{{"c", true}}));
  dead_.erase("c");
  Run(1s);
  EXPECT_EQ(Reports("a"), (std::vector<wire::RingReport>{{"c", false}}));
  EXPECT_FALSE(monitors_["a"]->Suspects("c"));
}

TEST_F(RingMonitorTest, OnlyTheLatestWordOnANodeWaitsAndARemovedNeighbourIsForgotten) {
  dead_.insert("c");
  Run(1s);
  dead_.erase("c");
  Run(1s);
  EXPECT_EQ(Reports("a"), (std::vector<wire::RingReport>{{"c", false}}));
  dead_.insert("d");
  Run(1s);
  monitors_["a"]->SetNeighbours({"b", "c", "e"});
  EXPECT_TRUE(Reports("a").empty());  // the ring changed: d is not a's to judge any more
  EXPECT_FALSE(monitors_["a"]->Suspects("d"));
}

}  // namespace
}  // namespace hafab::agent
