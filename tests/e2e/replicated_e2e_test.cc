// End-to-end: examples/replicated.yaml as shipped (3 kvd replicas, quorum 2, 4 nodes, the
// gateway endpoint in front; only its ports replaced by free ones), with a writer that PUTs a
// new key through the gateway every 5 ms (KvChecker). Each scenario ends by reading every
// acknowledged write back and checking that none is lost and that no two replicas
// acknowledged writes in the same period (split brain):
//   - SIGKILL of the primary's node: a new primary serves within 3 s, the old replica comes
//     back (`hafab up` revives the node) as a secondary of the new epoch;
//   - the primary's node and a secondary's lost together: nothing is acknowledged and nothing
//     promoted (quorum-lost) until one of them is back;
//   - a planned switchover `hafab failover kv --to kv-2`.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"
#include "tests/e2e/replica_set.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kRole = "kv";     // the replicated role of examples/replicated.yaml
constexpr auto kNewPrimaryWithin = 3s;  // the test's bound; the target is < 2 s

ReplicaSet Replicas(Cluster& c) { return e2e::Replicas(c, kRole); }

// As an operator sees them: `hafab get replicas kv -o json`.
ReplicaSet ReplicasFromCli(Cluster& c) {
  std::string out;
  if (c.Hafab({"get", "replicas", kRole, "-o", "json", "--state-dir", c.state_dir()}, &out) != 0) {
    return {};
  }
  json j = json::parse(out, nullptr, false);
  return j.is_object() ? ParseReplicas(j, kRole) : ReplicaSet{};
}

ReplicaSet WaitSettled(Cluster& c, const std::string& what, Duration timeout) {
  ReplicaSet set;
  Status s = c.WaitFor(
      what,
      [&] {
        set = Replicas(c);
        return set.Settled();
      },
      timeout);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\nlast seen: " << set.ToString();
  return set;
}

std::set<std::string> OpIds(Cluster& c) {
  std::set<std::string> ids;
  auto ops = c.Api("GET", "/v1/ops");
  if (ops.ok()) {
    for (const auto& op : ops->value("operations", json::array())) ids.insert(op.value("id", ""));
  }
  return ids;
}

// The role's reconfiguration other than those in `before` (null if none has started).
json Reconfiguration(Cluster& c, const std::set<std::string>& before) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return nullptr;
  for (const auto& op : ops->value("operations", json::array())) {
    if (op.value("kind", "") == "reconfigure" && op.value("role", "") == kRole &&
        !before.count(op.value("id", ""))) {
      return op;
    }
  }
  return nullptr;
}

json WaitReconfigurationDone(Cluster& c, const std::set<std::string>& before, Duration timeout) {
  json op;
  Status s = c.WaitFor(
      "the reconfiguration to finish",
      [&] {
        op = Reconfiguration(c, before);
        return op.is_object() && op.value("state", "") == "done";
      },
      timeout);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\nlast seen: " << op.dump();
  return op;
}

bool AnyEvent(Cluster& c, const std::string& type) {
  auto ev = c.Api("GET", "/v1/events");
  if (!ev.ok()) return false;
  for (const auto& e : ev->value("events", json::array())) {
    if (e.value("type", "") == type) return true;
  }
  return false;
}

// The first write sent at or after `t` and acknowledged (by `instance`, unless ""), once
// there is one.
std::optional<Ack> FirstAckSentAfter(KvChecker& checker, TimePoint t,
                                     const std::string& instance = "") {
  for (const auto& a : checker.AcksSnapshot()) {
    if (a.sent >= t && (instance.empty() || a.instance == instance)) return a;
  }
  return std::nullopt;
}

// Lets the writer run until `more` further writes are acknowledged, stops it and checks the
// whole run: nothing acknowledged lost, no split brain.
void StopAndCheck(Cluster& c, KvChecker& checker, int64_t more = 50) {
  int64_t now = checker.acked();
  Status s = c.WaitFor(
      "more acknowledged writes", [&] { return checker.acked() >= now + more; }, 20s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  checker.Stop();
  CheckReport rep = checker.Check();
  std::cout << "checker: " << rep.ToString() << "\n";
  EXPECT_GT(rep.acked, 0);
  EXPECT_EQ(rep.lost, 0) << rep.ToString();
  EXPECT_EQ(rep.split_brain, 0) << rep.ToString();
}

ClusterOptions Replicated(const std::string& revive_after) {
  ClusterOptions o;
  o.example = kReplicated;
  o.revive_after = revive_after;
  return o;
}

TEST(ReplicatedE2e, PrimaryNodeKilledTheMostAdvancedSecondaryTakesOverAndTheOldOneRejoins) {
  Cluster c(Replicated("4s"));
  ASSERT_TRUE(c.Start(60s).ok());
  ReplicaSet before = WaitSettled(c, "three replicas at one epoch", 60s);
  ASSERT_NE(before.Primary(), nullptr) << before.ToString();
  const Replica old = *before.Primary();
  const std::set<std::string> ops_before = OpIds(c);

  KvChecker checker(c.kvd_url(), 5ms, "a");
  checker.Start();
  ASSERT_TRUE(c.WaitFor(
                   "writes", [&] { return checker.acked() >= 50; }, 20s)
                  .ok());

  std::string out;
  TimePoint t_kill = RealClock().Now();
  ASSERT_EQ(c.Hafab({"kill", old.node, "--state-dir", c.state_dir()}, &out), 0) << out;
  TimePoint t_killed = RealClock().Now();

  std::optional<Ack> first;
  ASSERT_TRUE(c.WaitFor(
                   "a write acknowledged after the kill",
                   [&] { return (first = FirstAckSentAfter(checker, t_killed)).has_value(); }, 20s)
                  .ok());
  std::optional<TimePoint> last_before;
  for (const auto& a : checker.AcksSnapshot()) {
    if (a.acked <= t_kill) last_before = a.acked;
  }
  Duration downtime = first->acked - last_before.value_or(t_kill);
  std::cout << "SIGKILL of " << old.node << " (primary " << old.instance
            << "): first write acknowledged by " << first->instance << " after "
            << ToMillis(downtime) << " ms\n";
  EXPECT_LT(downtime, kNewPrimaryWithin);
  EXPECT_NE(first->instance, old.instance);

  json op = WaitReconfigurationDone(c, ops_before, 20s);
  EXPECT_EQ(op.value("old_primary", ""), old.instance) << op.dump();
  EXPECT_EQ(op.value("new_primary", ""), first->instance) << op.dump();
  EXPECT_GT(op.value("epoch", int64_t{0}), before.epoch) << op.dump();

  // `hafab up` revives the node after 4 s: its replica follows the new primary, at its epoch.
  ReplicaSet after;
  Status back = c.WaitFor(
      old.instance + " back as a secondary of the new epoch",
      [&] {
        after = ReplicasFromCli(c);
        const Replica* r = after.Find(old.instance);
        return after.Settled() && r != nullptr && r->kind == "secondary";
      },
      40s);
  EXPECT_TRUE(back.ok()) << back.ToString() << "\nlast seen: " << after.ToString();
  EXPECT_EQ(after.epoch, op.value("epoch", int64_t{0})) << after.ToString();
  ASSERT_NE(after.Find(old.instance), nullptr);
  EXPECT_EQ(after.Find(old.instance)->node, old.node) << "rebuilt elsewhere: " << after.ToString();
  ASSERT_NE(after.Primary(), nullptr);
  EXPECT_EQ(after.Primary()->instance, first->instance);

  StopAndCheck(c, checker);
  EXPECT_TRUE(c.Stop().ok());
}

TEST(ReplicatedE2e, TwoOfThreeReplicasLostNothingIsAcknowledgedOrPromotedUntilOneIsBack) {
  // The primary's node is SIGKILLed (`hafab up` revives it after revive_after) and a
  // secondary's node stopped (SIGSTOP to its agent and instances: down until the test sends
  // SIGCONT), at once. revive_after leaves time for the quorum-lost event (lease 1 s, then
  // lease + fence margin in collect) before the node is back.
  constexpr auto kReviveAfter = 8s;
  Cluster c(Replicated("8s"));
  ASSERT_TRUE(c.Start(60s).ok());
  ReplicaSet before = WaitSettled(c, "three replicas at one epoch", 60s);
  ASSERT_NE(before.Primary(), nullptr) << before.ToString();
  const Replica old = *before.Primary();
  std::string stopped_node;
  for (const auto& r : before.replicas) {
    if (r.kind == "secondary") stopped_node = r.node;
  }
  const std::set<std::string> ops_before = OpIds(c);

  KvChecker checker(c.kvd_url(), 5ms, "b");
  checker.Start();
  ASSERT_TRUE(c.WaitFor(
                   "writes", [&] { return checker.acked() >= 50; }, 20s)
                  .ok());

  // Should the test end early, the stopped node resumes so that `up` can stop it.
  struct Resume {
    Cluster& c;
    const std::string& node;
    ~Resume() { c.Hafab({"kill", node, "--signal", "CONT", "--state-dir", c.state_dir()}); }
  } resume{c, stopped_node};
  std::string out;
  TimePoint t_kill = RealClock().Now();
  ASSERT_EQ(c.Hafab({"kill", stopped_node, "--signal", "STOP", "--state-dir", c.state_dir()}, &out),
            0)
      << out;
  ASSERT_EQ(c.Hafab({"kill", old.node, "--state-dir", c.state_dir()}, &out), 0) << out;
  TimePoint t_killed = RealClock().Now();
  const int64_t acked_at_kill = checker.acked();

  // The quorum is lost: the controller says so and promotes nothing; no write is acknowledged.
  ASSERT_TRUE(c.WaitFor(
                   "a quorum-lost event", [&] { return AnyEvent(c, "quorum-lost"); }, 20s)
                  .ok());
  json op = Reconfiguration(c, ops_before);
  EXPECT_EQ(op.value("step", ""), "collect") << op.dump();
  EXPECT_EQ(op.value("new_primary", ""), "") << op.dump();
  ReplicaSet lost = Replicas(c);
  EXPECT_EQ(lost.Primary(), nullptr) << lost.ToString();
  EXPECT_FALSE(FirstAckSentAfter(checker, t_killed).has_value())
      << "a write was acknowledged without a quorum";
  // `hafab status` says why nothing is promoted and what the operator can do.
  ASSERT_EQ(c.Hafab({"status", "--state-dir", c.state_dir()}, &out), 0) << out;
  EXPECT_NE(
      out.find("NOT WRITABLE (operation " + op.value("id", "") + ", step collect: quorum lost"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("bring a missing replica's node back"), std::string::npos) << out;
  std::cout << "quorum lost " << ToMillis(RealClock().Now() - t_kill) << " ms after the kill; "
            << checker.acked() - acked_at_kill << " writes acknowledged since the kill\n";

  // The primary's node comes back: with the remaining secondary it is a quorum again.
  std::optional<Ack> first;
  ASSERT_TRUE(c.WaitFor(
                   "a write acknowledged after a replica is back",
                   [&] { return (first = FirstAckSentAfter(checker, t_killed)).has_value(); },
                   kReviveAfter + 30s)
                  .ok());
  std::cout << "first write acknowledged again by " << first->instance << " "
            << ToMillis(first->acked - t_kill) << " ms after the kill\n";
  // Not before the node was revived: `hafab up` restarts it revive_after after it died.
  EXPECT_GE(first->acked - t_kill, kReviveAfter);
  op = WaitReconfigurationDone(c, ops_before, 20s);
  EXPECT_EQ(op.value("new_primary", ""), first->instance) << op.dump();
  const Replica* promoted = Replicas(c).Find(first->instance);
  ASSERT_NE(promoted, nullptr);
  EXPECT_NE(promoted->node, stopped_node);

  // The stopped node resumes: its replica follows the new primary.
  ASSERT_EQ(c.Hafab({"kill", stopped_node, "--signal", "CONT", "--state-dir", c.state_dir()}, &out),
            0)
      << out;
  WaitSettled(c, "the stopped replica back as a secondary", 40s);
  StopAndCheck(c, checker);
  EXPECT_TRUE(c.Stop().ok());
}

TEST(ReplicatedE2e, PlannedSwitchoverToANamedSecondary) {
  Cluster c(Replicated("5s"));
  ASSERT_TRUE(c.Start(60s).ok());
  ReplicaSet before = WaitSettled(c, "three replicas at one epoch", 60s);
  ASSERT_NE(before.Primary(), nullptr) << before.ToString();
  const std::string old = before.Primary()->instance;
  const std::string target = old == "kv-2" ? "kv-1" : "kv-2";

  KvChecker checker(c.kvd_url(), 5ms, "c");
  checker.Start();
  ASSERT_TRUE(c.WaitFor(
                   "writes", [&] { return checker.acked() >= 50; }, 20s)
                  .ok());

  std::string out;
  TimePoint t_start = RealClock().Now();
  ASSERT_EQ(c.Hafab({"failover", kRole, "--to", target, "--state-dir", c.state_dir()}, &out), 0)
      << out;
  std::optional<Ack> first;
  ASSERT_TRUE(
      c.WaitFor(
           "a write acknowledged by " + target,
           [&] { return (first = FirstAckSentAfter(checker, t_start, target)).has_value(); }, 20s)
          .ok())
      << "(a target behind the most advanced replica is passed over: event "
         "reconfigure-target-behind)\nthe switchover: "
      << Reconfiguration(c, {}).dump();
  std::cout << "hafab failover " << kRole << " --to " << target << ": " << target
            << " acknowledged a write " << ToMillis(first->acked - t_start) << " ms after\n";
  ReplicaSet after = WaitSettled(c, "the switchover to settle", 20s);
  ASSERT_NE(after.Primary(), nullptr) << after.ToString();
  EXPECT_EQ(after.Primary()->instance, target) << after.ToString();
  EXPECT_GT(after.epoch, before.epoch);
  StopAndCheck(c, checker);
  EXPECT_TRUE(c.Stop().ok());
}

}  // namespace
}  // namespace hafab::e2e
