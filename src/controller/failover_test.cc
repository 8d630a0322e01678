// Failover of an active-passive role with fake agents on a fake clock: the nine steps in
// order, each idempotent, resumable by a new controller at every recorded step.
#include <gtest/gtest.h>

#include "controller/controller.h"
#include "controller/fixture.h"

namespace hafab::controller::testsupport {
namespace {

class FailoverTest : public ClusterTest {
 protected:
  void StartKvd() {
    Run(100ms);
    ApplyRoles({KvdRole(3)});
    Run(300ms);
    ASSERT_EQ(Role("kvd").primary, "kvd-0");
    old_node_ = PrimaryNode();
  }

  // Checked after every round: one primary runs (at most), the volume is attached at most
  // once (the fake provider refuses a second attach), the gateway never routes to an
  // instance that is not running at the endpoint's epoch.
  void CheckInvariants() {
    int running = Running("kvd");
    EXPECT_LE(running, 1);
    auto e = Endpoint("kvd");
    for (const auto& b : e["backends"]) {
      std::string inst = b["instance"];
      std::string node = b["node"];
      // A dead node's instance stays routed until its lease expires (detection time);
      // what must never happen is routing to a live node's instance that is not running.
      if (b["ready"] == true && !agent(node).dead()) {
        EXPECT_EQ(agent(node).State(inst), "running") << inst;
        EXPECT_EQ(b["epoch"], e["epoch"]);
      }
    }
  }

  void RunChecked(Duration d) {
    for (Duration t{}; t < d; t += 100ms) {
      Run(100ms);
      CheckInvariants();
    }
  }

  const Operation* LastOp() {
    const Operation* last = nullptr;
    for (const auto& [id, op] : c_->ops()) {
      if (last == nullptr || op.created_ms >= last->created_ms) last = &op;
    }
    return last;
  }

  // The failover finished: a new primary on another node, at epoch 2, running, holding the
  // volume alone, routed; the old primary a stopped standby at the new epoch.
  void ExpectFailedOverFrom(const std::string& old_node) {
    const Operation* op = LastOp();
    ASSERT_NE(op, nullptr);
    EXPECT_EQ(op->state, wire::OpState::kDone) << op->step << " " << op->error;
    std::vector<std::string> steps;
    for (const auto& s : op->steps) steps.push_back(s.name);
    EXPECT_EQ(steps,
              std::vector<std::string>(std::begin(kFailoverSteps), std::end(kFailoverSteps)));
    for (const auto& s : op->steps) EXPECT_GE(s.duration_ms, 0) << s.name;
    const std::string np = Role("kvd").primary;
    EXPECT_NE(np, "kvd-0");
    EXPECT_NE(Inst(np).node, old_node);
    EXPECT_EQ(Role("kvd").epoch, 2);
    EXPECT_TRUE(Role("kvd").routed);
    EXPECT_EQ(Inst(np).epoch, 2);
    EXPECT_TRUE(Inst(np).run);
    EXPECT_TRUE(Inst(np).volume);
    EXPECT_EQ(agent(Inst(np).node).State(np), "running");
    EXPECT_EQ(provider_.Describe("kvd-data")->node, Inst(np).node);
    EXPECT_EQ(Running("kvd"), 1);
    const auto& old = Inst("kvd-0");
    EXPECT_FALSE(old.run);
    EXPECT_FALSE(old.volume);
    EXPECT_EQ(old.epoch, 2);
    auto e = Endpoint("kvd");
    ASSERT_EQ(e["backends"].size(), 1u);
    EXPECT_EQ(e["backends"][0]["instance"], np);
    EXPECT_EQ(e["epoch"], 2);
  }

  std::string old_node_;
};

TEST_F(FailoverTest, NodeLossFailsOverToAnotherFaultDomain) {
  StartKvd();
  agent(old_node_).Kill();
  RunChecked(4s);
  ExpectFailedOverFrom(old_node_);
  EXPECT_EQ(provider_.force_detaches, 1);
  EXPECT_NE(c_->nodes().at(Inst(Role("kvd").primary).node).fault_domain,
            c_->nodes().at(old_node_).fault_domain);
}

// The store refuses every commit while the primary's node dies: nothing the store does
// not hold is published (no new routes, no new assignments), and the node's expiry, lost
// with the failed commit, is acted on once the store is back.
TEST_F(FailoverTest, StoreOutageDuringNodeLossPublishesNothingThenFailsOver) {
  StartKvd();
  const int64_t routes = c_->RoutesVersion();
  std::map<std::string, int64_t> generations;
  for (const auto& n : {"n1", "n2", "n3"}) generations[n] = c_->AssignmentsGeneration(n);
  agent(old_node_).Kill();
  store_.FailNextCommits(1 << 20);
  RunChecked(4s);
  EXPECT_EQ(c_->RoutesVersion(), routes);
  for (const auto& [n, g] : generations) EXPECT_EQ(c_->AssignmentsGeneration(n), g) << n;
  EXPECT_EQ(provider_.force_detaches, 0);
  nlohmann::json store = c_->StatusJson()["store"];
  EXPECT_GT(store["failed_commits"].get<int64_t>(), 0);
  EXPECT_NE(store["last_error"].get<std::string>().find("injected commit failure"),
            std::string::npos);
  store_.FailNextCommits(0);
  RunChecked(4s);
  ExpectFailedOverFrom(old_node_);
  EXPECT_EQ(c_->StatusJson()["store"]["reloading"], false);
}

// A failed commit is undone by reading again the keys it wrote, not the whole store: memory
// then holds what a controller loading the store holds, and the node's expiry lost with the
// commit is acted on once the store takes commits again.
TEST_F(FailoverTest, AFailedCommitIsUndoneByReadingItsKeysAgain) {
  StartKvd();
  agent(old_node_).Kill();
  store_.FailNextCommits(1 << 20);
  RunChecked(2s);  // past the lease: the node's expiry is committed, and fails, at every tick
  ASSERT_EQ(c_->StatusJson()["store"]["reloading"], true);
  ASSERT_TRUE(c_->nodes().at(old_node_).down);  // in memory, not in the store
  store_.FailNextCommits(0);
  ASSERT_TRUE(c_->AssignmentListFor("n1").ok());  // reloads, commits nothing
  EXPECT_EQ(c_->StatusJson()["store"]["reloading"], false);
  EXPECT_EQ(Metric("hafab_controller_store_reloads_total{of=\"all\"}"), 0);
  EXPECT_GT(Metric("hafab_controller_store_reloads_total{of=\"keys\"}"), 0);

  Controller stored(store_, clock_, &provider_, ControllerOptions{});
  ASSERT_TRUE(stored.Reload().ok());
  auto same = [](const auto& a, const auto& b) {
    ASSERT_EQ(a.size(), b.size());
    for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
      EXPECT_EQ(i->first, j->first);
      EXPECT_EQ(ToJson(i->second), ToJson(j->second)) << i->first;
    }
  };
  same(c_->roles(), stored.roles());
  same(c_->instances(), stored.instances());
  same(c_->nodes(), stored.nodes());
  same(c_->ops(), stored.ops());
  EXPECT_FALSE(c_->nodes().at(old_node_).down);

  RunChecked(4s);
  ExpectFailedOverFrom(old_node_);
}

// A record of the failed commit that cannot be read back fails the reload, naming its key;
// memory keeps waiting for the store rather than acting on a part of it.
TEST_F(FailoverTest, AnUnreadableKeyOfAFailedCommitFailsTheReload) {
  StartKvd();
  agent(old_node_).Kill();
  store_.FailNextCommits(1 << 20);
  RunChecked(2s);
  ASSERT_EQ(c_->StatusJson()["store"]["reloading"], true);
  store_.FailNextCommits(0);
  store::Txn txn;
  txn.success = {store::Op::Put(std::string(kNodesPrefix) + old_node_, "{not json")};
  ASSERT_TRUE(store_.Commit(txn).ok());
  auto r = c_->AssignmentListFor("n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "store: /hafab/nodes/" + old_node_ + ": not JSON");
  EXPECT_EQ(c_->StatusJson()["store"]["reloading"], true);
}

// A store outage longer than a lease (an etcd election) that begins with a failed commit:
// live nodes and gateways keep their leases from memory (hafab-sim found every agent fencing
// itself and every role failing over once the store came back).
TEST_F(FailoverTest, StoreOutageKeepsTheLeasesOfLiveNodes) {
  StartKvd();
  const int64_t last_event = c_->LastEventId();
  store_.FailNextCommits(1 << 20);
  store_.FailReads(true);
  ASSERT_FALSE(c_->Drain(old_node_, true).ok());  // the failed commit: reloads fail from now
  for (int i = 0; i < 40; ++i) {                  // 4 s, past the 1.5 s lease
    clock_.Advance(100ms);
    for (const auto& n : {"n1", "n2", "n3"}) {
      auto answer = c_->AgentHeartbeat(n, agent(n).Heartbeat());
      ASSERT_TRUE(answer.ok()) << n << ": " << answer.status().ToString();
    }
    ASSERT_TRUE(c_->GatewayHeartbeat("gw1", GatewayAck(c_->RoutesVersion(), {})).ok());
    c_->Tick();
  }
  EXPECT_NE(
      c_->MetricsText().find("hafab_controller_leases_from_memory_total{holder=\"node\"} 120"),
      std::string::npos)
      << c_->MetricsText();
  store_.FailNextCommits(0);
  store_.FailReads(false);
  RunChecked(3s);
  for (const auto& e : c_->EventsAfter(last_event)) {
    EXPECT_NE(e.type, "node-down") << e.message;
    EXPECT_NE(e.type, "failover-started") << e.message;
  }
  EXPECT_TRUE(c_->ops().empty() || c_->ops().rbegin()->second.state != wire::OpState::kRunning);
}

// A node the store records down gets no lease from memory: its renewal waits for the commit
// that records it up (a controller started from the store would take it for fenced).
TEST_F(FailoverTest, StoreOutageGrantsNoLeaseToANodeRecordedDown) {
  StartKvd();
  agent(old_node_).Kill();
  RunChecked(3s);  // declared down, failed over
  store_.FailNextCommits(1 << 20);
  store_.FailReads(true);
  agent(old_node_).Revive();
  auto answer = c_->AgentHeartbeat(old_node_, agent(old_node_).Heartbeat());
  EXPECT_FALSE(answer.ok());
  EXPECT_FALSE(c_->AgentHeartbeat(old_node_, agent(old_node_).Heartbeat()).ok());
  store_.FailNextCommits(0);
  store_.FailReads(false);
  clock_.Advance(100ms);
  EXPECT_TRUE(c_->AgentHeartbeat(old_node_, agent(old_node_).Heartbeat()).ok());
}

TEST_F(FailoverTest, SilentNodeIsFencedForLeasePlusMarginBeforeForceDetach) {
  StartKvd();
  agent(old_node_).Kill();
  TimePoint killed = clock_.Now();
  // Until lease (1.5s) + margin (0.5s) have passed, the volume stays where it was.
  while (clock_.Now() < killed + 1900ms) {
    Run(100ms);
    EXPECT_EQ(provider_.force_detaches, 0);
    EXPECT_EQ(provider_.Describe("kvd-data")->node, old_node_);
  }
  RunChecked(2s);
  ExpectFailedOverFrom(old_node_);
}

TEST_F(FailoverTest, PrimaryFailureTriggersFailoverAndOldPrimaryRejoinsAsStandby) {
  StartKvd();
  agent(old_node_).Crash("kvd-0");  // the agent gave up on it: state failed
  RunChecked(2s);
  ExpectFailedOverFrom(old_node_);
  EXPECT_EQ(provider_.force_detaches, 0);  // the live agent detached it itself
  agent(old_node_).Heal("kvd-0");
  RunChecked(1s);
  EXPECT_EQ(agent(old_node_).State("kvd-0"), "stopped");
}

TEST_F(FailoverTest, ReturningNodeRejoinsAsStandbyWithTheNewEpoch) {
  StartKvd();
  agent(old_node_).Kill();
  RunChecked(4s);
  ExpectFailedOverFrom(old_node_);
  agent(old_node_).Revive();
  RunChecked(1s);
  EXPECT_FALSE(c_->nodes().at(old_node_).down);
  EXPECT_EQ(agent(old_node_).State("kvd-0"), "stopped");
  auto a = c_->Assignments(old_node_)->at("assignments")[0];
  EXPECT_EQ(a["instance"], "kvd-0");
  EXPECT_EQ(a["run"], false);
  EXPECT_EQ(a["epoch"], 2);
  EXPECT_FALSE(a.contains("volume"));
  EXPECT_EQ(Running("kvd"), 1);
}

TEST_F(FailoverTest, FenceWaitsForEveryLiveGatewayToAcknowledge) {
  StartKvd();
  gateway_alive_ = false;  // silent from now: its lease runs out after 1.5s
  ASSERT_TRUE(c_->RequestFailover("kvd", "").ok());
  Run(1200ms);
  EXPECT_EQ(LastOp()->step, "fence");
  EXPECT_EQ(agent(old_node_).State("kvd-0"), "running");  // not stopped before fencing
  Run(1s);
  EXPECT_NE(LastOp()->step, "fence");
  RunChecked(2s);
  ExpectFailedOverFrom(old_node_);
}

// A gateway that keeps heartbeating but never takes the fence's routes (a stuck route watch, a
// fake gateway) holds the fence no longer than one that went silent: a heartbeat renews its
// lease only up to a lease TTL after the first routes it has not acknowledged were published,
// and says so (lease_ms), so the gateway stops routing active-passive roles as well.
TEST_F(FailoverTest, AGatewayThatStopsAcknowledgingHoldsTheFenceAtMostALease) {
  StartKvd();
  gateway_alive_ = false;
  const int64_t stale = c_->RoutesVersion();
  ASSERT_TRUE(c_->RequestFailover("kvd", "").ok());
  const TimePoint asked = clock_.Now();
  TimePoint fenced{};
  int64_t granted_ms = -1;
  while (fenced == TimePoint{} && clock_.Now() - asked < 5s) {
    clock_.Advance(100ms);
    for (auto& a : agents_) a->Step(*c_);
    auto answer = c_->GatewayHeartbeat("gw1", GatewayAck(stale));
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    ASSERT_TRUE(answer->lease.has_value());
    granted_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*answer->lease).count();
    c_->Tick();
    if (LastOp()->step != "fence") fenced = clock_.Now();
  }
  ASSERT_NE(fenced, TimePoint{}) << "still in fence after 5s";
  EXPECT_GE(fenced - asked, 1300ms);  // it did wait for the gateway, about a lease (1.5 s)
  EXPECT_LE(fenced - asked, 1700ms);
  EXPECT_EQ(granted_ms, 0);
  EXPECT_FALSE(c_->GatewaysJson()[0]["live"].get<bool>());
  // Acknowledging the current routes gives it a full lease again.
  auto answer = c_->GatewayHeartbeat("gw1", GatewayAck(c_->RoutesVersion()));
  ASSERT_TRUE(answer.ok() && answer->lease.has_value());
  EXPECT_EQ(*answer->lease, 1500ms);
  gateway_alive_ = true;
  RunChecked(2s);
  ExpectFailedOverFrom(old_node_);
}

TEST_F(FailoverTest, PlannedSwitchoverDrainsBeforeStopping) {
  StartKvd();
  std::string target;
  for (const auto& [name, inst] : c_->instances()) {
    if (name != "kvd-0") target = inst.node;
  }
  auto r = c_->RequestFailover("kvd", target);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(c_->RequestFailover("kvd", "").status().code(), StatusCode::kConflict);
  // Routes lose the old primary as a target for new connections before it is stopped: new
  // connections wait at the gateway. Until it has stopped it is listed handing over at the
  // old epoch (the gateways keep its open connections for it to close: the drain contract).
  bool stopped_while_routed = false;
  bool handed_over = false;
  for (int i = 0; i < 30; ++i) {
    Run(100ms);
    CheckInvariants();
    auto e = Endpoint("kvd");
    for (const auto& b : e["backends"]) {
      if (b["instance"] != "kvd-0") continue;
      if (b["ready"] == true && agent(old_node_).State("kvd-0") != "running") {
        stopped_while_routed = true;
      }
      if (b.value("handing_over", false)) {
        handed_over = true;
        EXPECT_EQ(b["ready"], false);
        EXPECT_EQ(b["epoch"], 1);
        EXPECT_EQ(e["epoch"], 1) << "a planned switchover moves the epoch at promote";
      }
    }
  }
  EXPECT_FALSE(stopped_while_routed);
  EXPECT_TRUE(handed_over);
  ExpectFailedOverFrom(old_node_);
  EXPECT_EQ(Inst(Role("kvd").primary).node, target);
  EXPECT_TRUE(LastOp()->failover().planned);
}

TEST_F(FailoverTest, RequestFailoverValidates) {
  StartKvd();
  ApplyRoles({KvdRole(3), WebRole(1)});
  EXPECT_EQ(c_->RequestFailover("nope", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c_->RequestFailover("web", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c_->RequestFailover("kvd", "n9").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c_->RequestFailover("kvd", old_node_).status().code(),
            StatusCode::kInvalidArgument);  // no standby there: the primary is
}

TEST_F(FailoverTest, DrainingThePrimarysNodeSwitchesOver) {
  StartKvd();
  ASSERT_TRUE(c_->Drain(old_node_, true).ok());
  RunChecked(3s);
  ExpectFailedOverFrom(old_node_);
  EXPECT_TRUE(LastOp()->failover().planned);
  for (const auto& [name, inst] : c_->instances()) EXPECT_NE(inst.node, old_node_);
}

TEST_F(FailoverTest, EventsNameEveryStep) {
  StartKvd();
  int64_t mark = c_->LastEventId();
  ASSERT_TRUE(c_->RequestFailover("kvd", "").ok());
  RunChecked(2s);
  std::vector<std::string> started;
  bool done = false;
  for (const auto& e : c_->EventsAfter(mark)) {
    if (e.type == "failover-step") started.push_back(e.fields.at("step"));
    done |= e.type == "failover-done";
  }
  EXPECT_EQ(started,
            std::vector<std::string>(std::begin(kFailoverSteps), std::end(kFailoverSteps)));
  EXPECT_TRUE(done);
  // And /metrics counts it, with each step's duration.
  const std::string metrics = c_->MetricsText();
  EXPECT_NE(
      metrics.find("hafab_controller_operations_total{kind=\"failover\",outcome=\"done\"} 1\n"),
      std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("hafab_controller_operation_seconds_count{kind=\"failover\",outcome="
                         "\"done\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("hafab_controller_role_routable{role=\"kvd\"}"), std::string::npos);
  for (const char* step : kFailoverSteps) {
    EXPECT_NE(
        metrics.find("hafab_controller_operation_step_seconds_count{kind=\"failover\",step=\"" +
                     std::string(step) + "\"} 1\n"),
        std::string::npos)
        << step;
  }
}

// Every step run twice in a row leaves the same records as running it once.
TEST_F(FailoverTest, EveryStepIsIdempotent) {
  StartKvd();
  NewController("", /*drive_ops=*/false);
  Run(200ms);
  ASSERT_TRUE(c_->RequestFailover("kvd", "").ok());
  std::string id = LastOp()->id;
  auto snapshot = [&] {
    nlohmann::json j;
    for (const auto& [n, r] : c_->roles()) j["roles"][n] = ToJson(r);
    for (const auto& [n, r] : c_->instances()) j["instances"][n] = ToJson(r);
    auto d = provider_.Describe("kvd-data");
    j["attached"] = d.ok() ? d->node : "";
    j["routes"] = wire::ToJson(c_->Routes())["endpoints"];
    return j;
  };
  for (const char* step : kFailoverSteps) {
    ASSERT_EQ(c_->ops().at(id).step, step);
    std::string r1 = c_->RunStepOnce(id, false);
    nlohmann::json once = snapshot();
    std::string r2 = c_->RunStepOnce(id, false);
    EXPECT_EQ(snapshot(), once) << "step " << step << " is not idempotent";
    EXPECT_EQ(r1, r2) << step;
    // Let agents and the gateway react until the step's condition holds.
    for (int i = 0; i < 40 && c_->RunStepOnce(id, false) == "wait"; ++i) Run(100ms);
    ASSERT_EQ(c_->RunStepOnce(id, true), "done") << "step " << step;
  }
  Run(300ms);
  ExpectFailedOverFrom(old_node_);
}

TEST_F(FailoverTest, SingleInstanceRoleMovesToAnotherNodeWhenItsNodeDies) {
  Run(100ms);
  ApplyRoles({KvdRole(1)});
  Run(300ms);
  std::string home = PrimaryNode();
  agent(home).Kill();
  RunChecked(4s);
  EXPECT_EQ(LastOp()->state, wire::OpState::kDone);
  EXPECT_NE(PrimaryNode(), home);
  EXPECT_EQ(Role("kvd").epoch, 2);
  EXPECT_EQ(Running("kvd"), 1);
  EXPECT_EQ(provider_.Describe("kvd-data")->node, PrimaryNode());
}

TEST_F(FailoverTest, ManifestNodesNeverHeardFromGetAGraceToShowUp) {
  manifest::Manifest m;
  for (const char* n : {"n1", "n2", "n3"}) {
    manifest::Node node;
    node.name = n;
    m.nodes.push_back(node);
  }
  m.roles = {KvdRole(2)};
  ASSERT_TRUE(c_->Apply(m).ok());
  // The agents start late (3s > lease TTL): nothing is declared down, nothing fails over.
  clock_.Advance(3s);
  c_->Tick();
  for (const auto& [n, rec] : c_->nodes()) EXPECT_FALSE(rec.down) << n;
  Run(500ms);
  EXPECT_TRUE(c_->ops().empty());
  EXPECT_EQ(Running("kvd"), 1);
}

TEST_F(FailoverTest, PrimaryRestartedPastTheLimitFailsOver) {
  Run(100ms);
  auto kvd = KvdRole(2);
  kvd.restart.max_restarts = 2;
  ApplyRoles({kvd});
  Run(300ms);
  old_node_ = PrimaryNode();
  agent(old_node_).SetRestarts("kvd-0", 2);  // restarted in place by the agent: fine
  Run(500ms);
  EXPECT_TRUE(c_->ops().empty());
  agent(old_node_).SetRestarts("kvd-0", 3);  // one more within the window: move it
  RunChecked(2s);
  ExpectFailedOverFrom(old_node_);
}

struct ResumeCase {
  std::string step;
  bool node_loss;
};

class ResumeTest : public FailoverTest, public ::testing::WithParamInterface<ResumeCase> {};

// The controller "dies" right after recording the start of a step; a new controller on the
// same store resumes at that step and finishes without a second primary or volume.
TEST_P(ResumeTest, NewControllerResumesAtTheRecordedStep) {
  StartKvd();
  NewController(GetParam().step);
  Run(200ms);
  if (GetParam().node_loss) {
    agent(old_node_).Kill();
  } else {
    (void)c_->RequestFailover("kvd", "");  // may "crash" inside the call
  }
  for (int i = 0; i < 60 && !c_->crashed(); ++i) RunChecked(100ms);
  ASSERT_TRUE(c_->crashed()) << "never reached step " << GetParam().step;
  ASSERT_EQ(LastOp()->step, GetParam().step);
  const std::string id = LastOp()->id;  // the old controller, and its records, go away
  // Agents keep running while no controller answers; then a new one starts.
  clock_.Advance(300ms);
  NewController();
  EXPECT_EQ(c_->ops().at(id).owner, c_->id());
  RunChecked(5s);
  ExpectFailedOverFrom(old_node_);
  int begun = 0;
  for (const auto& s : LastOp()->steps) begun += s.name == GetParam().step;
  EXPECT_EQ(begun, 1);  // resumed, not restarted
}

// The controller dies at `stop` of a node-loss failover. The store says the node is down,
// so its lease (and its agent's) had ended before the new controller started: the volume is
// force-detached after the fence margin alone, not after a full lease of silence more.
TEST_F(FailoverTest, NewControllerTrustsAStoredNodeDownAndWaitsOnlyTheMargin) {
  StartKvd();
  NewController("stop");
  Run(200ms);
  agent(old_node_).Kill();
  for (int i = 0; i < 60 && !c_->crashed(); ++i) RunChecked(100ms);
  ASSERT_TRUE(c_->crashed());
  clock_.Advance(300ms);
  NewController();
  TimePoint started = clock_.Now();
  while (provider_.force_detaches == 0 && clock_.Now() < started + 3s) Run(20ms);
  ASSERT_EQ(provider_.force_detaches, 1);
  EXPECT_GE(clock_.Now(), started + 500ms);  // the fence margin still holds
  EXPECT_LT(clock_.Now(), started + 800ms);  // was lease (1.5 s) + margin
  RunChecked(3s);
  ExpectFailedOverFrom(old_node_);
}

// The controller dies at `detach` of a node-loss failover, after `stop` waited the node's
// lease plus the fence margin. The journal says so (old_node_fenced): the new controller
// force-detaches at its first tick instead of waiting the margin again.
TEST_F(FailoverTest, NewControllerAtDetachTrustsTheJournaledFenceWait) {
  StartKvd();
  NewController("detach");
  Run(200ms);
  agent(old_node_).Kill();
  for (int i = 0; i < 60 && !c_->crashed(); ++i) RunChecked(100ms);
  ASSERT_TRUE(c_->crashed());
  ASSERT_TRUE(LastOp()->failover().old_node_fenced);
  ASSERT_EQ(provider_.force_detaches, 0);
  clock_.Advance(100ms);
  NewController();
  c_->Tick();
  EXPECT_EQ(provider_.force_detaches, 1);
  RunChecked(3s);
  ExpectFailedOverFrom(old_node_);
}

// The journaled fence wait holds only while the node stays silent: a heartbeat of it (its
// agent renews its lease and may run what it is assigned) clears it, and a new silence is
// waited out in full.
TEST_F(FailoverTest, AHeartbeatOfTheOldNodeClearsTheJournaledFenceWait) {
  StartKvd();
  NewController("detach");
  Run(200ms);
  agent(old_node_).Kill();
  for (int i = 0; i < 60 && !c_->crashed(); ++i) RunChecked(100ms);
  ASSERT_TRUE(c_->crashed());
  ASSERT_TRUE(LastOp()->failover().old_node_fenced);
  const std::string id = LastOp()->id;
  NewController("", /*drive_ops=*/false);
  agent(old_node_).Revive();
  agent(old_node_).Step(*c_);  // heard by the new controller
  EXPECT_FALSE(c_->ops().at(id).failover().old_node_fenced);
  agent(old_node_).Kill();
  NewController();  // resumes with the journal as the heartbeat left it
  EXPECT_FALSE(c_->ops().at(id).failover().old_node_fenced);
  TimePoint started = clock_.Now();
  while (provider_.force_detaches == 0 && clock_.Now() < started + 3s) Run(100ms);
  EXPECT_GE(clock_.Now(), started + 500ms);  // the margin is waited again
  RunChecked(3s);
  ExpectFailedOverFrom(old_node_);
}

std::vector<ResumeCase> AllSteps() {
  std::vector<ResumeCase> out;
  for (bool loss : {false, true}) {
    for (const char* s : kFailoverSteps) out.push_back({s, loss});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllSteps, ResumeTest, ::testing::ValuesIn(AllSteps()),
                         [](const auto& info) {
                           return std::string(info.param.node_loss ? "NodeLoss_" : "Planned_") +
                                  info.param.step;
                         });

}  // namespace
}  // namespace hafab::controller::testsupport
