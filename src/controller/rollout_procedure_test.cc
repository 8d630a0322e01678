// The rollout procedure alone: a few records in a FakeOpState, the real journal and the fake
// clock — no controller, no store, no cluster fixture.
#include "controller/rollout_procedure.h"

#include <gtest/gtest.h>

#include "controller/fake_op_state.h"
#include "controller/op_journal.h"
#include "testing/fake_clock.h"

namespace hafab::controller::testsupport {
namespace {

using namespace std::chrono_literals;

// web: web-0, web-1, web-2 on n1, n2, n3 (update domains ud1, ud2, ud3), all at revision 1,
// moving to revision 2 (version "2"; revision 1 is version "1"); one live gateway.
class RolloutProcedureTest : public ::testing::Test {
 protected:
  RolloutProcedureTest() {
    state_.journal = &journal_;
    RoleRecord role;
    role.spec.name = "web";
    role.spec.version = "2";
    role.spec.update.ready_timeout = 3s;
    role.revision = 2;
    role.previous = role.spec;
    role.previous->version = "1";
    role.previous_revision = 1;
    state_.roles["web"] = role;
    for (int i = 0; i < 3; ++i) {
      const std::string n = std::to_string(i + 1);
      state_.AddNode("n" + n, "fd" + n, "ud" + n);
      InstanceRecord inst{
          .name = "web-" + std::to_string(i), .role = "web", .ordinal = i, .node = "n" + n};
      inst.revision = 1;
      state_.instances[inst.name] = inst;
      state_.Report(inst, wire::InstanceState::kRunning);
      state_.TakeAssignments(inst.node);
    }
    state_.gateways = {"gw1"};
    state_.AckRoutes("gw1");
    op_.id = "op-9";
    op_.role = "web";
    op_.step = kRolloutSteps[0];
    RolloutOp& ro = op_.part.emplace<RolloutOp>();
    ro.from_revision = 1;
    ro.to_revision = 2;
    ro.from_version = "1";
    ro.to_version = "2";
    ro.domains = DomainsBehind(state_, "web", 2, {});
    for (const auto& d : ro.domains) ro.domain_state[d] = wire::DomainState::kPending;
  }

  // Runs the current step once; moves on when it is done.
  std::string Step() { return journal_.RunOnce(op_, procedure_, /*complete=*/true); }
  // The agents do what they were told: every instance runs (at its revision) or not.
  void AgentsComply() {
    for (const auto& [name, inst] : state_.instances) {
      state_.Report(inst, inst.run ? wire::InstanceState::kRunning : wire::InstanceState::kStopped);
      state_.TakeAssignments(inst.node);
    }
  }
  const InstanceRecord& Inst(const std::string& name) { return state_.instances.at(name); }
  wire::DomainState DomainState(const std::string& d) { return op_.rollout().domain_state.at(d); }

  testing::FakeClock clock_;
  FakeOpState state_{clock_};
  OpJournal journal_{clock_, state_, state_, {}};
  RolloutProcedure procedure_{clock_};
  Operation op_;
};

TEST_F(RolloutProcedureTest, AWaveDrainsStopsStartsAndRoutesOneUpdateDomain) {
  EXPECT_EQ(op_.rollout().domains, (std::vector<std::string>{"ud1", "ud2", "ud3"}));
  // drain: out of rotation, done once the gateway took the table that says so.
  EXPECT_EQ(Step(), "wait");
  EXPECT_FALSE(Inst("web-0").routed);
  EXPECT_TRUE(Inst("web-1").routed);
  EXPECT_EQ(op_.rollout().wave_instances, std::vector<std::string>{"web-0"});
  EXPECT_EQ(DomainState("ud1"), wire::DomainState::kDraining);
  EXPECT_EQ(op_.steps.back().note, "waiting for gateway gw1 to acknowledge routes version 2");
  state_.AckRoutes("gw1");
  EXPECT_EQ(Step(), "done");
  // stop: done once its agent took the assignment and stopped it.
  EXPECT_EQ(op_.step, "stop");
  EXPECT_EQ(Step(), "wait");
  EXPECT_FALSE(Inst("web-0").run);
  EXPECT_EQ(op_.steps.back().note, "waiting for web-0 to stop");
  AgentsComply();
  EXPECT_EQ(Step(), "done");
  // start: the new revision, done once it runs and passes its probes.
  EXPECT_EQ(Step(), "wait");
  EXPECT_EQ(Inst("web-0").revision, 2);
  EXPECT_TRUE(Inst("web-0").run);
  EXPECT_FALSE(Inst("web-0").routed);
  AgentsComply();
  EXPECT_EQ(Step(), "done");
  // route: back in rotation; the next wave's drain is next.
  EXPECT_EQ(Step(), "done");
  EXPECT_TRUE(Inst("web-0").routed);
  EXPECT_EQ(DomainState("ud1"), wire::DomainState::kDone);
  EXPECT_EQ(op_.rollout().wave, 1);
  EXPECT_EQ(op_.step, "drain");
  EXPECT_EQ(op_.steps.back().name, "route ud1");
  // The other domains were not touched.
  for (const char* other : {"web-1", "web-2"}) {
    EXPECT_EQ(Inst(other).revision, 1) << other;
    EXPECT_TRUE(Inst(other).routed) << other;
    EXPECT_TRUE(Inst(other).run) << other;
  }
  EXPECT_EQ(DomainState("ud2"), wire::DomainState::kPending);
}

TEST_F(RolloutProcedureTest, EveryDomainInTurnThenDone) {
  for (int i = 0; i < 40 && op_.state == wire::OpState::kRunning; ++i) {
    Step();
    state_.AckRoutes("gw1");
    AgentsComply();
  }
  EXPECT_EQ(op_.state, wire::OpState::kDone);
  for (const auto& [name, inst] : state_.instances) {
    EXPECT_EQ(inst.revision, 2) << name;
    EXPECT_TRUE(inst.routed) << name;
  }
  EXPECT_EQ(state_.events.back().type, "rollout-done");
}

// A failed start turns the rollout back: the role's specs swap, the wave under way goes first.
TEST_F(RolloutProcedureTest, AFailedStartRollsBack) {
  op_.rollout().domains = {"ud2", "ud1", "ud3"};
  op_.step = "start";
  op_.rollout().wave_instances = {"web-1"};
  EXPECT_EQ(Step(), "wait");
  state_.Report(Inst("web-1"), wire::InstanceState::kFailed).last_exit = "exit 1";
  EXPECT_EQ(Step(), "wait");  // its agent has not taken the assignment that says so yet
  EXPECT_FALSE(op_.rollout().rollback);
  state_.TakeAssignments("n2");
  EXPECT_EQ(Step(), "wait");
  const RolloutOp& ro = op_.rollout();
  EXPECT_TRUE(ro.rollback);
  EXPECT_EQ(ro.to_revision, 1);
  EXPECT_EQ(ro.to_version, "1");
  EXPECT_EQ(ro.domains.front(), "ud2");  // the wave under way first
  EXPECT_EQ(ro.wave, 0);
  EXPECT_EQ(op_.step, "drain");
  EXPECT_EQ(state_.roles.at("web").spec.version, "1");
  EXPECT_EQ(state_.roles.at("web").revision, 1);
  EXPECT_EQ(op_.error, "web-1 on n2 failed to start (failed, exit 1, 0 restarts)");
  EXPECT_EQ(state_.EventTypes().back(), "rollout-rollback");
}

TEST_F(RolloutProcedureTest, ARollbackThatFailsAborts) {
  op_.rollout().rollback = true;
  op_.step = "start";
  op_.rollout().wave_instances = {"web-0"};
  Step();
  state_.restarts_exceeded.insert("web-0");
  state_.TakeAssignments("n1");
  EXPECT_EQ(Step(), "abort");
  EXPECT_EQ(op_.state, wire::OpState::kFailed);
  EXPECT_EQ(op_.error.rfind("rollback failed: web-0 on n1 failed to start", 0), 0u) << op_.error;
  EXPECT_EQ(state_.events.back().type, "rollback-failed");
}

// update.ready_timeout runs on the monotonic clock from the step's start: a wall-clock jump
// does not end it, the time does.
TEST_F(RolloutProcedureTest, TheReadyDeadlineIsMonotonic) {
  op_.step = "start";
  op_.rollout().wave_instances = {"web-0"};
  EXPECT_EQ(Step(), "wait");  // web-0's agent has not taken its new assignment
  clock_.JumpWall(1h);
  EXPECT_EQ(Step(), "wait");
  EXPECT_EQ(op_.steps.back().note, "waiting for web-0 to be ready");
  EXPECT_FALSE(op_.rollout().rollback);
  clock_.Advance(3s);
  EXPECT_EQ(Step(), "wait");
  EXPECT_TRUE(op_.rollout().rollback);
  EXPECT_EQ(op_.error, "web-0 not ready within 3000ms (update.ready_timeout)");
}

TEST_F(RolloutProcedureTest, StopDoesNotWaitForADeadNode) {
  op_.step = "stop";
  op_.rollout().wave_instances = {"web-0"};
  state_.live.erase("n1");
  EXPECT_EQ(Step(), "done");
  EXPECT_FALSE(Inst("web-0").run);
}

}  // namespace
}  // namespace hafab::controller::testsupport
