#include "controller/placement.h"

#include <gtest/gtest.h>

namespace hafab::controller {
namespace {

std::vector<NodeCandidate> ThreeByThree() {
  // n1..n4: fd1/ud1, fd1/ud2, fd2/ud1, fd2/ud2
  return {{"n1", "fd1", "ud1", 0, 0},
          {"n2", "fd1", "ud2", 0, 0},
          {"n3", "fd2", "ud1", 0, 0},
          {"n4", "fd2", "ud2", 0, 0}};
}

TEST(PlacementTest, SecondInstanceGoesToDifferentFaultAndUpdateDomain) {
  auto nodes = ThreeByThree();
  std::vector<Peer> peers{{"n1", "fd1", "ud1"}};
  EXPECT_EQ(PickNode(nodes, peers), "n4");  // the only node differing in both
  peers = {{"n2", "fd1", "ud2"}};
  EXPECT_EQ(PickNode(nodes, peers), "n3");
}

TEST(PlacementTest, PrefersNodesWithoutAnInstanceOfTheRole) {
  std::vector<NodeCandidate> nodes{{"n1", "fd1", "ud1", 0, 0}, {"n2", "fd1", "ud1", 0, 5}};
  // n2 shares both domains and is busier, but n1 already has the role.
  EXPECT_EQ(PickNode(nodes, {{"n1", "fd1", "ud1"}}), "n2");
}

TEST(PlacementTest, RespectsCapacity) {
  std::vector<NodeCandidate> nodes{{"n1", "fd1", "ud1", 2, 2}, {"n2", "fd1", "ud1", 3, 2}};
  EXPECT_EQ(PickNode(nodes, {}), "n2");
  nodes[1].load = 3;
  EXPECT_EQ(PickNode(nodes, {}), std::nullopt);
  nodes[0].capacity = 0;  // unlimited
  EXPECT_EQ(PickNode(nodes, {}), "n1");
}

TEST(PlacementTest, LeastLoadedThenNameBreakTies) {
  std::vector<NodeCandidate> nodes{{"b", "", "", 0, 1}, {"a", "", "", 0, 1}, {"c", "", "", 0, 0}};
  EXPECT_EQ(PickNode(nodes, {}), "c");
  nodes[2].load = 1;
  EXPECT_EQ(PickNode(nodes, {}), "a");
}

TEST(PlacementTest, SpreadsManyInstancesAcrossDomains) {
  auto nodes = ThreeByThree();
  std::vector<Peer> peers;
  std::map<std::string, int> per_fd;
  for (int i = 0; i < 4; ++i) {
    auto n = PickNode(nodes, peers);
    ASSERT_TRUE(n);
    for (auto& c : nodes) {
      if (c.name == *n) {
        ++c.load;
        peers.push_back({c.name, c.fault_domain, c.update_domain});
        ++per_fd[std::string(c.fault_domain)];
      }
    }
  }
  EXPECT_EQ(per_fd["fd1"], 2);
  EXPECT_EQ(per_fd["fd2"], 2);
  std::set<std::string> used;
  for (const auto& p : peers) used.insert(std::string(p.node));
  EXPECT_EQ(used.size(), 4u);
}

TEST(PlacementTest, StandbyOutsideTheFailedFaultDomainThenReportedThenLowestOrdinal) {
  EXPECT_EQ(PickStandby({}, "fd1"), "");
  // Another fault domain beats a lower ordinal and a report.
  EXPECT_EQ(PickStandby({{"kvd-1", "fd1", true, 1}, {"kvd-2", "fd2", false, 2}}, "fd1"), "kvd-2");
  // Then a standby its agent reports beats one never seen.
  EXPECT_EQ(PickStandby({{"kvd-1", "fd2", false, 1}, {"kvd-2", "fd3", true, 2}}, "fd1"), "kvd-2");
  // Then the lowest ordinal.
  EXPECT_EQ(PickStandby({{"kvd-2", "fd2", true, 2}, {"kvd-1", "fd3", true, 1}}, "fd1"), "kvd-1");
  // No fault domain known for the old primary: no domain is avoided.
  EXPECT_EQ(PickStandby({{"kvd-1", "", true, 1}, {"kvd-2", "fd2", true, 2}}, ""), "kvd-1");
}

TEST(PlacementTest, PortIsTheRolesPortThenTheNextFree) {
  EXPECT_EQ(PickPort(7101, {}), 7101);
  EXPECT_EQ(PickPort(7101, {7101}), 7102);
  EXPECT_EQ(PickPort(7101, {7101, 7102, 7104}), 7103);
  EXPECT_EQ(PickPort(0, {20000}), 20001);
}

}  // namespace
}  // namespace hafab::controller
