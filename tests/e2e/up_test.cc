// End-to-end: `hafab up` on a three-node manifest, writes to kvd through the gateway,
// `hafab kill` of the primary's node, the failover seen in the operations, every
// acknowledged write read back, then a clean stop with no process left behind.
#include <gtest/gtest.h>

#include <set>

#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A kvd failover away from `from_node` that is not one of `before` (ids seen earlier) and ended.
bool FailoverDone(Cluster& c, const std::string& from_node, const std::set<std::string>& before) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return false;
  for (const auto& op : ops->value("operations", json::array())) {
    if (op.value("kind", "") == "failover" && op.value("role", "") == "kvd" &&
        op.value("old_node", "") == from_node && !before.count(op.value("id", "")) &&
        op.value("state", "") == "done") {
      return true;
    }
  }
  return false;
}

std::set<std::string> OpIds(Cluster& c) {
  std::set<std::string> ids;
  auto ops = c.Api("GET", "/v1/ops");
  if (ops.ok()) {
    for (const auto& op : ops->value("operations", json::array())) ids.insert(op.value("id", ""));
  }
  return ids;
}

TEST(UpTest, NodeKillFailsOverWithoutLosingWrites) {
  Cluster c;
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  KvChecker checker(c.kvd_url(), 10ms);
  checker.Start();
  ASSERT_TRUE(c.WaitFor(
                   "100 acknowledged writes", [&] { return checker.acked() >= 100; }, 20s)
                  .ok());

  auto [primary, node] = c.KvdPrimary();
  ASSERT_FALSE(node.empty()) << "no kvd primary in /v1/status";
  std::set<std::string> ops_before = OpIds(c);
  std::string out;
  ASSERT_EQ(c.Hafab({"kill", node, "--state-dir", c.state_dir()}, &out), 0) << out;

  ASSERT_TRUE(c.WaitFor(
                   "a finished kvd failover away from " + node,
                   [&] { return FailoverDone(c, node, ops_before); }, 30s)
                  .ok());
  int64_t before = checker.acked();
  ASSERT_TRUE(c.WaitFor(
                   "writes to resume", [&] { return checker.acked() > before + 50; }, 20s)
                  .ok());
  checker.Stop();

  auto [new_primary, new_node] = c.KvdPrimary();
  EXPECT_NE(new_node, node);
  CheckReport rep = checker.Check();
  EXPECT_EQ(rep.lost, 0) << rep.ToString();
  EXPECT_EQ(rep.split_brain, 0) << rep.ToString();

  // The old node comes back (revived by `up`) and rejoins as a stopped standby at the new epoch.
  ASSERT_TRUE(c.WaitFor(
                   "the old primary to rejoin as standby",
                   [&] {
                     auto st = c.Api("GET", "/v1/status");
                     if (!st.ok()) return false;
                     for (const auto& i : st->value("instances", json::array())) {
                       if (i.value("instance", "") == primary) {
                         return i.value("kind", "") == "standby" &&
                                i.value("state", "") == "stopped" && i.value("epoch", 0) >= 2;
                       }
                     }
                     return false;
                   },
                   20s)
                  .ok());

  ASSERT_EQ(c.Hafab({"ops", "--state-dir", c.state_dir()}, &out), 0) << out;
  EXPECT_NE(out.find("failover"), std::string::npos) << out;
  EXPECT_NE(out.find("wait_detached"), std::string::npos) << out;
  ASSERT_EQ(c.Hafab({"status", "--state-dir", c.state_dir()}, &out), 0) << out;
  EXPECT_NE(out.find(new_primary), std::string::npos) << out;
  // The volume moved, so kvd logged on both nodes: `hafab logs` shows both.
  ASSERT_EQ(c.Hafab({"logs", "kvd", "--state-dir", c.state_dir()}, &out), 0) << out;
  EXPECT_NE(out.find("[" + node + "/" + primary + "]"), std::string::npos) << out;
  EXPECT_NE(out.find("[" + new_node + "/" + new_primary + "]"), std::string::npos) << out;

  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace hafab::e2e
