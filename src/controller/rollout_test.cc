// Rolling upgrades with fake agents and a fake gateway on a fake clock: one update domain
// at a time, drained before stopped, rolled back when the new version fails, resumable by a
// new controller at every recorded step.
#include "controller/rollout.h"

#include <gtest/gtest.h>

#include "controller/controller.h"
#include "controller/fixture.h"

namespace hafab::controller::testsupport {
namespace {

using nlohmann::json;

class RolloutTest : public ClusterTest {
 protected:
  void StartWeb(int per_wave = 1, Duration ready_timeout = 3s) {
    Run(100ms);
    manifest::Role web = WebRole(6);  // two per node: n1..n3 in ud1..ud3
    web.version = "1";
    web.update.max_unavailable_domains = per_wave;
    web.update.ready_timeout = ready_timeout;
    ApplyRoles({web});
    Run(500ms);
    ASSERT_EQ(Running("web"), 6);
  }

  // Checked after every round: the gateway never routes to an instance that is not running;
  // no more than `per_wave` update domains have an instance out of service at once.
  void CheckInvariants(int per_wave = 1) {
    json e = Endpoint("web");
    std::set<std::string> routable;
    for (const auto& b : e["backends"]) {
      std::string inst = b["instance"], node = b["node"];
      if (b["ready"] == true) {
        routable.insert(inst);
        EXPECT_EQ(agent(node).State(inst), "running") << inst << " routed but not running";
      }
    }
    std::set<std::string> down_domains;
    for (const auto& [name, inst] : c_->instances()) {
      if (inst.role == "web" && !routable.count(name)) {
        down_domains.insert(c_->nodes().at(inst.node).update_domain);
      }
    }
    EXPECT_LE(static_cast<int>(down_domains.size()), per_wave);
    max_down_ = std::max(max_down_, static_cast<int>(down_domains.size()));
  }

  void RunChecked(Duration d, int per_wave = 1) {
    for (Duration t{}; t < d; t += 100ms) {
      Run(100ms);
      if (c_->crashed()) return;
      CheckInvariants(per_wave);
    }
  }

  const Operation* LastOp() {
    const Operation* last = nullptr;
    for (const auto& [id, op] : c_->ops()) {
      if (last == nullptr || std::stoll(id.substr(3)) > std::stoll(last->id.substr(3))) {
        last = &op;
      }
    }
    return last;
  }

  void RunUntilFinished(Duration limit = 30s, int per_wave = 1) {
    for (Duration t{}; t < limit; t += 100ms) {
      RunChecked(100ms, per_wave);
      const Operation* op = LastOp();
      if (op != nullptr && op->state != wire::OpState::kRunning) return;
    }
  }

  int Commands(const std::string& command) {
    int n = 0;
    for (const auto& [name, inst] : c_->instances()) {
      if (inst.role == "web" && agent(inst.node).Command(name) == command) ++n;
    }
    return n;
  }

  // The order in which domains started their "stop" step.
  std::vector<std::string> StopOrder(const Operation& op) {
    std::vector<std::string> out;
    for (const auto& s : op.steps) {
      if (s.name.rfind("stop ", 0) == 0) out.push_back(s.name.substr(5));
    }
    return out;
  }

  int max_down_ = 0;
};

TEST_F(RolloutTest, UpgradeGoesOneUpdateDomainAtATime) {
  StartWeb();
  auto r = c_->Upgrade("web", {{"command", "/bin/web2"}, {"version", "2"}}, false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Nothing restarted at once: once the agents have synced, every instance still runs the
  // old command (the first domain waits for the gateway to drain it).
  for (auto& a : agents_) a->Step(*c_);
  EXPECT_EQ(Commands("/bin/web"), 6);
  RunUntilFinished();
  const Operation* op = LastOp();
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->kind(), wire::OpKind::kRollout);
  EXPECT_EQ(op->state, wire::OpState::kDone) << op->error;
  EXPECT_FALSE(op->rollout().rollback);
  EXPECT_EQ(StopOrder(*op), (std::vector<std::string>{"ud1", "ud2", "ud3"}));
  for (const auto& d : op->rollout().domains)
    EXPECT_EQ(op->rollout().domain_state.at(d), wire::DomainState::kDone) << d;
  EXPECT_EQ(Commands("/bin/web2"), 6);
  EXPECT_EQ(Role("web").spec.version, "2");
  EXPECT_EQ(max_down_, 1);
  for (const auto& [name, inst] : c_->instances()) {
    EXPECT_TRUE(inst.routed) << name;
    EXPECT_EQ(inst.revision, Role("web").revision) << name;
  }
  // Every step per domain is in the timeline, in order.
  std::vector<std::string> names;
  for (const auto& s : op->steps) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"drain ud1", "stop ud1", "start ud1", "route ud1",
                                             "drain ud2", "stop ud2", "start ud2", "route ud2",
                                             "drain ud3", "stop ud3", "start ud3", "route ud3"}));
  bool done_event = false;
  for (const auto& e : c_->EventsAfter(0)) done_event |= e.type == "rollout-done";
  EXPECT_TRUE(done_event);
}

TEST_F(RolloutTest, MaxUnavailableDomainsTwoMovesTwoAtATime) {
  StartWeb(2);
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  RunUntilFinished(30s, 2);
  const Operation* op = LastOp();
  EXPECT_EQ(op->state, wire::OpState::kDone) << op->error;
  EXPECT_EQ(StopOrder(*op), (std::vector<std::string>{"ud1,ud2", "ud3"}));
  EXPECT_EQ(max_down_, 2);
}

TEST_F(RolloutTest, DrainWaitsForTheGatewaysAcknowledgementNotForOpenConnections) {
  StartWeb();
  std::string in_ud1;
  for (const auto& [name, inst] : c_->instances()) {
    if (inst.node == "n1") in_ud1 = name;
  }
  gateway_active_[in_ud1] = 3;
  gateway_alive_ = false;  // a live gateway that has not acknowledged yet
  (void)c_->GatewayHeartbeat("gw1", GatewayAck(1));
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(100ms);
    for (auto& a : agents_) a->Step(*c_);
    (void)c_->GatewayHeartbeat("gw1", GatewayAck(1));  // an old table
    c_->Tick();
  }
  EXPECT_EQ(LastOp()->step, "drain");
  EXPECT_EQ(agent("n1").State(in_ud1), "running");
  // It acknowledges: no new connection goes to in_ud1. Its 3 open connections are the app's
  // to close (SIGTERM: Connection: close after the next response), so the wave stops it now.
  gateway_alive_ = true;
  Run(300ms);
  bool stopping = false;
  for (const auto& s : LastOp()->steps) stopping |= s.name == "stop ud1";
  EXPECT_TRUE(stopping) << "the wave went on to stop " << in_ud1;
  RunUntilFinished();
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
}

TEST_F(RolloutTest, ConnectionsThatStayOpenDoNotSlowTheRollout) {
  StartWeb();
  for (const auto& [name, inst] : c_->instances()) gateway_active_[name] = 1;  // never close
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  RunUntilFinished(60s);
  const Operation* op = LastOp();
  EXPECT_EQ(op->state, wire::OpState::kDone);
  EXPECT_LT(op->steps[0].duration_ms, 1000) << "the drain does not wait stop_grace (5 s)";
}

TEST_F(RolloutTest, BrokenVersionIsRolledBackAutomatically) {
  StartWeb();
  for (auto& a : agents_) a->BreakCommand("/bin/broken");
  ASSERT_TRUE(c_->Upgrade("web", {{"command", "/bin/broken"}, {"version", "2"}}, false).ok());
  RunUntilFinished();
  const Operation* op = LastOp();
  EXPECT_EQ(op->state, wire::OpState::kDone) << op->error;
  EXPECT_TRUE(op->rollout().rollback);
  EXPECT_NE(op->reason.find("rolled back: web-"), std::string::npos) << op->reason;
  EXPECT_EQ(Commands("/bin/web"), 6);
  EXPECT_EQ(Role("web").spec.command, "/bin/web");
  EXPECT_EQ(Role("web").spec.version, "1");
  EXPECT_EQ(max_down_, 1);
  // Only the first domain ever ran the broken version.
  EXPECT_EQ(StopOrder(*op), (std::vector<std::string>{"ud1", "ud1"}));
  bool rollback_event = false;
  for (const auto& e : c_->EventsAfter(0)) rollback_event |= e.type == "rollout-rollback";
  EXPECT_TRUE(rollback_event);
}

TEST_F(RolloutTest, NotReadyWithinTheDeadlineRollsBack) {
  StartWeb(1, 1s);  // shorter than the node's lease: no relocation comes to the rescue
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  // ud1's node dies once its instances are stopped: they never come back ready there.
  for (int i = 0; i < 100 && LastOp()->step != "start"; ++i) RunChecked(100ms);
  ASSERT_EQ(LastOp()->step, "start");
  agent("n1").Kill();
  // The node's instances are relocated to ud2 and ud3 once its lease expires: a failure,
  // not the rollout, takes a second domain down for a moment (per_wave 3: not checked).
  RunUntilFinished(60s, 3);
  const Operation* op = LastOp();
  EXPECT_TRUE(op->rollout().rollback);
  EXPECT_NE(op->reason.find("not ready within 1000ms"), std::string::npos) << op->reason;
  EXPECT_EQ(Role("web").spec.version, "1");
}

// update.ready_timeout runs on the monotonic clock: a wall clock set an hour ahead does not
// roll back an upgrade whose instances are merely starting.
TEST_F(RolloutTest, AWallClockJumpDoesNotExpireTheReadyDeadline) {
  StartWeb(1, 3s);
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  for (int i = 0; i < 100 && LastOp()->step != "start"; ++i) RunChecked(100ms);
  ASSERT_EQ(LastOp()->step, "start");
  clock_.JumpWall(1h);
  RunUntilFinished();
  EXPECT_FALSE(LastOp()->rollout().rollback) << LastOp()->reason;
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
  EXPECT_EQ(Role("web").spec.version, "2");
}

TEST_F(RolloutTest, RollbackOnDemandMidwayAndAfterwards) {
  StartWeb();
  ASSERT_TRUE(c_->Upgrade("web", {{"command", "/bin/web2"}}, false).ok());
  for (int i = 0; i < 100 && LastOp()->rollout().wave < 1; ++i) RunChecked(100ms);
  auto r = c_->Upgrade("web", json(), true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["operation"], LastOp()->id);  // the same operation turns back
  RunUntilFinished();
  EXPECT_TRUE(LastOp()->rollout().rollback);
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
  EXPECT_EQ(Commands("/bin/web"), 6);
  // Afterwards: undo the last change again (back to web2), as a new rollout.
  r = c_->Upgrade("web", json(), true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  RunUntilFinished();
  EXPECT_EQ(Commands("/bin/web2"), 6);
}

TEST_F(RolloutTest, ReappliedManifestRollsInsteadOfRestarting) {
  StartWeb();
  manifest::Role web = Role("web").spec;
  web.version = "2";
  web.env["COLOUR"] = "blue";
  ApplyRoles({web});
  const Operation* op = LastOp();
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->kind(), wire::OpKind::kRollout);
  EXPECT_EQ(op->reason, "manifest applied");
  RunUntilFinished();
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
  EXPECT_EQ(max_down_, 1);
  // The same manifest again changes nothing; a change of instance count alone rolls nothing.
  size_t ops = c_->ops().size();
  ApplyRoles({web});
  web.instances = 7;
  ApplyRoles({web});
  EXPECT_EQ(c_->ops().size(), ops);
  // A spec change while a rollout runs is refused, whole.
  web.version = "3";
  ApplyRoles({web});
  web.version = "4";
  manifest::Manifest m;
  m.roles = {web};
  auto refused = c_->Apply(m);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kConflict);
  EXPECT_NE(refused.status().message().find("apply again when it is done"), std::string::npos);
  EXPECT_EQ(Role("web").spec.version, "3");
}

// A drain hook is part of what the instances run: a change rolls, and a rollback restores
// the old one.
TEST_F(RolloutTest, DrainHookChangeRollsOutAndBack) {
  StartWeb();
  manifest::Role web = Role("web").spec;
  web.drain = manifest::DrainHook{{"web-ctl", "drain"}, 2s};
  ApplyRoles({web});
  ASSERT_NE(LastOp(), nullptr);
  EXPECT_EQ(LastOp()->kind(), wire::OpKind::kRollout);
  RunUntilFinished();
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
  EXPECT_EQ(Role("web").spec.drain, web.drain);
  for (const auto& [name, inst] : c_->instances()) {
    auto a = c_->Assignments(inst.node)->at("assignments");
    for (const auto& x : a) EXPECT_EQ(x["drain"]["command"][0], "web-ctl") << x.dump();
  }
  ASSERT_TRUE(c_->Upgrade("web", json::object(), /*rollback=*/true).ok());
  RunUntilFinished();
  EXPECT_FALSE(Role("web").spec.drain.has_value());
}

TEST_F(RolloutTest, UpgradeValidates) {
  StartWeb();
  ApplyRoles({Role("web").spec, KvdRole()});
  EXPECT_EQ(c_->Upgrade("nope", {{"version", "2"}}, false).status().code(), StatusCode::kNotFound);
  auto ap = c_->Upgrade("kvd", {{"version", "2"}}, false);
  EXPECT_EQ(ap.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ap.status().message().find("active-passive"), std::string::npos);
  auto same = c_->Upgrade("web", {{"version", "1"}}, false);
  EXPECT_EQ(same.status().message(), "set: nothing changes for role web");
  auto bad = c_->Upgrade("web", {{"colour", "x"}}, false);
  EXPECT_EQ(bad.status().message(), "set.colour: unknown; allowed: command, args, env, version");
  auto args = c_->Upgrade("web", {{"args", "x"}}, false);
  EXPECT_EQ(args.status().message(), "set.args: must be an array of strings");
  auto none = c_->Upgrade("web", json(), true);
  EXPECT_EQ(none.status().message(), "rollback: role web has no previous version to roll back to");
  ASSERT_TRUE(c_->Upgrade("web", {{"env", {{"A", "1"}}}}, false).ok());
  EXPECT_EQ(c_->Upgrade("web", {{"version", "3"}}, false).status().code(), StatusCode::kConflict);
  EXPECT_EQ(Role("web").spec.env.at("A"), "1");
}

class RolloutResumeTest : public RolloutTest, public ::testing::WithParamInterface<const char*> {};

// The controller "dies" right after recording the start of a step of the first domain; a
// new controller on the same store resumes there and finishes, one domain at a time.
TEST_P(RolloutResumeTest, NewControllerResumesAtTheRecordedStep) {
  StartWeb();
  NewController(GetParam());
  Run(200ms);
  (void)c_->Upgrade("web", {{"command", "/bin/web2"}}, false);  // may "crash" inside
  for (int i = 0; i < 100 && !c_->crashed(); ++i) RunChecked(100ms);
  ASSERT_TRUE(c_->crashed()) << "never reached step " << GetParam();
  std::string id = LastOp()->id;
  ASSERT_EQ(LastOp()->step, GetParam());
  clock_.Advance(300ms);
  NewController();
  EXPECT_EQ(c_->ops().at(id).owner, c_->id());
  RunUntilFinished();
  const Operation& op = c_->ops().at(id);
  EXPECT_EQ(op.state, wire::OpState::kDone) << op.error;
  EXPECT_FALSE(op.rollout().rollback);
  EXPECT_EQ(Commands("/bin/web2"), 6);
  EXPECT_EQ(max_down_, 1);
  int begun = 0;
  for (const auto& s : op.steps) begun += s.name == std::string(GetParam()) + " ud1";
  EXPECT_EQ(begun, 1);  // resumed, not restarted
}

INSTANTIATE_TEST_SUITE_P(AllSteps, RolloutResumeTest, ::testing::ValuesIn(kRolloutSteps));

// Each step run twice leaves the same state (the journal may replay any of them).
TEST_F(RolloutTest, EveryStepIsIdempotent) {
  StartWeb();
  NewController("", /*drive_ops=*/false);
  Run(200ms);
  ASSERT_TRUE(c_->Upgrade("web", {{"version", "2"}}, false).ok());
  std::string id = LastOp()->id;
  for (int guard = 0; guard < 400 && c_->ops().at(id).state == wire::OpState::kRunning; ++guard) {
    std::string r = c_->RunStepOnce(id, /*complete=*/false);
    ASSERT_NE(r, "abort");
    json before = ToJson(c_->ops().at(id));
    auto instances = c_->instances();
    if (r == "done") {
      EXPECT_EQ(c_->RunStepOnce(id, false), "done") << c_->ops().at(id).step;
      EXPECT_EQ(ToJson(c_->ops().at(id))["wave_instances"], before["wave_instances"]);
      for (const auto& [name, inst] : instances) {
        EXPECT_EQ(ToJson(c_->instances().at(name)), ToJson(inst)) << c_->ops().at(id).step;
      }
      (void)c_->RunStepOnce(id, /*complete=*/true);
    }
    RunChecked(100ms);
  }
  EXPECT_EQ(c_->ops().at(id).state, wire::OpState::kDone);
}

}  // namespace
}  // namespace hafab::controller::testsupport
