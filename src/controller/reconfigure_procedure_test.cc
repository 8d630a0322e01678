// The reconfiguration procedure alone: a few records in a FakeOpState, the real journal, no
// controller and no store.
#include "controller/reconfigure_procedure.h"

#include <gtest/gtest.h>

#include "controller/fake_op_state.h"
#include "testing/fake_clock.h"

namespace hafab::controller::testsupport {
namespace {

using namespace std::chrono_literals;

// kv: primary kv-0 on n1, secondaries kv-1 on n2 and kv-2 on n3, quorum 2 of 3; the
// reconfiguration moves to epoch 6; one live gateway that has taken the routes so far.
class ReconfigureProcedureTest : public ::testing::Test {
 protected:
  ReconfigureProcedureTest() {
    state_.journal = &journal_;
    RoleRecord role;
    role.spec.name = "kv";
    role.spec.mode = manifest::RoleMode::kReplicated;
    role.spec.instances = 3;
    role.primary = "kv-0";
    role.epoch = 5;
    state_.roles["kv"] = role;
    for (int i = 0; i < 3; ++i) {
      const std::string node = "n" + std::to_string(i + 1);
      state_.AddNode(node, "fd" + std::to_string(i));
      InstanceRecord inst{
          .name = "kv-" + std::to_string(i),
          .role = "kv",
          .ordinal = i,
          .node = node,
          .epoch = 5,
          .replica = i == 0 ? wire::ReplicaRole::kPrimary : wire::ReplicaRole::kSecondary};
      state_.instances[inst.name] = inst;
    }
    state_.gateways = {"gw1"};
    state_.AckRoutes("gw1");
    op_.id = "op-9";
    op_.role = "kv";
    ReconfigureOp& r = op_.part.emplace<ReconfigureOp>();
    r.old_primary = "kv-0";
    r.old_node = "n1";
    r.epoch = 6;
  }

  // The replica answers: `role` at `epoch`, its log ending at `p`.
  void Says(const std::string& name, wire::ReplicaRole role, int64_t epoch, wire::Position p) {
    state_.Report(state_.instances.at(name), wire::InstanceState::kRunning).replica =
        wire::ReplicaStatus{role, epoch, p, "streaming", ""};
  }
  std::string Run(const std::string& step) {
    if (op_.step != step) {
      op_.step = step;
      op_.step_begun = false;
    }
    return journal_.RunOnce(op_, procedure_, /*complete=*/false);
  }
  std::string Note() const { return op_.steps.empty() ? "" : op_.steps.back().note; }
  // How many events of `type` went out (the journal's own step events aside).
  int Told(const std::string& type) const {
    int n = 0;
    for (const auto& t : state_.EventTypes()) n += t == type;
    return n;
  }
  const InstanceRecord& Inst(const std::string& name) { return state_.instances.at(name); }

  testing::FakeClock clock_;
  FakeOpState state_{clock_};
  OpJournal journal_{clock_, state_, state_, {}};
  ReconfigureProcedure procedure_{1500ms, 1500ms};
  Operation op_;
};

// A planned switchover to kv-2: the role is unrouted first (no new write), and kv-2 catches up
// with the old primary before the replicas freeze, so that it can be the one promoted.
TEST_F(ReconfigureProcedureTest, APlannedDrainWaitsForTheTargetToCatchUp) {
  ReconfigureOp& r = op_.reconfigure();
  r.planned = true;
  r.to = "kv-2";
  Says("kv-0", wire::ReplicaRole::kPrimary, 5, {5, 40});
  Says("kv-2", wire::ReplicaRole::kSecondary, 5, {5, 38});
  EXPECT_EQ(Run("drain"), "wait");
  EXPECT_FALSE(state_.roles["kv"].routed);
  EXPECT_EQ(state_.roles["kv"].epoch, 5);  // not fenced yet: kv-0 still streams to kv-2
  EXPECT_NE(Note().find("waiting for gateway gw1"), std::string::npos) << Note();
  state_.AckRoutes("gw1");
  EXPECT_EQ(Run("drain"), "wait");
  EXPECT_NE(Note().find("waiting for kv-2 (5:38) to catch up with kv-0 (5:40)"), std::string::npos)
      << Note();
  Says("kv-2", wire::ReplicaRole::kSecondary, 5, {5, 40});
  EXPECT_EQ(Run("drain"), "done");
  // Fence waits for its own routes version, not the drain's.
  EXPECT_EQ(Run("fence"), "wait");
  state_.AckRoutes("gw1");
  EXPECT_EQ(Run("fence"), "done");
}

// Two replicas answering are enough to promote, but a planned switchover's target that has
// not answered yet would be passed over: collect waits for it (bounded like drain).
TEST_F(ReconfigureProcedureTest, APlannedCollectWaitsForTheTargetToTakeTheEpoch) {
  ReconfigureOp& r = op_.reconfigure();
  r.planned = true;
  r.to = "kv-2";
  Says("kv-0", wire::ReplicaRole::kSecondary, 6, {5, 40});
  Says("kv-1", wire::ReplicaRole::kSecondary, 6, {5, 40});
  Says("kv-2", wire::ReplicaRole::kSecondary, 5, {5, 40});  // not the new epoch yet
  EXPECT_EQ(Run("collect"), "wait");
  EXPECT_NE(Note().find("waiting for kv-2, the switchover's target, to take epoch 6"),
            std::string::npos)
      << Note();
  Says("kv-2", wire::ReplicaRole::kSecondary, 6, {5, 40});
  EXPECT_EQ(Run("collect"), "done");
  Run("promote");
  EXPECT_EQ(op_.reconfigure().new_primary, "kv-2");
}

TEST_F(ReconfigureProcedureTest, APlannedCollectGoesOnWithoutATargetThatDoesNotAnswer) {
  ReconfigureOp& r = op_.reconfigure();
  r.planned = true;
  r.to = "kv-2";
  Says("kv-0", wire::ReplicaRole::kSecondary, 6, {5, 40});
  Says("kv-1", wire::ReplicaRole::kSecondary, 6, {5, 40});
  EXPECT_EQ(Run("collect"), "wait");
  clock_.Advance(1600ms);  // drain_for
  EXPECT_EQ(Run("collect"), "done");
}

TEST_F(ReconfigureProcedureTest, AnUnplannedReconfigurationDoesNotDrain) {
  EXPECT_EQ(Run("drain"), "done");
  EXPECT_TRUE(state_.roles["kv"].routed);
}

TEST_F(ReconfigureProcedureTest, FenceLeavesNoPrimaryAtTheNewEpochAndWaitsForTheGateway) {
  EXPECT_EQ(Run("fence"), "wait");  // published; gw1 has not taken it
  EXPECT_EQ(state_.roles["kv"].epoch, 6);
  EXPECT_EQ(state_.roles["kv"].primary, "");
  EXPECT_FALSE(state_.roles["kv"].routed);
  EXPECT_EQ(Inst("kv-0").replica, wire::ReplicaRole::kSecondary);
  EXPECT_NE(Note().find("waiting for gateway gw1"), std::string::npos) << Note();
  state_.AckRoutes("gw1");
  EXPECT_EQ(Run("fence"), "done");
}

TEST_F(ReconfigureProcedureTest, CollectNeedsEnoughReplicasAtTheEpochToOverlapEveryQuorum) {
  EXPECT_EQ(ReconfigureProcedure::Needed(state_.roles["kv"], 3), 2);
  Says("kv-1", wire::ReplicaRole::kSecondary, 6, {5, 10});
  Says("kv-2", wire::ReplicaRole::kSecondary, 5, {5, 12});  // not the new epoch yet
  EXPECT_EQ(Run("collect"), "wait");
  // Not said to be lost before the replicas had time.
  EXPECT_EQ(Note(),
            "so far 1 of the 2 replicas needed took epoch 6 (kv-1 at 5:10; missing kv-0, kv-2)");
  EXPECT_EQ(Told("quorum-lost"), 0);
  clock_.Advance(1600ms);
  EXPECT_EQ(Run("collect"), "wait");
  clock_.Advance(100ms);
  EXPECT_EQ(Run("collect"), "wait");
  EXPECT_EQ(Told("quorum-lost"), 1);  // once
  EXPECT_NE(Note().find("quorum lost: 1 of the 2 replicas needed took epoch 6 (kv-1 at 5:10; "
                        "missing kv-0, kv-2); nothing is promoted until enough answer: bring a "
                        "missing replica's node back (its data is kept), or `hafab failover kv "
                        "--accept-data-loss` to promote the most advanced that answered, losing "
                        "writes acknowledged only by kv-0, kv-2"),
            std::string::npos)
      << Note();
  Says("kv-2", wire::ReplicaRole::kSecondary, 6, {5, 12});
  EXPECT_EQ(Run("collect"), "done");
  EXPECT_EQ(op_.reconfigure().positions.size(), 2u);
  // A replica on a node without a lease does not count.
  state_.live.erase("n3");
  EXPECT_EQ(Run("collect"), "wait");
}

TEST_F(ReconfigureProcedureTest, AcceptedDataLossPromotesFromFewerAndSaysSo) {
  op_.reconfigure().accept_data_loss = true;
  Says("kv-1", wire::ReplicaRole::kSecondary, 6, {5, 10});
  EXPECT_EQ(Run("collect"), "done");
  EXPECT_EQ(Told("data-loss-accepted"), 1);
}

TEST_F(ReconfigureProcedureTest, PromoteTakesTheMostAdvancedThenTheAskedOneThenNotTheOldOne) {
  op_.reconfigure().positions = {{"kv-0", {5, 12}}, {"kv-1", {5, 12}}, {"kv-2", {4, 99}}};
  const int64_t generation = state_.generation;
  EXPECT_EQ(Run("promote"), "done");
  EXPECT_GT(state_.generation, generation);          // published before it was done
  EXPECT_EQ(op_.reconfigure().new_primary, "kv-1");  // kv-0 is as far, but the old primary
  EXPECT_EQ(state_.roles["kv"].primary, "kv-1");
  EXPECT_EQ(Inst("kv-1").replica, wire::ReplicaRole::kPrimary);
  EXPECT_EQ(Inst("kv-1").epoch, 6);   // routed at the endpoint's epoch
  EXPECT_EQ(Run("promote"), "done");  // again: nothing new to write
  EXPECT_EQ(state_.generation, generation + 1);
}

TEST_F(ReconfigureProcedureTest, APlannedTargetThatIsBehindIsNotPromoted) {
  op_.reconfigure().to = "kv-2";
  op_.reconfigure().positions = {{"kv-1", {5, 12}}, {"kv-2", {5, 11}}};
  Run("promote");
  EXPECT_EQ(op_.reconfigure().new_primary, "kv-1");  // kv-2 is behind: nothing is lost
  EXPECT_EQ(Told("reconfigure-target-behind"), 1);
  // As far as the most advanced: the asked one.
  ReconfigureOp& r = op_.reconfigure();
  r.new_primary.clear();
  r.positions["kv-2"] = {5, 12};
  Run("promote");
  EXPECT_EQ(r.new_primary, "kv-2");
}

TEST_F(ReconfigureProcedureTest, ConfirmWaitsUntilTheNewPrimarySaysItIsPrimaryOfTheEpoch) {
  op_.reconfigure().new_primary = "kv-1";
  Says("kv-1", wire::ReplicaRole::kSecondary, 6, {5, 12});
  EXPECT_EQ(Run("confirm"), "wait");
  EXPECT_NE(Note().find("waiting for kv-1 to say it is the primary of epoch 6 (it says "
                        "secondary at 6, streaming)"),
            std::string::npos)
      << Note();
  Says("kv-1", wire::ReplicaRole::kPrimary, 6, {6, 13});
  EXPECT_EQ(Run("confirm"), "done");
}

}  // namespace
}  // namespace hafab::controller::testsupport
