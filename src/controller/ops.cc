// The operation journal: every step of an operation is recorded in the store before it
// acts (the step's name and start time) and after it completes (its duration and the next
// step), so a controller that dies mid-way resumes at the recorded step. Steps are
// idempotent, so running the recorded step again is always safe.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>

#include "controller/controller.h"
#include "controller/rollout.h"

namespace hafab::controller {

namespace {

std::string NextStep(const std::string& step) {
  constexpr size_t n = std::size(kFailoverSteps);
  for (size_t i = 0; i + 1 < n; ++i) {
    if (step == kFailoverSteps[i]) return kFailoverSteps[i + 1];
  }
  return "done";
}

}  // namespace

void Controller::BeginStep(Operation& op) {
  op.step_begun = true;
  // A rollout's steps repeat per wave of update domains: the record names the domains.
  std::string name =
      op.kind == wire::OpKind::kRollout ? op.step + " " + RolloutWaveLabel(op) : op.step;
  op.steps.push_back({name, WallMs(clock_), -1, ""});
  step_began_[op.id] = clock_.Now();
  PutOp(op);
  Emit(std::string(wire::OpKindName(op.kind)) + "-step",
       op.role + " (" + op.id + "): step " + name + " started",
       {{"op", op.id}, {"role", op.role}, {"step", op.step}});
  Status st = Commit();
  if (!st.ok()) return;
  if (!opts_.crash_at_step.empty() && op.step == opts_.crash_at_step) {
    if (opts_.crash_exits) {
      spdlog::critical("HAFAB_TEST_CRASH_AT_STEP={}: exiting after recording the step's start",
                       op.step);
      _exit(137);
    }
    crashed_ = true;  // in-process "crash": nothing more is persisted or published
  }
}

void Controller::CompleteStep(Operation& op) {
  int64_t took = 0;
  if (!op.steps.empty()) {
    // Wall time, for the timeline: a step resumed by a new controller includes the gap.
    took = std::max<int64_t>(0, WallMs(clock_) - op.steps.back().started_ms);
    op.steps.back().duration_ms = took;
  }
  std::string done = op.steps.empty() ? op.step : op.steps.back().name;
  Emit(std::string(wire::OpKindName(op.kind)) + "-step-done",
       op.role + " (" + op.id + "): step " + done + " done in " + std::to_string(took) + "ms",
       {{"op", op.id}, {"role", op.role}, {"step", op.step}});
  if (op.kind == wire::OpKind::kRollout) {
    if (!NextRolloutStep(op)) {
      FinishOp(op, wire::OpState::kDone, "");
      return;
    }
  } else {
    std::string next = NextStep(op.step);
    if (next == "done") {
      FinishOp(op, wire::OpState::kDone, "");
      return;
    }
    op.step = next;
  }
  op.step_begun = false;
  PutOp(op);
  (void)Commit();
}

Duration Controller::StepElapsed(const Operation& op) {
  auto it = step_began_.try_emplace(op.id, clock_.Now()).first;
  return clock_.Now() - it->second;
}

void Controller::FinishOp(Operation& op, wire::OpState state, const std::string& error) {
  op.state = state;
  const std::string state_name(wire::OpStateName(state));
  const std::string kind(wire::OpKindName(op.kind));
  op.step_begun = false;
  op.error = error;
  op.finished_ms = WallMs(clock_);
  PutOp(op);
  fence_version_.erase(op.id);
  step_began_.erase(op.id);
  std::string timeline;
  for (const auto& s : op.steps) {
    timeline +=
        (timeline.empty() ? "" : ", ") + s.name + " " + std::to_string(s.duration_ms) + "ms";
  }
  if (op.kind == wire::OpKind::kRollout) {
    std::string what = op.rollback ? "rollback" : "rollout";
    Emit(what + "-" + state_name,
         op.role + " (" + op.id + "): " + what + " to " + VersionName(op.to_version) + " " +
             state_name + " after " + std::to_string(op.finished_ms - op.created_ms) + "ms" +
             (error.empty() ? "" : ": " + error) + " [" + timeline + "]",
         {{"op", op.id}, {"role", op.role}});
  } else if (state == wire::OpState::kDone) {
    Emit("failover-done",
         op.role + " (" + op.id + "): " + op.new_primary + " on " + op.new_node +
             " is primary at epoch " + std::to_string(op.epoch) + " after " +
             std::to_string(op.finished_ms - op.created_ms) + "ms [" + timeline + "]",
         {{"op", op.id}, {"role", op.role}, {"node", op.new_node}});
  } else {
    Emit(kind + "-" + state_name,
         op.role + " (" + op.id + ") " + state_name + " at step " + op.step + ": " + error,
         {{"op", op.id}, {"role", op.role}});
  }
  (void)Commit();
}

void Controller::Note(Operation& op, const std::string& note) {
  if (op.steps.empty() || op.steps.back().note == note) return;
  op.steps.back().note = note;
  PutOp(op);
  Emit(std::string(wire::OpKindName(op.kind)) + "-wait", op.role + " (" + op.id + "): " + note,
       {{"op", op.id}, {"role", op.role}, {"step", op.step}});
}

void Controller::AdvanceOps() {
  std::vector<std::string> running;
  for (const auto& [role, id] : running_ops_) running.push_back(id);
  for (const auto& id : running) {
    if (crashed_ || reload_needed_) return;
    auto it = ops_.find(id);
    if (it != ops_.end()) AdvanceOp(it->second);
  }
}

void Controller::AdvanceOp(Operation& op) {
  if (!opts_.drive_ops) return;
  // Bounded: a pass runs each step at most once.
  const size_t passes = op.kind == wire::OpKind::kRollout
                            ? std::size(kRolloutSteps) * (op.domains.size() + 1)
                            : std::size(kFailoverSteps);
  for (size_t pass = 0; pass <= passes; ++pass) {
    if (op.state != wire::OpState::kRunning || crashed_ || reload_needed_) return;
    if (!op.step_begun) {
      BeginStep(op);
      if (crashed_ || reload_needed_) return;
    }
    StepResult r = RunStep(op);
    if (r == StepResult::kWait) {
      (void)Commit();
      return;
    }
    if (r == StepResult::kAbort) {
      FinishOp(op, wire::OpState::kFailed, op.error);
      return;
    }
    CompleteStep(op);
  }
}

std::string Controller::RunStepOnce(const std::string& id, bool complete) {
  auto it = ops_.find(id);
  if (it == ops_.end() || it->second.state != wire::OpState::kRunning) return "none";
  Operation& op = it->second;
  if (!op.step_begun) BeginStep(op);
  if (crashed_) return "crashed";
  StepResult r = RunStep(op);
  if (r == StepResult::kDone && complete) CompleteStep(op);
  if (r == StepResult::kAbort) FinishOp(op, wire::OpState::kFailed, op.error);
  (void)Commit();
  Publish();
  return r == StepResult::kDone ? "done" : r == StepResult::kWait ? "wait" : "abort";
}

}  // namespace hafab::controller
