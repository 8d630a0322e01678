// LeaderElection on one in-process SqliteStore shared by several replicas, each behind its
// own FaultStore (so one replica can be cut off from the store), on a FakeClock. The
// property checked throughout: at no instant do two replicas consider themselves leader,
// and a replica that stopped being leader can no longer write.
#include "controller/leader.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "controller/controller.h"
#include "store/sqlite_store.h"
#include "testing/fake_clock.h"
#include "testing/fault_store.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;
using Change = LeaderElection::Change;

class LeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = store::SqliteStore::Open(":memory:", clock_);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
  }

  // A replica named `id` behind its own fault decorator.
  LeaderElection& Add(const std::string& id, LeaderOptions o = {}) {
    faults_.push_back(std::make_unique<testing::FaultStore>(*store_, Random(1)));
    o.id = id;
    o.url = "http://" + id + ":7070";
    o.watch_poll = Duration::zero();  // SqliteStore's watch answers at once
    replicas_.push_back(std::make_unique<LeaderElection>(*faults_.back(), clock_, o));
    return *replicas_.back();
  }

  int LeadingCount() const {
    int n = 0;
    for (const auto& r : replicas_) n += r->Leading();
    return n;
  }

  // Advances time in 10 ms steps for `d`, ticking the replicas whose `alive` bit is set,
  // and checks at every step that at most one replica leads.
  void Run(Duration d, std::vector<bool> alive = {}) {
    for (Duration t{}; t < d; t += 10ms) {
      clock_.Advance(10ms);
      for (size_t i = 0; i < replicas_.size(); ++i) {
        if (alive.empty() || alive[i]) replicas_[i]->Tick();
        ASSERT_LE(LeadingCount(), 1) << "two leaders at +" << ToMillis(t) << "ms";
      }
    }
  }

  // Runs (as Run) until `done` holds or `limit` passes; whether it held.
  bool RunUntil(const std::function<bool()>& done, Duration limit, std::vector<bool> alive = {}) {
    for (TimePoint start = clock_.Now(); !done() && clock_.Now() - start < limit;) {
      Run(10ms, alive);
    }
    return done();
  }

  testing::FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  std::vector<std::unique_ptr<testing::FaultStore>> faults_;
  std::vector<std::unique_ptr<LeaderElection>> replicas_;
};

TEST_F(LeaderTest, FirstReplicaIsElectedAndPublishesItsUrl) {
  LeaderElection& a = Add("a");
  LeaderElection& b = Add("b");
  EXPECT_EQ(a.Tick(), Change::kElected);
  EXPECT_TRUE(a.Leading());
  EXPECT_EQ(b.Tick(), Change::kNone);
  EXPECT_FALSE(b.Leading());
  EXPECT_EQ(b.leader().id, "a");
  EXPECT_EQ(b.leader().url, "http://a:7070");
  auto kv = store_->Get(kLeaderKey);
  ASSERT_TRUE(kv.ok());
  EXPECT_NE(kv->lease, 0);
  EXPECT_EQ(nlohmann::json::parse(kv->value)["id"], "a");
  EXPECT_EQ(a.Guard().size(), 1u);
}

TEST_F(LeaderTest, LeaderThatKeepsRenewingStaysLeader) {
  LeaderElection& a = Add("a");
  Add("b");
  Run(20s);
  EXPECT_TRUE(a.Leading());
  EXPECT_EQ(a.stats().elected, 1);
  EXPECT_EQ(a.stats().stepped_down, 0);
  EXPECT_EQ(replicas_[1]->stats().elected, 0);
}

TEST_F(LeaderTest, CrashedLeaderIsReplacedAfterItsLease) {
  LeaderOptions o;
  o.ttl = 2s;
  LeaderElection& a = Add("a", o);
  LeaderElection& b = Add("b", o);
  Run(1s);
  ASSERT_TRUE(a.Leading());
  // a stops ticking (SIGKILL): its key lives until the store's lease ends.
  TimePoint crashed = clock_.Now();
  Run(1500ms, {false, true});
  EXPECT_FALSE(b.Leading()) << "b took over while a's lease still ran";
  ASSERT_TRUE(RunUntil([&] { return b.Leading(); }, 5s, {false, true}));
  // The key went when a's lease ended: at most ttl after a's last keep-alive (which was at
  // most renew_interval before the crash), noticed by b's watch within one tick.
  Duration took = clock_.Now() - crashed;
  EXPECT_GE(took, o.ttl - o.renew_interval);
  EXPECT_LE(took, o.ttl + 20ms);
  EXPECT_EQ(b.leader().id, "b");
}

TEST_F(LeaderTest, LeaderCutOffFromTheStoreStepsDownBeforeAnotherIsElected) {
  LeaderOptions o;
  o.ttl = 2s;
  o.margin = 500ms;
  LeaderElection& a = Add("a", o);
  LeaderElection& b = Add("b", o);
  Run(1s);
  ASSERT_TRUE(a.Leading());
  faults_[0]->SetDown(true);  // a still runs, but cannot reach the store
  TimePoint cut = clock_.Now();
  TimePoint a_stopped{}, b_elected{};
  for (int i = 0; i < 500 && b_elected == TimePoint{}; ++i) {
    Run(10ms);  // checks: never two leaders
    if (a_stopped == TimePoint{} && !a.Leading()) a_stopped = clock_.Now();
    if (b.Leading()) b_elected = clock_.Now();
  }
  ASSERT_NE(b_elected, TimePoint{});
  ASSERT_NE(a_stopped, TimePoint{});
  EXPECT_LE(a_stopped - cut, o.ttl - o.margin);
  // a stopped acting at least `margin` minus one renew interval before b could start.
  EXPECT_GE(b_elected - a_stopped, o.margin - o.renew_interval);
  EXPECT_EQ(a.stats().stepped_down, 1);
  EXPECT_GE(a.stats().renew_failures, 1);
  // a comes back: it follows b.
  faults_[0]->SetDown(false);
  Run(3s);
  EXPECT_TRUE(b.Leading());
  EXPECT_FALSE(a.Leading());
  EXPECT_EQ(a.leader().id, "b");
}

TEST_F(LeaderTest, ShortPartitionEndsTheTermAndTheOthersElectQuickly) {
  LeaderOptions o;
  o.ttl = 2s;
  o.margin = 500ms;
  LeaderElection& a = Add("a", o);
  LeaderElection& b = Add("b", o);
  Run(1s);
  ASSERT_TRUE(a.Leading());
  faults_[0]->SetDown(true);
  ASSERT_TRUE(RunUntil([&] { return !a.Leading(); }, 3s));
  // Back before the store's lease ended: a finds its own key, deletes it, and b is elected
  // without waiting for the rest of the ttl (a waits one ttl before campaigning again).
  faults_[0]->SetDown(false);
  TimePoint back = clock_.Now();
  EXPECT_TRUE(RunUntil([&] { return b.Leading(); }, 3s));
  EXPECT_LT(clock_.Now() - back, 200ms);
  Run(100ms);
  EXPECT_EQ(a.leader().id, "b");
}

TEST_F(LeaderTest, ResignHandsOverAtTheNextTick) {
  LeaderElection& a = Add("a");
  LeaderElection& b = Add("b");
  a.Tick();
  b.Tick();
  ASSERT_TRUE(a.Leading());
  a.Resign("shutdown");
  EXPECT_FALSE(a.Leading());
  EXPECT_EQ(a.Tick(), Change::kNone);  // does not win again at once
  clock_.Advance(10ms);
  EXPECT_EQ(b.Tick(), Change::kElected);
  EXPECT_EQ(a.stats().last_step_down, "resigned: shutdown");
}

TEST_F(LeaderTest, DeletedLeaderKeyMakesTheLeaderStepDown) {
  LeaderElection& a = Add("a");
  Add("b");
  Run(100ms);
  ASSERT_TRUE(a.Leading());
  ASSERT_TRUE(store_->Delete(kLeaderKey).ok());  // an operator, say
  Run(20ms);
  EXPECT_FALSE(a.Leading());
  Run(3s);
  EXPECT_EQ(LeadingCount(), 1);
  EXPECT_TRUE(replicas_[1]->Leading());
}

TEST_F(LeaderTest, SoleOwnerRemovesTheKeyOfADeadProcess) {
  auto lease = store_->GrantLease(10s);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(store_->Put(kLeaderKey, R"({"id":"old","url":"http://old"})", *lease).ok());
  LeaderOptions o;
  o.sole_owner = true;
  LeaderElection& a = Add("a", o);
  EXPECT_EQ(a.Tick(), Change::kElected);
  LeaderElection& b = Add("b");  // not sole owner: waits for the key
  auto held = store_->Get(kLeaderKey);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(nlohmann::json::parse(held->value)["id"], "a");  // the dead process's key is gone
  EXPECT_EQ(b.Tick(), Change::kNone);
  EXPECT_EQ(b.leader().id, "a");
}

// A follower with evidence that the leader's process is gone (LeaderProbe) takes the key
// over at once; the old leader, had it been alive, steps down at its next tick and its
// guard no longer holds.
TEST_F(LeaderTest, TakeOverReplacesTheLeaderAtOnce) {
  LeaderOptions o;
  o.ttl = 2s;
  LeaderElection& a = Add("a", o);
  LeaderElection& b = Add("b", o);
  Run(100ms);
  ASSERT_TRUE(a.Leading());
  ASSERT_EQ(b.leader().id, "a");
  auto old = store_->Get(kLeaderKey);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(a.TakeOver("not a follower"), Change::kNone);
  EXPECT_EQ(b.TakeOver("3 connections refused"), Change::kElected);
  EXPECT_TRUE(b.Leading());
  EXPECT_EQ(b.leader().id, "b");
  EXPECT_EQ(b.takeover_grace(), o.ttl - o.margin);
  EXPECT_EQ(b.stats().takeovers, 1);
  EXPECT_NE(b.stats().last_takeover.find("took over from a (http://a:7070): 3 connections"),
            std::string::npos)
      << b.stats().last_takeover;
  EXPECT_EQ(store_->KeepAlive(old->lease).code(), StatusCode::kNotFound);  // revoked
  EXPECT_EQ(a.Tick(), Change::kSteppedDown);
  EXPECT_FALSE(a.Leading());
  auto txn = store::Txn{};
  txn.compares = {store::Compare::ModRevisionEquals(kLeaderKey, old->mod_revision)};
  txn.success = {store::Op::Put("/x", "a's write")};
  auto r = store_->Commit(txn);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->succeeded) << "the old leader's guard still held";
  Run(5s);
  EXPECT_TRUE(b.Leading());
  EXPECT_EQ(a.stats().elected, 1);
}

TEST_F(LeaderTest, TakeOverOfAKeyThatMovedDoesNothing) {
  LeaderElection& a = Add("a");
  LeaderElection& b = Add("b");
  Run(100ms);
  ASSERT_EQ(b.leader().id, "a");
  a.Resign("test");  // the key goes; b has not seen it yet
  EXPECT_EQ(b.TakeOver("refused"), Change::kNone);
  EXPECT_EQ(b.stats().takeovers, 0);
  ASSERT_TRUE(RunUntil([&] { return b.Leading(); }, 3s));
  EXPECT_EQ(b.takeover_grace(), Duration::zero());  // an ordinary election
}

// The write guard: a deposed leader's controller cannot write once another was elected,
// even if it never noticed (a stalled process).
TEST_F(LeaderTest, DeposedControllerCannotWrite) {
  LeaderOptions o;
  o.ttl = 2s;
  LeaderElection& a = Add("a", o);
  LeaderElection& b = Add("b", o);
  Run(100ms);
  ASSERT_TRUE(a.Leading());
  ControllerOptions co;
  co.write_guard = a.Guard();
  Controller ca(*store_, clock_, nullptr, co);
  ASSERT_TRUE(ca.Start().ok());
  manifest::Manifest m;
  m.cluster = "t";
  m.nodes.push_back({});
  m.nodes.back().name = "n1";
  ASSERT_TRUE(ca.Apply(m).ok());
  // a stalls (no Tick), b is elected.
  Run(3s, {false, true});
  ASSERT_TRUE(b.Leading());
  auto before = store_->Range("/hafab/");
  ASSERT_TRUE(before.ok());
  // a's controller wakes up and tries to write.
  auto r = ca.Drain("n1", true);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(ca.deposed());
  ca.Tick();
  auto after = store_->Range("/hafab/");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->revision, before->revision) << "the deposed controller wrote";
  // b's controller writes normally.
  co.write_guard = b.Guard();
  Controller cb(*store_, clock_, nullptr, co);
  ASSERT_TRUE(cb.Start().ok());
  EXPECT_TRUE(cb.Drain("n1", true).ok());
  EXPECT_FALSE(cb.deposed());
}

}  // namespace
}  // namespace hafab::controller
