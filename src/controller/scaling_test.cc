// Autoscaling and availability records in the controller, with fake agents and a fake
// gateway on a fake clock.
#include <gtest/gtest.h>

#include "controller/availability.h"
#include "controller/controller.h"
#include "controller/fixture.h"

namespace hafab::controller::testsupport {
namespace {

class ScalingTest : public ClusterTest {
 protected:
  manifest::Role AutoWeb() {
    manifest::Role web = WebRole(2);
    manifest::Autoscale a;
    a.min = 2;
    a.max = 6;
    a.metric = "connections";
    a.target = 10;
    a.stabilization = 10s;
    a.cooldown = 2s;
    web.autoscale = a;
    return web;
  }

  int Instances(const std::string& role = "web") {
    int n = 0;
    for (const auto& [name, inst] : c_->instances()) n += inst.role == role;
    return n;
  }

  int Events(const std::string& type) {
    int n = 0;
    for (const auto& e : c_->EventsAfter(0)) n += e.type == type;
    return n;
  }

  void SetConnections(int per_instance) {
    gateway_active_.clear();
    for (const auto& [name, inst] : c_->instances()) {
      if (inst.role == "web") gateway_active_[name] = per_instance;
    }
  }
};

TEST_F(ScalingTest, FollowsConnectionsPerInstanceUpAndBackDown) {
  Run(100ms);
  ApplyRoles({AutoWeb()});
  Run(500ms);
  ASSERT_EQ(Instances(), 2);
  SetConnections(25);  // 50 connections, 10 per instance wanted: 5 instances
  Run(1500ms);
  EXPECT_EQ(Role("web").spec.instances, 5);
  EXPECT_EQ(Instances(), 5);
  EXPECT_EQ(Running("web"), 5);
  ASSERT_EQ(Events("autoscaled-up"), 1);
  std::string reason;
  for (const auto& e : c_->EventsAfter(0)) {
    if (e.type == "autoscaled-up") reason = e.message;
  }
  EXPECT_NE(reason.find("connections_per_instance 25.0 per instance over 2 (target 10.0): 2 -> 5"),
            std::string::npos)
      << reason;
  nlohmann::json roles = c_->RolesJson();
  EXPECT_EQ(roles[0]["autoscale"]["metric"], "connections_per_instance");
  EXPECT_EQ(roles[0]["autoscale"]["desired"], 5);

  // The same 50 connections now spread over 5: stays (10 each). Load goes: back down to 2,
  // but only after the 10 s stabilisation window.
  for (const auto& [name, inst] : c_->instances()) gateway_active_[name] = 10;
  Run(3s);
  EXPECT_EQ(Role("web").spec.instances, 5);
  SetConnections(0);
  Run(8s);
  EXPECT_EQ(Role("web").spec.instances, 5);
  Run(4s);
  EXPECT_EQ(Role("web").spec.instances, 2);
  EXPECT_EQ(Instances(), 2);
  EXPECT_EQ(Events("autoscaled-up"), 1);
  EXPECT_EQ(Events("autoscaled-down"), 1);
}

TEST_F(ScalingTest, FollowsCpuUtilisationOfTheLimit) {
  Run(100ms);
  manifest::Role web = AutoWeb();
  web.autoscale->metric = "cpu";
  web.autoscale->target = 60;  // % of each instance's limit
  web.resources.cpu = 0.5;     // half a core: 30% of one core is 60% of the limit
  ApplyRoles({web});
  Run(500ms);
  for (const auto& [name, inst] : c_->instances()) agent(inst.node).SetCpu(name, 45);  // 90%
  Run(1500ms);
  EXPECT_EQ(Role("web").spec.instances, 3);  // 2 x 90% / 60% = 3
  std::string reason = c_->RolesJson()[0]["autoscale"]["reason"];
  EXPECT_NE(reason.find("cpu_percent"), std::string::npos) << reason;
  EXPECT_EQ(Events("autoscaled-up"), 1);
}

// A scale-down takes the instance out of the rotation and removes it only once the gateway
// holds no connection to it: scaling down cuts no request.
TEST_F(ScalingTest, ScaleDownDrainsTheInstanceFirst) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(500ms);
  gateway_active_["web-2"] = 2;
  gateway_alive_ = false;  // the gateway has not acknowledged the routes without web-2 yet
  int64_t stale = c_->RoutesVersion();
  (void)c_->GatewayHeartbeat("gw1", GatewayAck(stale));
  ASSERT_TRUE(c_->Scale("web", 2).ok());
  for (int i = 0; i < 10; ++i) {
    (void)c_->GatewayHeartbeat("gw1", GatewayAck(stale));  // an old table
    Run(100ms);
  }
  ASSERT_TRUE(c_->instances().count("web-2"));
  EXPECT_FALSE(Inst("web-2").routed);
  EXPECT_EQ(Running("web"), 3);
  nlohmann::json ep = Endpoint("web");
  for (const auto& b : ep["backends"]) {
    if (b["instance"] == "web-2") {
      EXPECT_EQ(b["ready"], false);
    }
  }
  // Wanted again before it is gone: back in the rotation.
  ASSERT_TRUE(c_->Scale("web", 3).ok());
  Run(300ms);
  EXPECT_TRUE(Inst("web-2").routed);
  // Once the gateway routes without it, it goes, open connections or not: they are the app's
  // to hand over when the agent's SIGTERM asks it to drain.
  ASSERT_TRUE(c_->Scale("web", 2).ok());
  gateway_alive_ = true;
  Run(300ms);
  EXPECT_FALSE(c_->instances().count("web-2"));
  EXPECT_EQ(Running("web"), 2);
  // A gateway that heartbeats but never acknowledges holds it for its lease (1.5 s) at most,
  // as a silent one does: its heartbeats no longer renew its lease.
  gateway_alive_ = false;
  stale = c_->RoutesVersion();
  ASSERT_TRUE(c_->Scale("web", 1).ok());
  for (int i = 0; i < 12; ++i) {
    (void)c_->GatewayHeartbeat("gw1", GatewayAck(stale));
    Run(100ms);
  }
  EXPECT_TRUE(c_->instances().count("web-1"));
  for (int i = 0; i < 8; ++i) {
    (void)c_->GatewayHeartbeat("gw1", GatewayAck(stale));
    Run(100ms);
  }
  EXPECT_FALSE(c_->instances().count("web-1"));
}

TEST_F(ScalingTest, ReapplyingTheManifestKeepsTheAutoscaledCount) {
  Run(100ms);
  ApplyRoles({AutoWeb()});
  Run(500ms);
  SetConnections(20);
  Run(1500ms);
  ASSERT_EQ(Role("web").spec.instances, 4);
  ApplyRoles({AutoWeb()});  // says min: 2
  EXPECT_EQ(Role("web").spec.instances, 4);
  manifest::Role narrower = AutoWeb();
  narrower.autoscale->max = 3;
  ApplyRoles({narrower});
  EXPECT_EQ(Role("web").spec.instances, 3);
}

TEST_F(ScalingTest, AutoscalingWaitsWhileARolloutRuns) {
  Run(100ms);
  ApplyRoles({AutoWeb()});
  Run(500ms);
  SetConnections(50);
  const int64_t stale = c_->RoutesVersion();
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  // The gateway reports the connections but acknowledges no newer routes: the first domain's
  // drain waits (less than the gateway's lease, 1.5 s, after which it would lose its say).
  gateway_alive_ = false;
  for (int i = 0; i < 12; ++i) {
    (void)c_->GatewayHeartbeat("gw1", GatewayAck(stale, gateway_active_));
    Run(100ms);
  }
  ASSERT_NE(c_->ActiveOp("web"), nullptr);
  EXPECT_EQ(c_->ActiveOp("web")->step, "drain");
  gateway_alive_ = true;
  EXPECT_EQ(Role("web").spec.instances, 2);
  EXPECT_NE(c_->RolesJson()[0]["autoscale"]["reason"].get<std::string>().find("held while rollout"),
            std::string::npos);
  Run(15s);  // the rollout finishes, then the autoscaler acts on the 100 connections
  EXPECT_EQ(c_->ActiveOp("web"), nullptr);
  EXPECT_EQ(Role("web").spec.instances, 6);
}

// A restarted controller has heard no agent yet: it must not publish routes that take every
// instance out of rotation (the gateways would refuse clients until the agents report).
TEST_F(ScalingTest, ANewControllerKeepsInstancesItHasNotHeardYetInRotation) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(500ms);
  NewController();
  auto ready_backends = [&] {
    int n = 0;
    nlohmann::json ep = Endpoint("web");
    for (const auto& b : ep["backends"]) n += b["ready"] == true;
    return n;
  };
  EXPECT_EQ(ready_backends(), 3);
  // n1 never reports again: once its lease (1.5 s) is over its instance leaves the rotation,
  // the others stay (reported ready).
  agent("n1").Kill();
  Run(1s);
  EXPECT_EQ(ready_backends(), 3);
  Run(1s);
  std::set<std::string> nodes;
  nlohmann::json ep = Endpoint("web");
  for (const auto& b : ep["backends"]) {
    if (b["ready"] == true) nodes.insert(b["node"].get<std::string>());
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"n2", "n3"}));
}

// Availability is judged for the roles whose routes changed: one role's outage is recorded
// while the other's steady record is left as it was; a deleted role's record is deleted.
TEST_F(ScalingTest, AvailabilityFollowsEachRoleAndForgetsADeletedOne) {
  manifest::Role api = WebRole(3);
  api.name = "api";
  api.port = 8081;
  api.endpoint = manifest::Endpoint{"127.0.0.1:8001", {}};
  api.command = "/bin/api";
  Run(100ms);
  ApplyRoles({WebRole(3), api});
  Run(3s);
  ASSERT_TRUE(c_->Sla("api", std::chrono::hours(1)).ok());
  // Every api instance crashes and fails again wherever it is started.
  for (auto& a : agents_) a->BreakCommand("/bin/api");
  for (const auto& [name, inst] : c_->instances()) {
    if (inst.role == "api") agent(inst.node).Crash(name);
  }
  Run(3s);
  std::vector<std::string> outages;
  for (const auto& e : c_->EventsAfter(0)) {
    if (e.type == "role-unroutable") outages.push_back(e.fields.at("role"));
  }
  EXPECT_EQ(outages, std::vector<std::string>{"api"});
  EXPECT_EQ((*c_->Sla("web", std::chrono::hours(1)))["unavailable_ms"], 0);
  EXPECT_GT((*c_->Sla("api", std::chrono::hours(1)))["unavailable_ms"], 0);
  EXPECT_TRUE(store_.Get(std::string(kAvailabilityPrefix) + "api").ok());
  ApplyRoles({WebRole(3)});
  Run(1s);
  EXPECT_EQ(store_.Get(std::string(kAvailabilityPrefix) + "api").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ((*c_->Sla("web", std::chrono::hours(1)))["unavailable_ms"], 0);
}

TEST_F(ScalingTest, SlaCountsTheTimeWithoutARoutableInstance) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(3s);  // the new controller's grace (one lease) has passed; the role is routable
  auto sla = c_->Sla("web", std::chrono::hours(1));
  ASSERT_TRUE(sla.ok()) << sla.status().ToString();
  EXPECT_EQ((*sla)["unavailable_ms"], 0);
  EXPECT_EQ((*sla)["availability"], 1.0);
  for (auto& a : agents_) a->Kill();
  Run(4s);  // unroutable once the leases expire (1.5 s): ~2.5 s out
  for (auto& a : agents_) a->Revive();
  Run(2s);
  EXPECT_EQ(Events("role-unroutable"), 1);
  EXPECT_EQ(Events("role-routable"), 1);
  sla = c_->Sla("web", std::chrono::hours(1));
  ASSERT_TRUE(sla.ok());
  int64_t out = (*sla)["unavailable_ms"];
  EXPECT_GE(out, 2000);
  EXPECT_LE(out, 3000);
  EXPECT_EQ((*sla)["outages"].size(), 1u);
  double observed = (*sla)["observed_ms"].get<double>();
  EXPECT_NEAR((*sla)["availability"].get<double>(), 1.0 - out / observed, 1e-9);
  // A follower's read-only view and a new controller, before its first lease has passed,
  // answer from the stored record.
  Controller view(store_, clock_, &provider_, ControllerOptions{});
  ASSERT_TRUE(view.Reload().ok());
  sla = view.Sla("web", std::chrono::hours(1));
  ASSERT_TRUE(sla.ok());
  EXPECT_EQ((*sla)["unavailable_ms"], out);
  NewController();
  sla = c_->Sla("web", std::chrono::hours(1));
  ASSERT_TRUE(sla.ok());
  EXPECT_EQ((*sla)["unavailable_ms"], out);
  // It keeps the record (and does not count its own start).
  Run(3s);
  sla = c_->Sla("web", std::chrono::hours(1));
  ASSERT_TRUE(sla.ok());
  EXPECT_EQ((*sla)["unavailable_ms"], out);
  // The window can exclude it.
  sla = c_->Sla("web", std::chrono::seconds(4));
  EXPECT_EQ((*sla)["unavailable_ms"], 0);
  EXPECT_EQ(c_->Sla("nope", std::chrono::hours(1)).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace hafab::controller::testsupport
