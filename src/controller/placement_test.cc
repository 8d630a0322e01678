#include "controller/placement.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>
#include <set>
#include <tuple>

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

// The rules as first written: a pass over every peer for each candidate. PickNode counts the
// peers once instead (a 1 000-instance role on 1 000 nodes held the controller's loop for
// seconds); it must choose what this chooses.
std::optional<std::string> PickNodeByScan(const std::vector<NodeCandidate>& candidates,
                                          const std::vector<Peer>& peers,
                                          const std::function<bool(std::string_view)>& skip) {
  const NodeCandidate* best = nullptr;
  std::tuple<int, int, int, std::string_view> best_score;
  for (const auto& c : candidates) {
    if ((c.capacity > 0 && c.load >= c.capacity) || (skip && skip(c.name))) continue;
    int on_node = 0, shared = 0;
    for (const auto& p : peers) {
      if (p.node == c.name) ++on_node;
      if (!c.fault_domain.empty() && p.fault_domain == c.fault_domain) ++shared;
      if (!c.update_domain.empty() && p.update_domain == c.update_domain) ++shared;
    }
    std::tuple<int, int, int, std::string_view> score{on_node, shared, c.load, c.name};
    if (best == nullptr || score < best_score) {
      best = &c;
      best_score = score;
    }
  }
  if (best == nullptr) return std::nullopt;
  return std::string(best->name);
}

TEST(PlacementTest, ChoosesAsAScanOfEveryPeerWould) {
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  // Names from small sets, so that nodes, domains and peers collide; "" domains included.
  std::vector<std::string> names, fds = {"", "fd1", "fd2", "fd3"}, uds = {"", "ud1", "ud2"};
  for (int i = 0; i < 12; ++i) names.push_back("n" + std::to_string(i));
  for (int round = 0; round < 2000; ++round) {
    std::vector<NodeCandidate> candidates;
    for (int i = 0, n = pick(8); i < n; ++i) {
      candidates.push_back({names[pick(12)], fds[pick(4)], uds[pick(3)], pick(3), pick(4)});
    }
    std::vector<Peer> peers;
    for (int i = 0, n = pick(10); i < n; ++i) {
      peers.push_back({names[pick(12)], fds[pick(4)], uds[pick(3)]});
    }
    std::string skipped = names[pick(12)];
    std::function<bool(std::string_view)> skip;
    if (pick(2) == 0) skip = [&](std::string_view node) { return node == skipped; };
    ASSERT_EQ(PickNode(candidates, peers, skip), PickNodeByScan(candidates, peers, skip))
        << "round " << round;
  }
}

TEST(PlacementTest, AThousandInstancesOnAThousandNodesOneEach) {
  std::vector<std::string> names, fds, uds;
  for (int i = 0; i < 1000; ++i) {
    names.push_back("n" + std::to_string(i));
    fds.push_back("fd" + std::to_string(i % 5));
    uds.push_back("ud" + std::to_string(i % 10));
  }
  std::vector<NodeCandidate> nodes;
  for (int i = 0; i < 1000; ++i) nodes.push_back({names[i], fds[i], uds[i], 0, 0});
  std::vector<Peer> peers;
  for (int i = 0; i < 1000; ++i) {
    auto n = PickNode(nodes, peers);
    ASSERT_TRUE(n);
    for (auto& c : nodes) {
      if (c.name == *n) {
        ++c.load;
        peers.push_back({c.name, c.fault_domain, c.update_domain});
      }
    }
  }
  for (const auto& c : nodes) EXPECT_EQ(c.load, 1) << c.name;
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
