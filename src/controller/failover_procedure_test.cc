// The failover procedure alone: a few records in a FakeOpState, the real journal, a fake
// provider and the fake clock — no controller, no store, no cluster fixture.
#include "controller/failover_procedure.h"

#include <gtest/gtest.h>

#include "controller/fake_op_state.h"
#include "controller/op_journal.h"
#include "testing/fake_clock.h"

namespace hafab::controller::testsupport {
namespace {

using namespace std::chrono_literals;

// Where the volume is, as the test says; counts the calls.
class FakeProvider : public provider::Provider {
 public:
  Status Attach(const std::string&, const std::string&, const std::string&) override {
    return Status::Ok();
  }
  Status Detach(const std::string&, const std::string&) override { return Status::Ok(); }
  Status ForceDetach(const std::string& volume, const std::string& node) override {
    force_detached.push_back(volume + "@" + node);
    return Status::Ok();
  }
  Result<provider::VolumeAttachment> Describe(const std::string&) override {
    return provider::VolumeAttachment{attached_to, ""};
  }
  std::string MountPath(const std::string&, const std::string&) override { return ""; }
  Status AddEndpoint(const std::string& role, const std::string& node) override {
    added.push_back(role + "@" + node);
    return Status::Ok();
  }
  Status RemoveEndpoint(const std::string& role, const std::string& node) override {
    removed.push_back(role + "@" + node);
    return Status::Ok();
  }

  std::string attached_to;
  std::vector<std::string> force_detached, added, removed;
};

// kvd: primary kvd-0 on n1 (fault domain fd-a); standbys kvd-1 on n2 (fd-a) and kvd-2 on n3
// (fd-b); the volume kvd-data; one live gateway that has taken the routes so far.
class FailoverProcedureTest : public ::testing::Test {
 protected:
  FailoverProcedureTest() {
    state_.journal = &journal_;
    state_.AddNode("n1", "fd-a");
    state_.AddNode("n2", "fd-a");
    state_.AddNode("n3", "fd-b");
    RoleRecord role;
    role.spec.name = "kvd";
    role.spec.mode = manifest::RoleMode::kActivePassive;
    role.spec.volume = "kvd-data";
    role.primary = "kvd-0";
    state_.roles["kvd"] = role;
    for (int i = 0; i < 3; ++i) {
      InstanceRecord inst{.name = "kvd-" + std::to_string(i),
                          .role = "kvd",
                          .ordinal = i,
                          .node = "n" + std::to_string(i + 1),
                          .run = i == 0,
                          .volume = i == 0};
      state_.instances[inst.name] = inst;
      state_.Report(inst, i == 0 ? wire::InstanceState::kRunning : wire::InstanceState::kStopped);
      state_.TakeAssignments(inst.node);
    }
    state_.gateways = {"gw1"};
    state_.AckRoutes("gw1");
    op_.id = "op-7";
    op_.role = "kvd";
    FailoverOp& f = op_.part.emplace<FailoverOp>();
    f.old_primary = "kvd-0";
    f.old_node = "n1";
    f.volume = "kvd-data";
    f.epoch = 2;
  }

  // Runs `step` once (its start recorded first), not moving past it.
  std::string Run(const std::string& step) {
    if (op_.step != step) {
      op_.step = step;
      op_.step_begun = false;
    }
    return journal_.RunOnce(op_, procedure_, /*complete=*/false);
  }
  std::string Note() const { return op_.steps.empty() ? "" : op_.steps.back().note; }
  const InstanceRecord& Inst(const std::string& name) { return state_.instances.at(name); }

  testing::FakeClock clock_;
  FakeOpState state_{clock_};
  FakeProvider provider_;
  OpJournal journal_{clock_, state_, state_, {}};
  FailoverProcedure procedure_{&provider_};
  Operation op_;
};

TEST_F(FailoverProcedureTest, FenceWaitsForTheGatewayToAcknowledgeTheUnroutedTable) {
  EXPECT_EQ(Run("fence"), "wait");
  EXPECT_FALSE(state_.roles.at("kvd").routed);
  EXPECT_EQ(state_.roles.at("kvd").epoch, 2);
  EXPECT_EQ(state_.routes_version, 2);  // the fence's write was published
  EXPECT_EQ(Note(), "waiting for gateway gw1 to acknowledge routes version 2");
  EXPECT_EQ(Run("fence"), "wait");  // nothing new: no new version to wait for
  EXPECT_EQ(state_.routes_version, 2);

  state_.AckRoutes("gw1");
  EXPECT_EQ(Run("fence"), "done");
  EXPECT_EQ(provider_.removed, std::vector<std::string>{"kvd@n1"});  // once
}

TEST_F(FailoverProcedureTest, FenceIsDoneAtOnceWithNoLiveGateway) {
  state_.gateways.clear();
  EXPECT_EQ(Run("fence"), "done");
  EXPECT_FALSE(state_.roles.at("kvd").routed);
}

// A planned switchover's primary hands its connections over at the old epoch: promote moves it.
TEST_F(FailoverProcedureTest, APlannedFenceKeepsTheEpoch) {
  op_.failover().planned = true;
  Run("fence");
  EXPECT_FALSE(state_.roles.at("kvd").routed);
  EXPECT_EQ(state_.roles.at("kvd").epoch, 1);
}

TEST_F(FailoverProcedureTest, StopWaitsForASilentNodesLeasePlusTheFenceMargin) {
  state_.live.erase("n1");
  state_.silent_since["n1"] = clock_.Now();
  EXPECT_EQ(Run("stop"), "wait");
  EXPECT_EQ(Note(), "node n1 is silent: waiting for its lease plus the fence margin");
  EXPECT_FALSE(Inst("kvd-0").run);
  clock_.Advance(1999ms);
  EXPECT_EQ(Run("stop"), "wait");
  EXPECT_FALSE(op_.failover().old_node_fenced);
  clock_.Advance(1ms);
  EXPECT_EQ(Run("stop"), "done");
  // Journaled: a controller that resumes the operation need not wait the margin again.
  EXPECT_TRUE(state_.durable.at("op-7").failover().old_node_fenced);
}

TEST_F(FailoverProcedureTest, StopWaitsForTheLiveAgentToStopThePrimary) {
  EXPECT_EQ(Run("stop"), "wait");
  EXPECT_FALSE(Inst("kvd-0").run);
  EXPECT_EQ(state_.generation, 2);  // published before judging
  EXPECT_EQ(Note(), "waiting for node n1 to stop kvd-0");
  state_.Report(Inst("kvd-0"), wire::InstanceState::kStopped);
  state_.TakeAssignments("n1");
  EXPECT_EQ(Run("stop"), "done");
}

// A report that the old primary is stopped from before its agent took the assignments that
// stop it is not believed: that agent may start it again (fenced, then handed fresh
// assignments from before the failover).
TEST_F(FailoverProcedureTest, StopBelievesAStoppedReportOnlyFromAfterTheNewAssignments) {
  state_.Report(Inst("kvd-0"), wire::InstanceState::kStopped);
  EXPECT_EQ(Run("stop"), "wait");
  EXPECT_EQ(state_.generation, 2);
  EXPECT_EQ(Run("stop"), "wait");  // stopped, but as of generation 1
  EXPECT_EQ(Note(), "waiting for node n1 to stop kvd-0");
  state_.TakeAssignments("n1");
  EXPECT_EQ(Run("stop"), "done");
}

TEST_F(FailoverProcedureTest, DetachForceDetachesFromASilentNodeOnlyAfterTheMargin) {
  state_.live.erase("n1");
  state_.silent_since["n1"] = clock_.Now();
  EXPECT_EQ(Run("detach"), "wait");
  EXPECT_FALSE(Inst("kvd-0").volume);
  EXPECT_TRUE(provider_.force_detached.empty());
  clock_.Advance(2s);
  EXPECT_EQ(Run("detach"), "done");
  EXPECT_EQ(provider_.force_detached, std::vector<std::string>{"kvd-data@n1"});
}

// The fault-domain rule: not the failed primary's domain, though kvd-1 has the lower ordinal.
TEST_F(FailoverProcedureTest, PromotePicksTheStandbyInAnotherFaultDomain) {
  EXPECT_EQ(Run("promote"), "done");
  EXPECT_EQ(op_.failover().new_primary, "kvd-2");
  EXPECT_EQ(op_.failover().new_node, "n3");
  const RoleRecord& role = state_.roles.at("kvd");
  EXPECT_EQ(role.primary, "kvd-2");
  EXPECT_EQ(role.epoch, 2);
  EXPECT_FALSE(role.routed);
  for (const auto& [name, inst] : state_.instances) {
    EXPECT_EQ(inst.epoch, 2) << name;
    EXPECT_FALSE(inst.run) << name;
    EXPECT_FALSE(inst.volume) << name;
  }
  EXPECT_EQ(state_.forgot_restarts.size(), 3u);
  // Run again (a resume), it keeps its choice though the other domain's standby is gone.
  state_.live.erase("n3");
  EXPECT_EQ(Run("promote"), "done");
  EXPECT_EQ(op_.failover().new_primary, "kvd-2");
}

TEST_F(FailoverProcedureTest, PromoteTakesTheSameDomainWhenNoOtherHasAStandby) {
  state_.live.erase("n3");
  EXPECT_EQ(Run("promote"), "done");
  EXPECT_EQ(op_.failover().new_primary, "kvd-1");
}

TEST_F(FailoverProcedureTest, PromoteMovesAnInstanceWhenThereIsNoStandby) {
  state_.instances.erase("kvd-1");
  state_.instances.erase("kvd-2");
  state_.live.erase("n1");
  EXPECT_EQ(Run("promote"), "done");
  EXPECT_EQ(op_.failover().new_primary, "kvd-0");
  EXPECT_EQ(op_.failover().new_node, "n2");        // the fake places on the first healthy node
  EXPECT_EQ(state_.EventTypes()[1], "relocated");  // after the step's start
}

TEST_F(FailoverProcedureTest, WaitDetachedNeverAttachesAVolumeAttachedElsewhere) {
  op_.failover().new_primary = "kvd-2";
  op_.failover().new_node = "n3";
  provider_.attached_to = "n1";
  EXPECT_EQ(Run("wait_detached"), "wait");
  EXPECT_EQ(Note(), "waiting for volume kvd-data to detach from node n1");
  EXPECT_TRUE(provider_.force_detached.empty());  // n1 is live: its agent detaches
  provider_.attached_to = "n3";                   // a resume: already where it goes
  EXPECT_EQ(Run("wait_detached"), "done");
}

// Without a provider, the agents' reports say where the volume is.
TEST_F(FailoverProcedureTest, WaitDetachedWithoutAProviderWaitsForTheAgentsReports) {
  FailoverProcedure procedure(nullptr);
  op_.failover().new_node = "n3";
  op_.step = "wait_detached";
  state_.observed["n1"].volumes["kvd-data"].state = wire::VolumeState::kDetaching;
  EXPECT_EQ(journal_.RunOnce(op_, procedure, false), "wait");
  EXPECT_EQ(Note(), "waiting for volume kvd-data to detach from node n1");
  state_.observed["n1"].volumes["kvd-data"].state = wire::VolumeState::kDetached;
  EXPECT_EQ(journal_.RunOnce(op_, procedure, false), "done");
}

TEST_F(FailoverProcedureTest, AttachAssignsTheVolumeAndWaitsForTheNewNode) {
  op_.failover().new_primary = "kvd-2";
  op_.failover().new_node = "n3";
  EXPECT_EQ(Run("attach"), "wait");
  EXPECT_TRUE(Inst("kvd-2").volume);
  EXPECT_FALSE(Inst("kvd-2").run);
  state_.observed["n3"].volumes["kvd-data"].state = wire::VolumeState::kAttached;
  EXPECT_EQ(Run("attach"), "done");
}

TEST_F(FailoverProcedureTest, StartAbortsWhenTheNewPrimaryFailed) {
  op_.failover().new_primary = "kvd-2";
  op_.failover().new_node = "n3";
  EXPECT_EQ(Run("start"), "wait");
  EXPECT_TRUE(Inst("kvd-2").run);
  EXPECT_EQ(Inst("kvd-2").epoch, 2);
  state_.Report(Inst("kvd-2"), wire::InstanceState::kFailed).last_exit = "exit 3";
  EXPECT_EQ(Run("start"), "abort");
  EXPECT_EQ(op_.state, wire::OpState::kFailed);
  EXPECT_EQ(op_.error, "new primary kvd-2 failed to start: exit 3");
  EXPECT_EQ(state_.events.back().type, "failover-failed");
}

TEST_F(FailoverProcedureTest, StartIsDoneWhenTheNewPrimaryRunsAtTheNewEpoch) {
  op_.failover().new_primary = "kvd-2";
  op_.failover().new_node = "n3";
  Run("start");
  ObservedInstance& o = state_.Report(Inst("kvd-2"), wire::InstanceState::kRunning);
  o.epoch = 1;  // still the old assignment's process
  EXPECT_EQ(Run("start"), "wait");
  o.epoch = 2;
  EXPECT_EQ(Run("start"), "done");
}

TEST_F(FailoverProcedureTest, RouteRoutesTheNewPrimaryAndAddsTheEndpointOnce) {
  op_.failover().new_primary = "kvd-2";
  op_.failover().new_node = "n3";
  EXPECT_EQ(Run("route"), "done");
  EXPECT_EQ(Run("route"), "done");
  EXPECT_TRUE(state_.roles.at("kvd").routed);
  EXPECT_EQ(state_.roles.at("kvd").primary, "kvd-2");
  EXPECT_EQ(provider_.added, std::vector<std::string>{"kvd@n3"});
}

TEST_F(FailoverProcedureTest, ARemovedRoleAbortsTheOperation) {
  state_.roles.clear();
  EXPECT_EQ(Run("stop"), "abort");
  EXPECT_EQ(op_.error, "role kvd was removed");
}

}  // namespace
}  // namespace hafab::controller::testsupport
