// The operation journal alone: a scripted procedure, an in-memory store, the fake clock.
#include "controller/op_journal.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

#include "controller/fake_op_state.h"
#include "testing/fake_clock.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;

// Keeps what the journal writes; a commit makes the pending operation records durable.
class MemoryStore : public JournalStore {
 public:
  bool PutRole(const RoleRecord&) override { return false; }
  bool PutInstance(const InstanceRecord&) override { return false; }
  void ForgetRestarts(const std::string&) override {}
  void PutOp(const Operation& op) override { pending.push_back(op); }
  void Emit(const std::string& type, const std::string& message,
            std::map<std::string, std::string> fields) override {
    events.push_back({type, message, std::move(fields)});
  }
  Status Commit() override {
    ++commits;
    if (fail_commits) {
      pending.clear();
      halted = true;  // as the controller: memory is ahead of the store until it reloads
      return Status::Unavailable("store down");
    }
    for (auto& op : pending) durable = op;
    pending.clear();
    return Status::Ok();
  }
  void Publish() override { ++publishes; }
  bool Halted() const override { return halted; }
  void Crash() override { halted = crashed = true; }

  std::vector<std::string> EventTypes() const {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.type);
    return out;
  }

  std::vector<Operation> pending;
  Operation durable;  // the last committed record of the operation
  std::vector<JournalEvent> events;
  int commits = 0;
  int publishes = 0;
  bool fail_commits = false;
  bool halted = false;
  bool crashed = false;
};

// Steps "a", "b", "c"; each returns the next scripted result for it (kDone when none is left),
// and counts its runs.
class ScriptedProcedure : public Procedure {
 public:
  Step Run(Operation& op, const OpView&, OpWrites&) override {
    ++runs[op.step];
    auto& script = results[op.step];
    if (script.empty()) return Step::Done();
    StepResult r = script.front();
    script.pop_front();
    if (r == StepResult::kAbort) return Step::Abort("step " + op.step + " gave up");
    return {r, ""};
  }
  bool Advance(Operation& op) override {
    if (op.step == "a")
      op.step = "b";
    else if (op.step == "b")
      op.step = "c";
    else
      return false;
    return true;
  }
  size_t StepsPerPass(const Operation&) const override { return passes; }
  JournalEvent Finished(const Operation& op, const std::string& timeline) const override {
    return {"test-" + std::string(wire::OpStateName(op.state)), timeline, {{"op", op.id}}};
  }
  void Forget(const Operation& op) override { forgotten.push_back(op.id); }

  std::map<std::string, std::deque<StepResult>> results;
  std::map<std::string, int> runs;
  std::vector<std::string> forgotten;
  size_t passes = 3;
};

Operation NewOp() {
  Operation op;
  op.id = "op-1";
  op.role = "db";
  op.step = "a";
  return op;
}

class OpJournalTest : public ::testing::Test {
 protected:
  testing::FakeClock clock_;
  MemoryStore store_;
  testsupport::FakeOpState view_{clock_};  // read by no step here
  ScriptedProcedure procedure_;
};

TEST_F(OpJournalTest, RunsEveryStepInOrderAndFinishesWithTheTimeline) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.state, wire::OpState::kDone);
  ASSERT_EQ(op.steps.size(), 3u);
  EXPECT_EQ(op.steps[0].name, "a");
  EXPECT_EQ(op.steps[2].name, "c");
  for (const auto& s : op.steps) EXPECT_EQ(s.duration_ms, 0) << s.name;
  EXPECT_EQ(store_.EventTypes(),
            (std::vector<std::string>{"failover-step", "failover-step-done", "failover-step",
                                      "failover-step-done", "failover-step", "failover-step-done",
                                      "test-done"}));
  EXPECT_EQ(store_.events.back().message, "a 0ms, b 0ms, c 0ms");
  EXPECT_EQ(store_.durable.state, wire::OpState::kDone);  // committed
  EXPECT_EQ(procedure_.forgotten, std::vector<std::string>{"op-1"});
}

// A step's start is durable before the step runs: a controller that dies in it resumes it.
TEST_F(OpJournalTest, EachStepStartIsCommittedBeforeItRuns) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["b"] = {StepResult::kWait};
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.step, "b");
  EXPECT_TRUE(store_.durable.step_begun);
  EXPECT_EQ(store_.durable.step, "b");
  ASSERT_EQ(store_.durable.steps.size(), 2u);
  EXPECT_EQ(store_.durable.steps[1].duration_ms, -1);  // running
}

TEST_F(OpJournalTest, AWaitEndsThePassAndTheStepRunsAgainWithoutANewRecord) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["b"] = {StepResult::kWait, StepResult::kWait};
  journal.Drive(op, procedure_);
  journal.Note(op, "waiting for x");
  journal.Note(op, "waiting for x");  // the same note once
  clock_.Advance(100ms);
  journal.Drive(op, procedure_);
  EXPECT_EQ(procedure_.runs["b"], 2);
  EXPECT_EQ(procedure_.runs["c"], 0);
  clock_.Advance(100ms);
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.state, wire::OpState::kDone);
  ASSERT_EQ(op.steps.size(), 3u);  // b recorded once
  EXPECT_EQ(op.steps[1].name, "b");
  EXPECT_EQ(op.steps[1].note, "waiting for x");
  EXPECT_EQ(op.steps[1].duration_ms, 200);
  int waits = 0;
  for (const auto& e : store_.events) waits += e.type == "failover-wait";
  EXPECT_EQ(waits, 1);
  // The metrics: each step's duration once, and the outcome.
  const OpMetrics& m = journal.metrics();
  EXPECT_EQ((m.finished.at({"failover", "done"})), 1u);
  const Histogram& b = m.step_seconds.at({"failover", "b"});
  EXPECT_EQ(b.count(), 1u);
  EXPECT_DOUBLE_EQ(b.sum(), 0.2);
  EXPECT_EQ(m.step_seconds.at({"failover", "a"}).count(), 1u);
}

TEST_F(OpJournalTest, AnAbortFinishesTheOperationFailedWithItsError) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["b"] = {StepResult::kAbort};
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.state, wire::OpState::kFailed);
  EXPECT_EQ(op.error, "step b gave up");
  EXPECT_EQ(op.step, "b");
  EXPECT_EQ(procedure_.runs["c"], 0);
  EXPECT_EQ(store_.events.back().type, "test-failed");
  EXPECT_EQ(store_.durable.state, wire::OpState::kFailed);
  journal.Drive(op, procedure_);  // a finished operation is not run again
  EXPECT_EQ(procedure_.runs["b"], 1);
}

TEST_F(OpJournalTest, APassRunsAtMostStepsPerPassSteps) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.passes = 0;  // one step per pass
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.step, "b");
  EXPECT_EQ(procedure_.runs["b"], 0);
  journal.Drive(op, procedure_);
  journal.Drive(op, procedure_);
  EXPECT_EQ(op.state, wire::OpState::kDone);
}

TEST_F(OpJournalTest, NothingRunsWhileTheStoreIsHalted) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  store_.halted = true;
  journal.Drive(op, procedure_);
  EXPECT_TRUE(procedure_.runs.empty());
  EXPECT_TRUE(op.steps.empty());
}

// The step whose start could not be committed does not run: it would act with nothing in
// the store to resume it from.
TEST_F(OpJournalTest, AStepWhoseStartIsNotCommittedDoesNotRun) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  store_.fail_commits = true;
  journal.Drive(op, procedure_);
  EXPECT_TRUE(procedure_.runs.empty());
  EXPECT_EQ(store_.commits, 1);
}

TEST_F(OpJournalTest, TheTestCrashStopsRightAfterTheStepStartIsRecorded) {
  OpJournal journal(clock_, store_, view_, {.crash_at_step = "b", .crash_exits = false});
  Operation op = NewOp();
  journal.Drive(op, procedure_);
  EXPECT_TRUE(store_.crashed);
  EXPECT_EQ(procedure_.runs["a"], 1);
  EXPECT_EQ(procedure_.runs["b"], 0);
  EXPECT_EQ(store_.durable.step, "b");
  EXPECT_TRUE(store_.durable.step_begun);

  // A new controller resumes from the durable record: b is not recorded twice.
  MemoryStore next_store;
  OpJournal next(clock_, next_store, view_, {});
  Operation resumed = store_.durable;
  next.Drive(resumed, procedure_);
  EXPECT_EQ(resumed.state, wire::OpState::kDone);
  EXPECT_EQ(procedure_.runs["b"], 1);
  ASSERT_EQ(resumed.steps.size(), 3u);
}

// Step durations for decisions (a rollout's ready_timeout) are monotonic: a wall-clock jump
// does not make a step time out, and a resumed step counts from its resumption.
TEST_F(OpJournalTest, StepElapsedIsMonotonicAndCountsFromResumption) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["a"] = {StepResult::kWait};
  journal.Drive(op, procedure_);
  clock_.Advance(300ms);
  clock_.JumpWall(1h);
  EXPECT_EQ(journal.StepElapsed(op), 300ms);

  OpJournal resumed(clock_, store_, view_, {});
  EXPECT_EQ(resumed.StepElapsed(op), 0ms);
  clock_.Advance(50ms);
  EXPECT_EQ(resumed.StepElapsed(op), 50ms);
}

TEST_F(OpJournalTest, RunOnceRunsOneStepAndCompletesItOnlyWhenAsked) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  EXPECT_EQ(journal.RunOnce(op, procedure_, /*complete=*/false), "done");
  EXPECT_EQ(journal.RunOnce(op, procedure_, /*complete=*/false), "done");
  EXPECT_EQ(op.step, "a");
  EXPECT_EQ(op.steps.size(), 1u);
  EXPECT_EQ(journal.RunOnce(op, procedure_, /*complete=*/true), "done");
  EXPECT_EQ(op.step, "b");
  procedure_.results["b"] = {StepResult::kWait};
  EXPECT_EQ(journal.RunOnce(op, procedure_, true), "wait");
  EXPECT_EQ(op.step, "b");
  procedure_.results["b"] = {StepResult::kAbort};
  EXPECT_EQ(journal.RunOnce(op, procedure_, true), "abort");
  EXPECT_EQ(journal.RunOnce(op, procedure_, true), "none");
}

// A step that asks for it has its writes committed and published, and runs again at once: its
// result is judged on the published state. Asking again makes it wait for the next pass.
TEST_F(OpJournalTest, APublishIsCommittedAndPublishedThenTheStepRunsAgain) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["b"] = {StepResult::kPublish, StepResult::kWait};
  journal.Drive(op, procedure_);
  EXPECT_EQ(procedure_.runs["b"], 2);
  EXPECT_EQ(store_.publishes, 1);
  EXPECT_EQ(op.step, "b");
  EXPECT_EQ(op.state, wire::OpState::kRunning);

  procedure_.results["b"] = {StepResult::kPublish, StepResult::kPublish};
  journal.Drive(op, procedure_);
  EXPECT_EQ(procedure_.runs["b"], 4);
  EXPECT_EQ(store_.publishes, 2);
  EXPECT_EQ(op.step, "b");  // waits

  journal.Drive(op, procedure_);
  EXPECT_EQ(op.state, wire::OpState::kDone);
}

// A publish whose commit fails publishes nothing: agents and gateways hear only what is stored.
TEST_F(OpJournalTest, APublishWhoseCommitFailsPublishesNothing) {
  OpJournal journal(clock_, store_, view_, {});
  Operation op = NewOp();
  procedure_.results["a"] = {StepResult::kPublish};
  ASSERT_EQ(journal.RunOnce(op, procedure_, false), "done");  // published, then done
  store_.fail_commits = true;
  procedure_.results["a"] = {StepResult::kPublish};
  EXPECT_EQ(journal.RunOnce(op, procedure_, false), "wait");
  EXPECT_EQ(store_.publishes, 1);
  EXPECT_EQ(procedure_.runs["a"], 3);
}

}  // namespace
}  // namespace hafab::controller
