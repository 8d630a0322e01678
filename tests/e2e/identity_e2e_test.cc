// End-to-end scoped identities (issue 21) on `hafab up` as shipped: every agent and the
// gateway run with their own credential. A fake agent holding another node's credential is
// refused and changes nothing; a fake gateway that registers and then goes silent, or keeps
// heartbeating without acknowledging new routes, holds a failover no longer than its lease.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <iostream>
#include <set>
#include <thread>

#include "core/clock.h"
#include "http/http.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string Trimmed(const std::string& path) {
  std::string s = ReadFile(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A request to the controller with `credential`.
Result<http::Response> Call(Cluster& c, const std::string& method, const std::string& path,
                            const std::string& body, const std::string& credential) {
  return http::Fetch(method, Trimmed(c.state_dir() + "/api.url") + path, body,
                     {{"Authorization", "Bearer " + credential}}, 2s);
}

// The kvd failover operation other than those in `before`, once done (null until then).
json FinishedFailover(Cluster& c, const std::set<std::string>& before) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return nullptr;
  for (const auto& op : ops->value("operations", json::array())) {
    if (op.value("kind", "") == "failover" && !before.count(op.value("id", "")) &&
        op.value("state", "") == "done") {
      return op;
    }
  }
  return nullptr;
}

std::set<std::string> OpIds(Cluster& c) {
  std::set<std::string> ids;
  auto ops = c.Api("GET", "/v1/ops");
  if (ops.ok()) {
    for (const auto& op : ops->value("operations", json::array())) ids.insert(op.value("id", ""));
  }
  return ids;
}

int64_t StepMs(const json& op, const std::string& name) {
  for (const auto& s : op.value("steps", json::array())) {
    if (s.value("name", "") == name) return s.value("duration_ms", int64_t{-1});
  }
  return -1;
}

TEST(IdentityTest, AnAgentWithAnotherNodesCredentialIsRefused) {
  Cluster c;
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  // `hafab up` gave each agent its own credential, private to its user, the one `hafab token
  // create` derives from the controller's cluster key.
  for (const char* node : {"n1", "n2", "n3"}) {
    const std::string file = c.state_dir() + "/nodes/" + node + "/agent.token";
    struct stat st;
    ASSERT_EQ(stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600) << file;
    std::string out;
    ASSERT_EQ(c.Hafab({"token", "create", "--node", node, "--state-dir", c.state_dir()}, &out), 0)
        << out;
    EXPECT_EQ(out, Trimmed(file) + "\n");
  }
  auto [primary, node] = c.KvdPrimary();
  ASSERT_FALSE(node.empty());
  const std::string other = node == "n1" ? "n2" : "n1";
  const std::string stolen = Trimmed(c.state_dir() + "/nodes/" + other + "/agent.token");
  auto routes = c.Api("GET", "/v1/routes");
  ASSERT_TRUE(routes.ok());

  // A heartbeat for the primary's node saying it runs nothing, with another node's credential.
  for (int i = 0; i < 20; ++i) {
    auto r = Call(c, "POST", "/v1/agents/" + node + "/heartbeat", R"({"instances": []})", stolen);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 403) << r->body;
  }
  auto r = Call(c, "GET", "/v1/agents/" + node + "/assignments", "", stolen);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403);
  r = Call(c, "POST", "/v1/roles/kvd/failover", "{}", stolen);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403);
  r = Call(c, "POST", "/v1/agents/" + node + "/heartbeat", R"({"instances": []})",
           "agent." + node + "." + std::string(64, '0'));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  // Nothing moved: same primary, and kvd's route the same (its epoch and backends; the table's
  // version may move for other reasons, such as another role's instance turning ready).
  EXPECT_EQ(c.KvdPrimary(), std::make_pair(primary, node));
  auto after = c.Api("GET", "/v1/routes");
  ASSERT_TRUE(after.ok());
  auto kvd_route = [](const json& table) {
    json route;
    for (const auto& e : table.value("endpoints", json::array())) {
      if (e.value("role", "") != "kvd") continue;
      route["epoch"] = e.value("epoch", -1);
      for (const auto& b : e.value("backends", json::array())) {
        route["backends"].push_back({b.value("instance", ""), b.value("node", "")});
      }
    }
    return route;
  };
  EXPECT_FALSE(kvd_route(*routes).is_null());
  EXPECT_EQ(kvd_route(*after), kvd_route(*routes));
  EXPECT_TRUE(c.Stop().ok());
}

// A fake gateway registers with its own credential, acknowledging the routes of the moment;
// then it goes silent (`heartbeat_on` false) or keeps heartbeating that old version. A planned
// failover of kvd starts right after: its fence waits for the fake gateway, at most its lease
// (settings.lease_ttl 1500 ms here), then completes.
void FailoverWithAStaleGateway(bool keeps_heartbeating) {
  Cluster c;
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  std::string credential;
  ASSERT_EQ(c.Hafab({"token", "create", "--gateway", "gw-fake", "--state-dir", c.state_dir()},
                    &credential),
            0)
      << credential;
  while (!credential.empty() && credential.back() == '\n') credential.pop_back();
  auto routes = Call(c, "GET", "/v1/routes", "", credential);
  ASSERT_TRUE(routes.ok() && routes->status == 200);
  const int64_t version = json::parse(routes->body)["version"];
  const std::string beat = json{{"routes_version", version}}.dump();
  auto hb = Call(c, "POST", "/v1/gateways/gw-fake/heartbeat", beat, credential);
  ASSERT_TRUE(hb.ok() && hb->status == 200) << (hb.ok() ? hb->body : hb.status().ToString());

  std::atomic<bool> stop{false};
  std::atomic<int> granted{0}, refused_lease{0};
  std::thread stale([&] {
    while (keeps_heartbeating && !stop) {
      auto r = Call(c, "POST", "/v1/gateways/gw-fake/heartbeat", beat, credential);
      if (r.ok() && r->status == 200) {
        ++granted;
        if (json::parse(r->body).value("lease_ms", -1) == 0) ++refused_lease;
      }
      std::this_thread::sleep_for(100ms);  // a gateway's heartbeat interval, not a wait
    }
  });
  const std::set<std::string> before = OpIds(c);
  const TimePoint asked = RealClock().Now();
  auto failover = c.Api("POST", "/v1/roles/kvd/failover", "{}");
  ASSERT_TRUE(failover.ok()) << failover.status().ToString();
  json op;
  Status done = c.WaitFor(
      "the failover", [&] { return !(op = FinishedFailover(c, before)).is_null(); }, 30s);
  const auto total_ms = static_cast<int64_t>(ToMillis(RealClock().Now() - asked));
  stop = true;
  stale.join();
  ASSERT_TRUE(done.ok()) << done.ToString() << "\n" << c.Api("GET", "/v1/ops")->dump(1);
  const int64_t fence_ms = StepMs(op, "fence");
  std::cout << "stale gateway (" << (keeps_heartbeating ? "heartbeating" : "silent") << "): fence "
            << fence_ms << " ms, failover " << total_ms << " ms\n";
  // It did wait for the fake gateway (the real one acknowledges within a heartbeat), and no
  // longer than the lease plus a margin for a loaded machine.
  EXPECT_GE(fence_ms, 300);
  EXPECT_LE(fence_ms, 1500 + 700);
  if (keeps_heartbeating) {
    EXPECT_GT(granted.load(), 5);
    EXPECT_GT(refused_lease.load(), 0);  // its heartbeats were answered with no lease
  }
  auto gateways = c.Api("GET", "/v1/gateways");
  ASSERT_TRUE(gateways.ok());
  for (const auto& g : (*gateways)["gateways"]) {
    EXPECT_EQ(g["live"].get<bool>(), g["id"] == "gw1") << g.dump();
  }
  EXPECT_TRUE(c.Stop().ok());
}

TEST(IdentityTest, ASilentGatewayHoldsAFailoverAtMostItsLease) { FailoverWithAStaleGateway(false); }

TEST(IdentityTest, AGatewayThatStopsAcknowledgingHoldsAFailoverAtMostItsLease) {
  FailoverWithAStaleGateway(true);
}

}  // namespace
}  // namespace hafab::e2e
