// A small cluster for controller unit tests: a controller on a FakeClock and MemoryStore,
// three fake agents in different fault/update domains, and one fake gateway. The fixture is
// the controller tests' own; the doubles it is made of are the shared ones of src/testing/.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "controller/controller.h"
#include "testing/fake_agent.h"
#include "testing/fake_clock.h"
#include "testing/fake_provider.h"
#include "testing/memory_store.h"

namespace hafab::controller::testsupport {

using namespace std::chrono_literals;
using ::hafab::testing::FakeAgent;
using ::hafab::testing::FakeProvider;
using ::hafab::testing::GatewayAck;
using ::hafab::testing::MemoryStore;

inline manifest::Role KvdRole(int instances = 2) {
  manifest::Role r;
  r.name = "kvd";
  r.mode = manifest::RoleMode::kActivePassive;
  r.command = "/bin/kvd";
  r.instances = instances;
  r.port = 7101;
  r.volume = "kvd-data";
  r.endpoint = manifest::Endpoint{"127.0.0.1:7000", {"127.0.0.0/8", "web"}};
  manifest::Probe p;
  r.probes.readiness = p;
  return r;
}

inline manifest::Role WebRole(int instances = 3) {
  manifest::Role r;
  r.name = "web";
  r.mode = manifest::RoleMode::kLoadBalanced;
  r.command = "/bin/web";
  r.instances = instances;
  r.port = 8080;
  r.endpoint = manifest::Endpoint{"127.0.0.1:8000", {}};
  return r;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    agents_.push_back(std::make_unique<FakeAgent>("n1", "fd1", "ud1", &provider_));
    agents_.push_back(std::make_unique<FakeAgent>("n2", "fd2", "ud2", &provider_));
    agents_.push_back(std::make_unique<FakeAgent>("n3", "fd3", "ud3", &provider_));
    NewController();
  }

  // A new controller object on the same store: what a restarted process sees.
  void NewController(std::string crash_at = "", bool drive_ops = true) {
    ControllerOptions o = options_;
    o.crash_at_step = std::move(crash_at);
    o.crash_exits = false;
    o.drive_ops = drive_ops;
    c_ = std::make_unique<Controller>(store_, clock_, &provider_, o);
    ASSERT_TRUE(c_->Start().ok());
  }

  void ApplyRoles(std::vector<manifest::Role> roles) {
    manifest::Manifest m;
    m.roles = std::move(roles);
    auto r = c_->Apply(m);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  FakeAgent& agent(const std::string& n) {
    for (auto& a : agents_) {
      if (a->node() == n) return *a;
    }
    ADD_FAILURE() << "no agent " << n;
    return *agents_[0];
  }

  void GatewayHeartbeat() {
    if (gateway_alive_) {
      (void)c_->GatewayHeartbeat("gw1", GatewayAck(c_->RoutesVersion(), gateway_active_));
    }
  }

  // Advances time in heartbeat intervals: agents and gateway report, the controller ticks.
  void Run(Duration d) {
    for (Duration t{}; t < d; t += 100ms) {
      clock_.Advance(100ms);
      if (c_->crashed()) return;
      for (auto& a : agents_) a->Step(*c_);
      GatewayHeartbeat();
      c_->Tick();
    }
  }

  // A sample of the controller's /metrics, `name{labels}` as printed; -1 when absent.
  double Metric(const std::string& sample) {
    const std::string text = "\n" + c_->MetricsText();
    const size_t at = text.find("\n" + sample + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + sample.size() + 2));
  }
  const InstanceRecord& Inst(const std::string& name) { return c_->instances().at(name); }
  const RoleRecord& Role(const std::string& name) { return c_->roles().at(name); }
  std::string PrimaryNode(const std::string& role = "kvd") { return Inst(Role(role).primary).node; }
  nlohmann::json Endpoint(const std::string& role) {
    nlohmann::json routes = wire::ToJson(c_->Routes());
    for (const auto& e : routes["endpoints"]) {
      if (e["role"] == role) return e;
    }
    return nullptr;
  }
  // How many nodes run an instance of `role` with run: true.
  int Running(const std::string& role) {
    int n = 0;
    for (const auto& [name, inst] : c_->instances()) {
      if (inst.role == role && agent(inst.node).State(name) == "running") ++n;
    }
    return n;
  }

  testing::FakeClock clock_;
  MemoryStore store_{clock_};
  FakeProvider provider_;
  ControllerOptions options_;  // NewController's, but for the crash and drive_ops members
  std::unique_ptr<Controller> c_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
  bool gateway_alive_ = true;
  std::map<std::string, uint64_t> gateway_active_;  // instance -> connections gw1 reports
};

}  // namespace hafab::controller::testsupport
