// The simulator on small clusters: a faulty run keeps every invariant, a seed replays the same
// trace, and each deliberately broken safety rule is caught.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <random>

#include "sim/event_queue.h"
#include "sim/sim_node.h"
#include "sim/simulation.h"
#include "testing/fake_clock.h"
#include "testing/temp_dir.h"

namespace hafab::sim {
namespace {

using std::chrono::seconds;

SimOptions Small(uint64_t seed) {
  spdlog::set_level(spdlog::level::off);  // the trace says what matters
  SimOptions o;
  o.seed = seed;
  o.nodes = 12;
  o.duration = seconds(60);
  o.settle = seconds(20);
  o.fault_interval = seconds(3);
  o.clients = 4;
  return o;
}

std::string Describe(const SimResult& r) {
  std::string s = "violations:";
  for (const auto& v : r.violations) s += "\n  " + v;
  s += "\ntrace:";
  for (const auto& l : r.trace_tail) s += "\n  " + l;
  return s;
}

// The calendar runs events in the order one heap would: by time, then by order of scheduling,
// across buckets, beyond the buckets' reach, and for events an event schedules.
TEST(EventQueueTest, RunsByTimeThenOrderOfSchedulingAsOneHeapWould) {
  testing::FakeClock clock;
  EventQueue q(clock);
  std::mt19937_64 random(7);
  std::vector<std::pair<TimePoint, int>> expected;  // (time, number) in scheduling order
  std::vector<int> ran;
  int next = 0;
  auto schedule = [&](Duration after) {
    const int n = next++;
    expected.emplace_back(clock.Now() + after, n);
    q.After(after, [&ran, n] { ran.push_back(n); });
  };
  for (int i = 0; i < 2000; ++i) {
    // Mostly within a few ms (many share an instant), some minutes ahead (past the buckets).
    const int64_t us = random() % 10 == 0 ? static_cast<int64_t>(random() % 300'000'000)
                                          : static_cast<int64_t>(random() % 5) * 500;
    schedule(std::chrono::microseconds(us));
  }
  // Events that schedule others, now and later: run in order with the rest.
  q.After(std::chrono::milliseconds(3), [&] {
    schedule(Duration::zero());
    schedule(std::chrono::microseconds(700));
    schedule(std::chrono::seconds(100));
  });
  expected.emplace_back(clock.Now() + std::chrono::milliseconds(3), -1);
  const TimePoint end = clock.Now() + std::chrono::minutes(10);
  while (q.RunNext(end)) {
  }
  EXPECT_EQ(q.pending(), 0u);
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<int> want;
  for (const auto& [t, n] : expected) {
    if (n >= 0) want.push_back(n);
  }
  EXPECT_EQ(ran, want);
  EXPECT_EQ(q.executed(), want.size() + 1);
}

TEST(EventQueueTest, AnEventLaterThanTheLimitWaitsAndOnesAddedBeforeItRunFirst) {
  testing::FakeClock clock;
  EventQueue q(clock);
  std::vector<int> ran;
  q.After(std::chrono::seconds(90), [&] { ran.push_back(2); });
  EXPECT_FALSE(q.RunNext(clock.Now() + std::chrono::seconds(1)));
  q.After(std::chrono::seconds(2), [&] { ran.push_back(1); });  // earlier than the one looked at
  q.After(std::chrono::seconds(90), [&] { ran.push_back(3); });
  while (q.RunNext(clock.Now() + std::chrono::minutes(5))) {
  }
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
}

TEST(SimTest, FaultyRunKeepsEveryInvariant) {
  for (uint64_t seed : {1, 2, 3}) {
    SimResult r = RunSimulation(Small(seed));
    EXPECT_EQ(r.violation_count, 0) << "seed " << seed << "\n" << Describe(r);
    EXPECT_GT(r.faults, 5);
    EXPECT_GT(r.writes_acked, 100u);
    EXPECT_GT(r.reads_checked, 100u);
  }
}

// The CI share of the long run in bench/RESULTS.md (1000 seeds of this cluster).
TEST(SimTest, FiftyNodeSeedsKeepEveryInvariant) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SimOptions o = Small(seed);
    o.nodes = 50;
    o.clients = 20;
    SimResult r = RunSimulation(o);
    EXPECT_EQ(r.violation_count, 0) << "seed " << seed << "\n" << Describe(r);
    EXPECT_GT(r.writes_acked, 1000u);
  }
}

TEST(SimTest, NodeCrashesAreDetectedAndFailedOver) {
  SimOptions o = Small(4);
  o.faults = {FaultKind::kNodeCrash};
  SimResult r = RunSimulation(o);
  EXPECT_EQ(r.violation_count, 0) << Describe(r);
  ASSERT_GT(r.detection_ms.n, 3u);
  ASSERT_GT(r.failover_ms.n, 0u);
  // A silent node is declared down one lease (1 s) after its last heartbeat.
  EXPECT_GE(r.detection_ms.p50, 800);
  EXPECT_LE(r.detection_ms.p99, 1500);
  EXPECT_LE(r.failover_ms.p99, 5000);
  EXPECT_EQ(r.false_failovers, 0);
}

// Ring detection (docs/architecture.md): crashed and isolated nodes are found sooner than the
// star's lease, with 1 % loss and nodes that pause for up to two probe intervals, and nothing
// is failed over that a fault does not explain. The same run keeps every invariant with the
// whole fault mix.
TEST(SimTest, TheRingDetectsSoonerWithoutFalseFailovers) {
  for (uint64_t seed : {1, 2}) {
    SimOptions o = Small(seed);
    o.nodes = 50;
    o.ring = true;
    o.loss = 0.01;
    o.faults = {FaultKind::kNodeCrash, FaultKind::kIsolation, FaultKind::kSlowNode};
    SimResult r = RunSimulation(o);
    EXPECT_EQ(r.violation_count, 0) << "seed " << seed << "\n" << Describe(r);
    ASSERT_GT(r.detection_ms.n, 3u) << "seed " << seed;
    EXPECT_LE(r.detection_ms.p99, 900) << "seed " << seed;  // the star: ~1000
    EXPECT_EQ(r.false_failovers, 0) << "seed " << seed << "\n" << Describe(r);
    EXPECT_EQ(r.false_downs, 0) << "seed " << seed << "\n" << Describe(r);
  }
  SimOptions all = Small(3);
  all.ring = true;
  all.faults.insert(FaultKind::kSlowNode);
  SimResult r = RunSimulation(all);
  EXPECT_EQ(r.violation_count, 0) << Describe(r);
}

TEST(SimTest, SameSeedSameTrace) {
  SimOptions o = Small(5);
  o.duration = seconds(30);
  SimResult a = RunSimulation(o);
  SimResult b = RunSimulation(o);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.events, b.events);
  o.seed = 6;
  EXPECT_NE(RunSimulation(o).trace_hash, a.trace_hash);
}

// A store outage longer than a lease (an etcd election) while instances crash: the agents keep
// their leases from the controller's memory, so nobody fences itself and nothing fails over.
TEST(SimTest, StoreOutagesFailNothingOver) {
  for (uint64_t seed : {1, 2}) {
    SimOptions o = Small(seed);
    o.faults = {FaultKind::kStoreOutage, FaultKind::kProcessCrash};
    SimResult r = RunSimulation(o);
    EXPECT_EQ(r.violation_count, 0) << Describe(r);
    EXPECT_GT(r.faults, 5);
    EXPECT_EQ(r.failovers, 0) << Describe(r);
  }
}

// Found by the 1000-seed run: after a fence, the answer to an earlier poll (an older
// generation) arrived after the newest list and was applied over it on unfencing, so the new
// primary of a switchover was never started and the failover waited for ever.
TEST(SimTest, AnOlderListAnsweredLateAfterAFenceIsNotApplied) {
  SimOptions o = Small(768);
  o.nodes = 50;
  o.clients = 20;
  o.duration = seconds(60);
  o.fault_interval = seconds(3);
  o.only = {0, 1, 2, 4, 5, 6};
  SimResult r = RunSimulation(o);
  EXPECT_EQ(r.violation_count, 0) << Describe(r);
}

// A control link whose heartbeats are answered at once while it is up (granting a 1 s lease)
// and time out while it is down. Assignment requests are never answered: the test delivers
// the lists itself, as late answers.
class ScriptedLink : public agent::ControlLink {
 public:
  explicit ScriptedLink(EventQueue& events) : events_(events) {}
  void Heartbeat(const wire::AgentHeartbeat&, Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override {
    if (!up) {
      events_.After(timeout, [done] { done(Status::Unavailable("down")); });
      return;
    }
    events_.After(Duration::zero(), [this, done] {
      done(wire::HeartbeatAnswer{seconds(1), generation, std::nullopt, std::nullopt});
    });
  }
  void FetchAssignments(const std::string&, uint64_t, uint64_t, Duration,
                        std::function<void(Result<wire::AssignmentList>)>) override {}
  std::string Describe() const override { return "scripted"; }

  bool up = true;
  uint64_t generation = 0;

 private:
  EventQueue& events_;
};

class CountStarts : public ProcessObserver {
 public:
  void Started(const SimProcess&) override { ++starts; }
  int starts = 0;
};

// Agent::OnAssignments, as SimNode::Apply models it: an answer asked after a self-fence ends
// the fence, but a list older than the one applied, answered late, is never applied over it.
// Here the older list keeps the instance a standby and the newer one promoted it: applied, the
// older one would leave the new primary stopped (what hafab-sim's seed 768 found, in a whole
// run that no longer reproduces it: SimTest.AnOlderListAnsweredLateAfterAFenceIsNotApplied).
TEST(SimNodeTest, AnOlderListAnsweredLateAfterAFenceIsNotApplied) {
  spdlog::set_level(spdlog::level::off);
  testing::FakeClock clock;
  EventQueue events(clock);
  testing::FakeProvider provider;
  ScriptedLink link(events);
  CountStarts observer;
  testing::TempDir dir;
  SimNodeOptions o;
  o.name = "n1";
  o.data_dir = dir.path();
  o.address = "10.0.0.1";
  SimNode node(events, clock, provider, link, observer, o);
  auto run = [&](Duration d) {
    const TimePoint until = clock.Now() + d;
    while (events.RunNext(until)) {
    }
    clock.Set(until);
  };
  wire::Assignment standby;
  standby.instance = "kv-1";
  standby.role = "kv";
  standby.mode = manifest::RoleMode::kActivePassive;
  standby.run = false;
  standby.epoch = 1;
  standby.command = "kv";
  wire::Assignment promoted = standby;
  promoted.run = true;
  promoted.epoch = 2;
  const wire::AssignmentList older{1, {standby}, {}, {}};
  const wire::AssignmentList newer{2, {promoted}, {}, {}};
  auto running = [&] {
    for (const auto& r : node.supervisor().Report()) {
      if (r.instance == "kv-1") return r.state == wire::InstanceState::kRunning;
    }
    return false;
  };

  node.Start();
  run(seconds(1));
  node.Deliver(older, clock.Now());
  run(seconds(1));
  ASSERT_FALSE(running());
  link.generation = 2;
  node.Deliver(newer, clock.Now());
  run(seconds(1));
  ASSERT_TRUE(running());
  ASSERT_EQ(observer.starts, 1);
  // Cut from the controller past its lease: the node fences itself, killing the primary.
  const uint64_t fences = node.fences();
  link.up = false;
  run(seconds(3));
  ASSERT_EQ(node.fences(), fences + 1);
  ASSERT_TRUE(node.supervisor().fenced());
  ASSERT_FALSE(running());
  link.up = true;
  run(seconds(2));  // the lease renewed; the node asks for its list (never answered)
  // The answer to a request made after the fence, late, with the older list.
  node.Deliver(older, clock.Now());
  run(seconds(2));
  EXPECT_FALSE(node.supervisor().fenced());
  EXPECT_EQ(node.applied_generation(), 2u);
  EXPECT_TRUE(running());  // the newer list's primary, started again
  EXPECT_EQ(observer.starts, 2);
  node.Stop();
}

// The first seed (of at most 100) that violates an invariant.
int FirstViolation(SimOptions o, SimResult* out) {
  for (int seed = 1; seed <= 100; ++seed) {
    o.seed = static_cast<uint64_t>(seed);
    SimResult r = RunSimulation(o);
    if (r.violation_count > 0) {
      *out = r;
      return seed;
    }
  }
  return 0;
}

TEST(SimTest, CatchesAnAgentThatDoesNotFenceItself) {
  SimOptions o = Small(0);
  o.faults = {FaultKind::kPartition};
  o.break_self_fence = true;
  SimResult r;
  int seed = FirstViolation(o, &r);
  ASSERT_GT(seed, 0);
  EXPECT_NE(r.violations.front().find("two primaries"), std::string::npos) << Describe(r);
}

TEST(SimTest, CatchesAFailoverThatDoesNotWaitForTheOldPrimary) {
  SimOptions o = Small(0);
  o.faults = {FaultKind::kSwitchover};
  o.break_stop_wait = true;
  SimResult r;
  int seed = FirstViolation(o, &r);
  ASSERT_GT(seed, 0);
  EXPECT_NE(r.violations.front().find("two primaries"), std::string::npos) << Describe(r);
  // The replay of the shrunk fault set still violates.
  o.seed = static_cast<uint64_t>(seed);
  std::set<int> kept = ShrinkFaults(o, r, 20);
  EXPECT_LE(kept.size(), r.faults_struck.size());
  o.only = kept;
  EXPECT_GT(RunSimulation(o).violation_count, 0);
}

}  // namespace
}  // namespace hafab::sim
