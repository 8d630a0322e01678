// The controller with ring failure detection (ControllerOptions::ring_detector): the
// arbiter's verdicts acted on, and the leases and keep-alives it grants.
#include <gtest/gtest.h>

#include "controller/fixture.h"

namespace hafab::controller {
namespace {

using namespace testsupport;

class RingDetectorTest : public ClusterTest {
 protected:
  void SetUp() override {
    options_.ring_detector = true;
    options_.ring_key = "the-ring-key";
    ClusterTest::SetUp();
    ControllerListener l;
    l.check_node = [this](const std::string& node) { checked_.push_back(node); };
    c_->SetListener(std::move(l));
  }

  // `by` tells the controller it no longer hears `about`.
  void Accuse(const std::string& by, const std::string& about) {
    wire::AgentHeartbeat hb = agent(by).Heartbeat();
    hb.ring = {{about, true}};
    ASSERT_TRUE(c_->AgentHeartbeat(by, hb).ok());
  }

  std::vector<Event> EventsOf(const std::string& type) {
    std::vector<Event> out;
    for (const Event& e : c_->EventsAfter(0, 10000)) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

  bool Down(const std::string& node) { return c_->nodes().at(node).down; }

  std::vector<std::string> checked_;
};

TEST_F(RingDetectorTest, EachNodeHearsOfItsNeighboursAndAKeepAliveThatFitsItsInstances) {
  ApplyRoles({WebRole(3), KvdRole(2)});
  Run(1s);
  auto list = c_->AssignmentListFor("n1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->ring.size(), 2u);  // three nodes: everyone watches everyone
  for (const auto& p : list->ring) EXPECT_NE(p.node, "n1");
  // Nodes with a kvd instance keep the short lease fencing needs; the one with only web gets
  // three keep-alives more.
  for (const auto& a : agents_) {
    auto answer = c_->AgentHeartbeat(a->node(), a->Heartbeat());
    ASSERT_TRUE(answer.ok());
    bool kvd = false;
    for (const auto& [name, inst] : c_->instances())
      kvd |= inst.role == "kvd" && inst.node == a->node();
    EXPECT_EQ(answer->keepalive, std::chrono::milliseconds(200)) << a->node();
    EXPECT_EQ(answer->lease_ttl, kvd ? 1500ms : 2100ms) << a->node();
  }
}

// Where each neighbour's probes go comes from its heartbeats (its UDP port on its address); a
// port that changes (an agent restarted) reaches its watchers in a new assignment generation.
TEST_F(RingDetectorTest, NeighboursComeWithTheirRingAddressesAndTheKey) {
  ApplyRoles({WebRole(3)});
  Run(1s);
  auto list = c_->AssignmentListFor("n1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->ring_key, "the-ring-key");
  for (const auto& p : list->ring) EXPECT_EQ(p.address, "") << p.node;  // no port reported yet
  auto with_port = [&](const std::string& node, uint16_t port) {
    wire::AgentHeartbeat hb = agent(node).Heartbeat();
    hb.ring_endpoint = wire::RingEndpoint{port, 5, 4, 1};
    ASSERT_TRUE(c_->AgentHeartbeat(node, hb).ok());
  };
  with_port("n2", 40002);
  with_port("n3", 40003);
  const int64_t before = c_->AssignmentsGeneration("n1");
  c_->Tick();
  EXPECT_GT(c_->AssignmentsGeneration("n1"), before);
  list = c_->AssignmentListFor("n1");
  ASSERT_TRUE(list.ok());
  std::map<std::string, std::string> addresses;
  for (const auto& p : list->ring) addresses[p.node] = p.address;
  EXPECT_EQ(addresses, (std::map<std::string, std::string>{{"n2", "127.0.0.1:40002"},
                                                           {"n3", "127.0.0.1:40003"}}));
  const int64_t published = c_->AssignmentsGeneration("n1");
  with_port("n2", 40002);  // the same port: nothing to publish
  c_->Tick();
  EXPECT_EQ(c_->AssignmentsGeneration("n1"), published);
  with_port("n2", 41000);
  c_->Tick();
  EXPECT_GT(c_->AssignmentsGeneration("n1"), published);
  EXPECT_NE(c_->MetricsText().find(
                "hafab_agent_ring_datagrams_total{node=\"n2\",what=\"dropped_invalid\"} 1"),
            std::string::npos)
      << c_->MetricsText();
}

TEST_F(RingDetectorTest, TwoAccusersAndNoAnswerToTheCheckMakeANodeDownBeforeItsLease) {
  ApplyRoles({WebRole(3)});
  Run(1s);
  agent("n3").Kill();
  Accuse("n1", "n3");
  c_->Tick();
  EXPECT_EQ(checked_, (std::vector<std::string>{"n3"}));
  EXPECT_NE(c_->MetricsText().find("\nhafab_controller_ring_checks_total 1\n"), std::string::npos)
      << c_->MetricsText();
  Accuse("n2", "n3");
  Run(300ms);
  EXPECT_FALSE(Down("n3"));  // the check has 400 ms
  Run(200ms);
  ASSERT_TRUE(Down("n3"));
  auto down = EventsOf("node-down");
  ASSERT_EQ(down.size(), 1u);
  EXPECT_NE(down[0].message.find("suspected by its ring neighbours n1, n2 and silent to the "
                                 "controller for"),
            std::string::npos)
      << down[0].message;
  // Its web instance is placed elsewhere at once; its lease (2.1 s) has not run out.
  Run(200ms);
  for (const auto& [name, inst] : c_->instances()) EXPECT_NE(inst.node, "n3") << name;
}

TEST_F(RingDetectorTest, ANodeThatAnswersItsCheckIsIsolatedAndNothingMoves) {
  ApplyRoles({WebRole(3), KvdRole(2)});
  Run(1s);
  const std::string primary = PrimaryNode();
  std::string other;
  for (const auto& a : agents_) {
    if (a->node() != primary && other.empty()) other = a->node();
  }
  std::string third;
  for (const auto& a : agents_) {
    if (a->node() != primary && a->node() != other) third = a->node();
  }
  Accuse(other, primary);
  Accuse(third, primary);
  Run(3s);  // it keeps heartbeating: every check is answered
  EXPECT_FALSE(Down(primary));
  auto isolated = EventsOf("node-isolated");
  ASSERT_EQ(isolated.size(), 1u);  // said once
  EXPECT_NE(isolated[0].message.find("yet it answers the controller"), std::string::npos);
  EXPECT_TRUE(EventsOf("failover-started").empty());
  EXPECT_EQ(PrimaryNode(), primary);
  EXPECT_GE(checked_.size(), 3u);  // checked again while the accusations stand
}

}  // namespace
}  // namespace hafab::controller
