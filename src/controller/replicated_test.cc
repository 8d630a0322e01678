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

class ReplicatedTest : public ClusterTest {};

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

}  // namespace
}  // namespace hafab::controller::testsupport
