// Replicated roles in the controller (docs/replication.md): placement of the replicas, the
// configuration each one's assignment carries, routing to the primary once it says it is.
#include <gtest/gtest.h>

#include "controller/fixture.h"

namespace hafab::controller::testsupport {
namespace {

using namespace std::chrono_literals;

manifest::Role KvRole(int instances = 3) {
  manifest::Role r;
  r.name = "kv";
  r.mode = manifest::RoleMode::kReplicated;
  r.command = "/bin/kvd";
  r.instances = instances;
  r.port = 7201;
  r.endpoint = manifest::Endpoint{"127.0.0.1:7200", {}};
  return r;
}

class ReplicatedTest : public ClusterTest {
 protected:
  // kv up, its primary kv-0 routed; each replica's log ends where `positions` says.
  void StartKv(std::map<std::string, wire::Position> positions = {}) {
    Run(100ms);
    ApplyRoles({KvRole()});
    Run(300ms);
    ASSERT_EQ(Endpoint("kv")["backends"][0]["ready"], true);
    for (const auto& [name, p] : positions) agent(Inst(name).node).SetPosition(name, p);
    Run(100ms);
  }
  const Operation* LastOp() {
    const Operation* last = nullptr;
    for (const auto& [id, op] : c_->ops()) {
      if (last == nullptr || op.created_ms >= last->created_ms) last = &op;
    }
    return last;
  }
  bool Happened(const std::string& type) {
    for (const auto& e : c_->EventsAfter(0, 100000)) {
      if (e.type == type) return true;
    }
    return false;
  }
  // Routed to `instance` alone, ready, at the role's epoch.
  void ExpectRoutedTo(const std::string& instance) {
    auto e = Endpoint("kv");
    ASSERT_EQ(e["backends"].size(), 1u) << e.dump();
    EXPECT_EQ(e["backends"][0]["instance"], instance);
    EXPECT_EQ(e["backends"][0]["ready"], true);
    EXPECT_EQ(e["epoch"], Role("kv").epoch);
    // The gateway routes to the backend of the endpoint's epoch only.
    EXPECT_EQ(e["backends"][0]["epoch"], e["epoch"]);
  }
};

TEST_F(ReplicatedTest, ThreeReplicasInThreeDomainsEachWithTheWholeConfiguration) {
  Run(100ms);
  ApplyRoles({KvRole()});
  Run(300ms);
  std::set<std::string> nodes;
  for (const char* name : {"kv-0", "kv-1", "kv-2"}) nodes.insert(Inst(name).node);
  EXPECT_EQ(nodes.size(), 3u);  // n1..n3 are fd1..fd3
  EXPECT_EQ(Role("kv").primary, "kv-0");
  EXPECT_EQ(Inst("kv-0").replica, wire::ReplicaRole::kPrimary);
  EXPECT_EQ(Inst("kv-1").replica, wire::ReplicaRole::kSecondary);
  EXPECT_EQ(Inst("kv-2").replica, wire::ReplicaRole::kSecondary);
  EXPECT_EQ(Running("kv"), 3);  // every replica runs

  for (const char* name : {"kv-0", "kv-1", "kv-2"}) {
    auto c = agent(Inst(name).node).Replica(name);
    ASSERT_TRUE(c.has_value()) << name;
    EXPECT_EQ(c->instance, name);
    EXPECT_EQ(c->role, *Inst(name).replica);
    EXPECT_EQ(c->epoch, Role("kv").epoch);
    EXPECT_EQ(c->quorum, 2);  // a majority of 3
    ASSERT_TRUE(c->primary.has_value());
    EXPECT_EQ(c->primary->instance, "kv-0");
    EXPECT_EQ(c->primary->address, "127.0.0.1:" + std::to_string(Inst("kv-0").port));
    ASSERT_EQ(c->replicas.size(), 3u);
  }
  // Routed as active-passive, to the primary alone.
  auto e = Endpoint("kv");
  EXPECT_EQ(e["mode"], "active-passive");
  ASSERT_EQ(e["backends"].size(), 1u);
  EXPECT_EQ(e["backends"][0]["instance"], "kv-0");
  EXPECT_EQ(e["backends"][0]["ready"], true);
  EXPECT_EQ(e["backends"][0]["epoch"], e["epoch"]);
}

TEST_F(ReplicatedTest, ThePrimaryIsRoutedOnlyWhileItSaysItIsThePrimaryOfTheEpoch) {
  Run(100ms);
  agent("n1").SetReplicaSilent("kv-0", true);
  agent("n2").SetReplicaSilent("kv-0", true);
  agent("n3").SetReplicaSilent("kv-0", true);
  ApplyRoles({KvRole()});
  Run(300ms);
  EXPECT_EQ(Endpoint("kv")["backends"][0]["ready"], false);  // running, says nothing yet
  agent(Inst("kv-0").node).SetReplicaSilent("kv-0", false);
  Run(200ms);
  EXPECT_EQ(Endpoint("kv")["backends"][0]["ready"], true);
}

TEST_F(ReplicatedTest, TheReplicaCountIsKept) {
  Run(100ms);
  ApplyRoles({KvRole()});
  Run(300ms);
  manifest::Manifest m;
  m.roles = {KvRole(5)};
  m.roles[0].pos = {"m.yaml", 3, 5};
  auto r = c_->Apply(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "m.yaml:3:5: error: roles[0].instances: a replicated role keeps its 3 replicas "
            "(another count changes every write quorum); remove the role first");
  auto s = c_->Scale("kv", 5);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "instances: role kv is replicated: it keeps its 3 replicas");
  EXPECT_EQ(c_->instances().size(), 3u);
}

// The primary's node dies: the most advanced secondary is promoted at a new epoch, the other
// follows it, and the gateways route to it once it says it is the primary.
TEST_F(ReplicatedTest, ThePrimarysLossPromotesTheMostAdvancedSecondary) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 38}}, {"kv-2", {1, 40}}});
  const int64_t epoch = Role("kv").epoch;
  agent(Inst("kv-0").node).Kill();
  Run(3s);
  EXPECT_EQ(Role("kv").primary, "kv-2");  // kv-1 is behind
  EXPECT_EQ(Role("kv").epoch, epoch + 1);
  EXPECT_EQ(Inst("kv-2").replica, wire::ReplicaRole::kPrimary);
  EXPECT_EQ(Inst("kv-0").replica, wire::ReplicaRole::kSecondary);
  auto c = agent(Inst("kv-1").node).Replica("kv-1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->role, wire::ReplicaRole::kSecondary);
  ASSERT_TRUE(c->primary.has_value());
  EXPECT_EQ(c->primary->instance, "kv-2");
  EXPECT_EQ(c->epoch, epoch + 1);
  ExpectRoutedTo("kv-2");
  const Operation* op = LastOp();
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->kind(), wire::OpKind::kReconfigure);
  EXPECT_EQ(op->state, wire::OpState::kDone);
  EXPECT_EQ(op->reconfigure().positions.size(), 2u);
  std::vector<std::string> steps;
  for (const auto& s : op->steps) steps.push_back(s.name);
  EXPECT_EQ(steps, (std::vector<std::string>{"detect", "drain", "fence", "collect", "promote",
                                             "confirm", "route"}));
  EXPECT_TRUE(Happened("reconfigure-done"));
  // Back, the old primary is a secondary of the new epoch.
  agent(Inst("kv-0").node).Revive();
  Run(500ms);
  auto old = agent(Inst("kv-0").node).Replica("kv-0");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->role, wire::ReplicaRole::kSecondary);
  EXPECT_EQ(old->primary->instance, "kv-2");
}

// Two of three replicas lost: nothing is promoted (an event says which are missing) until
// one of them is back; then the most advanced one leads, nothing acknowledged is lost.
TEST_F(ReplicatedTest, WithoutAQuorumNothingIsPromotedUntilAReplicaReturns) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 38}}, {"kv-2", {1, 40}}});
  agent(Inst("kv-0").node).Kill();
  agent(Inst("kv-2").node).Kill();
  Run(5s);
  EXPECT_EQ(Role("kv").primary, "");
  EXPECT_TRUE(Happened("quorum-lost"));
  const Operation* op = LastOp();
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->state, wire::OpState::kRunning);
  EXPECT_EQ(op->step, "collect");
  ASSERT_FALSE(op->steps.empty());
  EXPECT_NE(op->steps.back().note.find("quorum lost: 1 of the 2 replicas needed"),
            std::string::npos)
      << op->steps.back().note;
  EXPECT_NE(op->steps.back().note.find("missing kv-0, kv-2"), std::string::npos);
  EXPECT_EQ(Endpoint("kv")["backends"].size(), 0u);

  agent(Inst("kv-2").node).Revive();
  Run(2s);
  EXPECT_EQ(Role("kv").primary, "kv-2");  // 1:40, ahead of kv-1's 1:38
  ExpectRoutedTo("kv-2");
}

// hafab failover kv --to kv-2: the old primary, alive, takes the new epoch as a secondary;
// kv-2, as far as the others, is promoted.
TEST_F(ReplicatedTest, APlannedSwitchoverPromotesTheAskedReplica) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 40}}, {"kv-2", {1, 40}}});
  EXPECT_EQ(c_->RequestFailover("kv", "kv-9").status().message(),
            "to: kv-9 is not a replica of role kv");
  EXPECT_EQ(c_->RequestFailover("kv", "kv-0").status().message(),
            "to: kv-0 is primary; only a secondary can be promoted");
  auto r = c_->RequestFailover("kv", "kv-2");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Run(1s);
  EXPECT_EQ(Role("kv").primary, "kv-2");
  ExpectRoutedTo("kv-2");
  auto old = agent(Inst("kv-0").node).Replica("kv-0");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->role, wire::ReplicaRole::kSecondary);
  EXPECT_TRUE(LastOp()->reconfigure().planned);
}

// hafab failover kv (no --to): the most advanced secondary is the target, and the switchover
// waits for it to catch up with the old primary, which is ahead by what it wrote last. Without
// a target the old primary, the most advanced of all, was promoted again: nothing moved.
TEST_F(ReplicatedTest, APlannedSwitchoverWithoutATargetMovesThePrimaryToTheBestSecondary) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 38}}, {"kv-2", {1, 39}}});
  auto r = c_->RequestFailover("kv", "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["to"], "kv-2");
  Run(100ms);
  agent(Inst("kv-2").node).SetPosition("kv-2", {1, 40});  // caught up while unrouted
  Run(1s);
  EXPECT_EQ(Role("kv").primary, "kv-2");
  ExpectRoutedTo("kv-2");
  auto old = agent(Inst("kv-0").node).Replica("kv-0");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->role, wire::ReplicaRole::kSecondary);
}

// Two of three replicas gone for good: only the operator's --accept-data-loss promotes the one
// left, and an event says what may be lost.
TEST_F(ReplicatedTest, AcceptingDataLossPromotesWithoutAQuorum) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 38}}, {"kv-2", {1, 40}}});
  agent(Inst("kv-0").node).Kill();
  agent(Inst("kv-2").node).Kill();
  Run(3s);
  auto busy = c_->RequestFailover("kv", "");
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.status().message().find("--accept-data-loss promotes"), std::string::npos)
      << busy.status().message();
  EXPECT_EQ(c_->RequestFailover("kvd-none", "", true).status().code(), StatusCode::kNotFound);
  auto r = c_->RequestFailover("kv", "", true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Run(1s);
  EXPECT_EQ(Role("kv").primary, "kv-1");
  ExpectRoutedTo("kv-1");
  EXPECT_TRUE(Happened("data-loss-accepted"));
}

// A secondary's node stays down past replication.rebuild_after: a new replica, building, is
// placed on a node without one; it joins the quorum once it says it streams. The old node,
// back, no longer runs the old replica.
TEST_F(ReplicatedTest, AReplicaLostWithItsNodeIsRebuiltElsewhereAndJoinsOnceCaughtUp) {
  agents_.push_back(std::make_unique<FakeAgent>("n4", "fd4", "ud4", &provider_));
  Run(100ms);
  manifest::Role kv = KvRole();
  kv.replication.rebuild_after = 3s;
  ApplyRoles({kv});
  Run(300ms);
  const std::string lost = Inst("kv-1").node;
  agent(lost).SetReplicaSilent("kv-3", true);  // the new one is still copying at first
  for (auto& a : agents_) a->SetReplicaSilent("kv-3", true);
  agent(lost).Kill();
  Run(2s);
  EXPECT_TRUE(c_->instances().count("kv-1"));  // down, not yet for rebuild_after
  Run(2s);
  ASSERT_FALSE(c_->instances().count("kv-1"));
  ASSERT_TRUE(c_->instances().count("kv-3"));
  std::set<std::string> nodes;
  for (const auto& [name, inst] : c_->instances()) nodes.insert(inst.node);
  EXPECT_EQ(nodes.size(), 3u);
  EXPECT_FALSE(nodes.count(lost));
  EXPECT_EQ(Inst("kv-3").replica, wire::ReplicaRole::kBuilding);
  EXPECT_TRUE(Happened("replica-rebuilding"));
  auto c = agent(Inst("kv-0").node).Replica("kv-0");
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(c->replicas.size(), 3u);  // kv-0, kv-2, kv-3 (building, not in the quorum)

  for (auto& a : agents_) a->SetReplicaSilent("kv-3", false);
  Run(500ms);
  EXPECT_EQ(Inst("kv-3").replica, wire::ReplicaRole::kSecondary);
  EXPECT_TRUE(Happened("replica-joined"));

  agent(lost).Revive();
  Run(500ms);
  EXPECT_EQ(agent(lost).State("kv-1"), "");  // not assigned there any more
  EXPECT_EQ(c_->instances().size(), 3u);
}

// What operators read (hafab status, hafab get replicas): each replica's place, what it said
// and how far behind the primary it is; the role's quorum health.
TEST_F(ReplicatedTest, StatusShowsEachReplicaAndTheQuorum) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 38}}, {"kv-2", {1, 40}}});
  auto find = [](const nlohmann::json& list, const char* key, const std::string& name) {
    for (const auto& x : list) {
      if (x[key] == name) return x;
    }
    return nlohmann::json();
  };
  nlohmann::json st = c_->StatusJson();
  nlohmann::json kv1 = find(st["instances"], "instance", "kv-1");
  EXPECT_EQ(kv1["kind"], "secondary");
  EXPECT_EQ(kv1["replica"]["role"], "secondary");
  EXPECT_EQ(kv1["replica"]["says"]["position"], nlohmann::json({{"epoch", 1}, {"index", 38}}));
  EXPECT_EQ(kv1["replica"]["lag"], 2);
  nlohmann::json quorum = find(st["roles"], "name", "kv")["quorum"];
  EXPECT_EQ(quorum,
            nlohmann::json({{"quorum", 2}, {"voters", 3}, {"following", 3}, {"writable", true}}));
  agent(Inst("kv-1").node).Kill();
  agent(Inst("kv-2").node).Kill();
  Run(2s);
  quorum = find(c_->StatusJson()["roles"], "name", "kv")["quorum"];
  EXPECT_EQ(quorum["following"], 1);
  EXPECT_EQ(quorum["writable"], false);
}

// The controller dies at each step of a reconfiguration; the next one resumes it and ends with
// one primary, routed, at one new epoch.
class ReplicatedCrashTest : public ReplicatedTest,
                            public ::testing::WithParamInterface<const char*> {};

TEST_P(ReplicatedCrashTest, ANewControllerResumesAtTheStep) {
  StartKv({{"kv-0", {1, 40}}, {"kv-1", {1, 40}}, {"kv-2", {1, 39}}});
  const int64_t epoch = Role("kv").epoch;
  NewController(GetParam());
  Run(200ms);
  agent(Inst("kv-0").node).Kill();
  for (int i = 0; i < 60 && !c_->crashed(); ++i) Run(100ms);
  ASSERT_TRUE(c_->crashed());
  clock_.Advance(100ms);
  NewController();
  Run(4s);
  EXPECT_EQ(Role("kv").primary, "kv-1");
  EXPECT_EQ(Role("kv").epoch, epoch + 1);
  ExpectRoutedTo("kv-1");
  int begun = 0;
  for (const auto& s : LastOp()->steps) begun += s.name == GetParam();
  EXPECT_EQ(begun, 1);  // resumed, not restarted
}

INSTANTIATE_TEST_SUITE_P(EveryStep, ReplicatedCrashTest,
                         ::testing::Values("drain", "fence", "collect", "promote", "confirm",
                                           "route"));

}  // namespace
}  // namespace hafab::controller::testsupport
