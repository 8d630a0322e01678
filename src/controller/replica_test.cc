// Replicas of the controller on one store (FakeClock, fake agents, fake provider): the
// follower's answers (reads from the store, 503 "not leader" with the leader's URL for the
// rest), and a leader that dies in the middle of a failover: the next one resumes the
// journaled operation, gives every node a full lease first, and finishes it.
#include "controller/replica.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "controller/fixture.h"
#include "core/json.h"
#include "testing/fake_clock.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeAgent;

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agents_.push_back(std::make_unique<FakeAgent>("n1", "fd1", "ud1", &provider_));
    agents_.push_back(std::make_unique<FakeAgent>("n2", "fd2", "ud2", &provider_));
    agents_.push_back(std::make_unique<FakeAgent>("n3", "fd3", "ud3", &provider_));
  }

  Replica& Add(const std::string& id, const std::string& crash_at = "") {
    ReplicaOptions o;
    o.leader.id = id;
    o.leader.url = "http://" + id + ":7070";
    o.leader.ttl = 2s;
    o.leader.watch_poll = Duration::zero();  // SqliteStore's watch answers at once
    o.controller.crash_at_step = crash_at;
    o.controller.crash_exits = false;
    replicas_.push_back(
        std::make_unique<Replica>(store_, clock_, &provider_, Tokens{"admin", "read", "key"}, o));
    alive_.push_back(true);
    return *replicas_.back();
  }

  Controller* Leader() {
    Controller* found = nullptr;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (!alive_[i] || replicas_[i]->controller() == nullptr) continue;
      EXPECT_EQ(found, nullptr) << "two leaders";
      found = replicas_[i]->controller();
    }
    return found;
  }

  // Time passes in 100 ms steps: live replicas tick, agents talk to the leader (if any).
  void Run(Duration d) {
    for (Duration t{}; t < d; t += 100ms) {
      for (int i = 0; i < 5; ++i) {
        clock_.Advance(20ms);
        for (size_t r = 0; r < replicas_.size(); ++r) {
          if (alive_[r]) replicas_[r]->Tick();
        }
      }
      Controller* c = Leader();
      if (c != nullptr && !c->crashed()) {
        for (auto& a : agents_) a->Step(*c);
        (void)c->GatewayHeartbeat("gw1", testing::GatewayAck(c->RoutesVersion()));
      }
    }
  }

  // Sends a request to a replica; the answer is synchronous except for long-polls.
  http::Response Call(Replica& r, const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& token = "admin") {
    http::Request req;
    req.method = method;
    req.path = path;
    req.target = path;
    req.body = body;
    req.headers["authorization"] = "Bearer " + token;
    http::Response out;
    out.status = 0;
    r.Handle(std::move(req), [&out](http::Response resp) { out = std::move(resp); });
    return out;
  }

  void Apply(Controller& c) {
    manifest::Manifest m;
    m.cluster = "t";
    m.roles.push_back(testsupport::KvdRole(3));
    auto r = c.Apply(m);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::string PrimaryNode(Controller& c) {
    const RoleRecord& role = c.roles().at("kvd");
    return c.instances().at(role.primary).node;
  }

  FakeAgent& agent(const std::string& n) {
    for (auto& a : agents_) {
      if (a->node() == n) return *a;
    }
    return *agents_[0];
  }

  testing::FakeClock clock_;
  testing::MemoryStore store_{clock_};
  testing::FakeProvider provider_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<bool> alive_;
};

TEST_F(ReplicaTest, FollowerServesReadsAndSendsTheRestToTheLeader) {
  Replica& a = Add("a");
  Replica& b = Add("b");
  Run(200ms);
  ASSERT_TRUE(a.leading());
  ASSERT_FALSE(b.leading());
  Apply(*a.controller());
  Run(2s);

  // Reads: from the store, the same records the leader has.
  http::Response roles = Call(b, "GET", "/v1/roles");
  ASSERT_EQ(roles.status, 200) << roles.body;
  EXPECT_EQ(json::parse(roles.body)["roles"][0]["name"], "kvd");
  EXPECT_EQ(roles.Header("X-Hafab-Leader"), "http://a:7070");
  http::Response status = Call(b, "GET", "/v1/status", "", "read");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(json::parse(status.body)["instances"].size(), 3u);

  // Writes, heartbeats, assignments and routes: 503 naming the leader.
  for (auto [method, path] :
       {std::pair{"POST", "/v1/agents/n1/heartbeat"},
        std::pair{"POST", "/v1/gateways/gw1/heartbeat"},
        std::pair{"GET", "/v1/agents/n1/assignments"}, std::pair{"GET", "/v1/routes"},
        std::pair{"POST", "/v1/roles/kvd/failover"}, std::pair{"POST", "/v1/apply"}}) {
    http::Response r = Call(b, method, path, "{}");
    EXPECT_EQ(r.status, 503) << method << " " << path;
    json j = json::parse(r.body);
    EXPECT_EQ(j["error"], "not leader");
    EXPECT_EQ(j["leader"], "http://a:7070");
  }
  // The leader answers them.
  http::Response hb =
      Call(a, "POST", "/v1/agents/n1/heartbeat", Dump(wire::ToJson(agent("n1").Heartbeat())));
  EXPECT_EQ(hb.status, 200) << hb.body;
  // Bad tokens are refused before "not leader" is said, and a write with the read token
  // as the leader refuses it; the read token's GETs go to the leader.
  EXPECT_EQ(Call(b, "POST", "/v1/roles/kvd/failover", "{}", "nope").status, 401);
  EXPECT_EQ(Call(b, "POST", "/v1/roles/kvd/failover", "{}", "read").status, 403);
  EXPECT_EQ(Call(a, "POST", "/v1/roles/kvd/failover", "{}", "read").status, 403);
  EXPECT_EQ(Call(b, "GET", "/v1/routes", "", "read").status, 503);

  json la = json::parse(Call(a, "GET", "/v1/leader").body);
  json lb = json::parse(Call(b, "GET", "/v1/leader", "", "read").body);
  EXPECT_EQ(la["role"], "leader");
  EXPECT_EQ(lb["role"], "follower");
  EXPECT_EQ(lb["leader"]["url"], "http://a:7070");
  EXPECT_EQ(la["terms"], 1);
}

// The leader dies right after recording the start of each of these steps (an in-process
// "crash": it persists nothing more and stops ticking); the other replica is elected when
// the leader key's lease ends, resumes the operation and finishes it.
class ReplicaTakeoverTest : public ReplicaTest,
                            public ::testing::WithParamInterface<const char*> {};

TEST_P(ReplicaTakeoverTest, NewLeaderFinishesTheFailover) {
  const std::string step = GetParam();
  Replica& a = Add("a", step);
  Replica& b = Add("b");
  Run(200ms);
  ASSERT_TRUE(a.leading());
  Apply(*a.controller());
  Run(3s);
  Controller* ca = a.controller();
  const std::string old_node = PrimaryNode(*ca);
  const std::string old_primary = ca->roles().at("kvd").primary;
  ASSERT_EQ(agent(old_node).State(old_primary), "running");

  agent(old_node).Kill();
  for (int i = 0; i < 100 && !ca->crashed(); ++i) Run(100ms);
  ASSERT_TRUE(ca->crashed()) << "never reached step " << step;
  alive_[0] = false;  // SIGKILL: no more ticks, no resignation
  TimePoint died = clock_.Now();

  for (int i = 0; i < 100 && !b.leading(); ++i) Run(100ms);
  ASSERT_TRUE(b.leading());
  Duration gap = clock_.Now() - died;
  EXPECT_LE(gap, 2s + 200ms) << "the leader key outlived its ttl";
  Controller* cb = b.controller();
  // The journaled failover was taken over by the new leader (it may be done already: the
  // last steps finish within one tick with fake agents).
  int resumed = 0;
  for (const auto& [id, op] : cb->ops()) resumed += op.owner == cb->id() && op.role == "kvd";
  EXPECT_EQ(resumed, 1) << "the journaled failover was not resumed";

  for (int i = 0; i < 100 && cb->ActiveOp("kvd") != nullptr; ++i) Run(100ms);
  ASSERT_EQ(cb->ActiveOp("kvd"), nullptr) << "the failover did not finish";
  const std::string new_node = PrimaryNode(*cb);
  EXPECT_NE(new_node, old_node);
  auto where = provider_.Describe("kvd-data");
  ASSERT_TRUE(where.ok());
  EXPECT_EQ(where->node, new_node);
  int running = 0;
  for (auto& ag : agents_) {
    for (const auto& [name, inst] : cb->instances()) {
      if (inst.node == ag->node() && ag->State(name) == "running") ++running;
    }
  }
  EXPECT_EQ(running, 1);
  bool resumed_event = false;
  for (const auto& e : cb->EventsAfter(0)) resumed_event |= e.type == "op-resumed";
  EXPECT_TRUE(resumed_event);
}

INSTANTIATE_TEST_SUITE_P(Steps, ReplicaTakeoverTest,
                         ::testing::Values("fence", "stop", "detach", "promote", "wait_detached",
                                           "attach", "start", "route"));

// A follower sends an agent or a gateway to the leader only for what its credential allows;
// the rest is refused as the leader would (403), and /v1/leader answers every credential.
TEST_F(ReplicaTest, FollowerRefusesComponentCredentialsOutsideTheirScope) {
  Replica& a = Add("a");
  Replica& b = Add("b");
  Run(200ms);
  ASSERT_FALSE(b.leading());
  const std::string n1 = AgentCredential("key", "n1");
  const std::string gw1 = GatewayCredential("key", "gw1");
  EXPECT_EQ(Call(b, "POST", "/v1/agents/n1/heartbeat", "{}", n1).status, 503);
  EXPECT_EQ(Call(b, "GET", "/v1/agents/n1/assignments", "", n1).status, 503);
  EXPECT_EQ(Call(b, "POST", "/v1/agents/n2/heartbeat", "{}", n1).status, 403);
  EXPECT_EQ(Call(b, "GET", "/v1/status", "", n1).status, 403);
  EXPECT_EQ(Call(b, "GET", "/v1/routes", "", gw1).status, 503);
  EXPECT_EQ(Call(b, "POST", "/v1/gateways/gw1/heartbeat", "{}", gw1).status, 503);
  EXPECT_EQ(Call(b, "POST", "/v1/gateways/gw2/heartbeat", "{}", gw1).status, 403);
  EXPECT_EQ(Call(b, "POST", "/v1/agents/n1/heartbeat", "{}", AgentCredential("other", "n1")).status,
            401);
  EXPECT_EQ(Call(b, "GET", "/v1/leader", "", n1).status, 200);
  EXPECT_EQ(Call(a, "GET", "/v1/leader", "", gw1).status, 200);
}

TEST_F(ReplicaTest, NewLeaderGivesEveryNodeAFullLeaseBeforeJudgingIt) {
  Replica& a = Add("a");
  Replica& b = Add("b");
  Run(200ms);
  Apply(*a.controller());
  Run(3s);
  alive_[0] = false;  // the leader dies; agents keep heartbeating but no one answers
  for (int i = 0; i < 100 && !b.leading(); ++i) Run(100ms);
  ASSERT_TRUE(b.leading());
  // Every agent had been silent for about the leader ttl (2 s > lease_ttl 1.5 s): still,
  // the new leader declares none of them down, and they answer it.
  for (const auto& n : b.controller()->nodes()) EXPECT_FALSE(n.second.down) << n.first;
  Run(3s);
  for (const auto& n : b.controller()->nodes()) EXPECT_FALSE(n.second.down) << n.first;
  EXPECT_EQ(b.controller()->ActiveOp("kvd"), nullptr);
}

TEST_F(ReplicaTest, ShutdownHandsOverWithoutWaitingForTheLease) {
  Replica& a = Add("a");
  Replica& b = Add("b");
  Run(200ms);
  ASSERT_TRUE(a.leading());
  a.Shutdown();
  alive_[0] = false;
  clock_.Advance(20ms);
  b.Tick();
  EXPECT_TRUE(b.leading());
}

}  // namespace
}  // namespace hafab::controller
