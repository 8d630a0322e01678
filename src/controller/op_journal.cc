#include "controller/op_journal.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

namespace hafab::controller {

namespace {

std::map<std::string, std::string> OpFields(const Operation& op) {
  return {{"op", op.id}, {"role", op.role}, {"step", op.step}};
}

std::string KindName(const Operation& op) { return std::string(wire::OpKindName(op.kind())); }

}  // namespace

OpJournal::OpJournal(Clock& clock, JournalStore& store, const OpView& view, JournalOptions opts)
    : clock_(clock), store_(store), view_(view), opts_(std::move(opts)) {}

void OpJournal::Drive(Operation& op, Procedure& procedure) {
  const size_t passes = procedure.StepsPerPass(op);
  for (size_t pass = 0; pass <= passes; ++pass) {
    if (op.state != wire::OpState::kRunning || store_.Halted()) return;
    if (!op.step_begun && !BeginStep(op, procedure)) return;
    Step step = RunStep(op, procedure);
    switch (step.result) {
      case StepResult::kPublish:  // RunStep made it a wait
      case StepResult::kWait:
        if (!step.why.empty()) Note(op, step.why);
        (void)store_.Commit();
        return;
      case StepResult::kAbort:
        Finish(op, procedure, wire::OpState::kFailed, step.why);
        return;
      case StepResult::kDone:
        CompleteStep(op, procedure);
        break;
    }
  }
}

std::string OpJournal::RunOnce(Operation& op, Procedure& procedure, bool complete) {
  if (op.state != wire::OpState::kRunning) return "none";
  if (!op.step_begun && !BeginStep(op, procedure)) return "crashed";
  Step step = RunStep(op, procedure);
  if (step.result == StepResult::kDone && complete) CompleteStep(op, procedure);
  if (step.result == StepResult::kWait && !step.why.empty()) Note(op, step.why);
  if (step.result == StepResult::kAbort) Finish(op, procedure, wire::OpState::kFailed, step.why);
  (void)store_.Commit();
  return step.result == StepResult::kDone    ? "done"
         : step.result == StepResult::kAbort ? "abort"
                                             : "wait";
}

Step OpJournal::RunStep(Operation& op, Procedure& procedure) {
  Step step = procedure.Run(op, view_, store_);
  if (step.result != StepResult::kPublish) return step;
  // Agents and gateways hear only what is stored.
  if (!store_.Commit().ok()) return Step::Wait();
  store_.Publish();
  step = procedure.Run(op, view_, store_);
  if (step.result == StepResult::kPublish) return Step::Wait();
  return step;
}

bool OpJournal::BeginStep(Operation& op, Procedure& procedure) {
  op.step_begun = true;
  std::string name = procedure.StepLabel(op);
  op.steps.push_back({name, WallMs(clock_), -1, ""});
  step_began_[op.id] = clock_.Now();
  store_.PutOp(op);
  store_.Emit(KindName(op) + "-step", op.role + " (" + op.id + "): step " + name + " started",
              OpFields(op));
  if (!store_.Commit().ok()) return false;
  if (!opts_.crash_at_step.empty() && op.step == opts_.crash_at_step) {
    if (opts_.crash_exits) {
      spdlog::critical("HAFAB_TEST_CRASH_AT_STEP={}: exiting after recording the step's start",
                       op.step);
      _exit(137);
    }
    store_.Crash();
    return false;
  }
  return true;
}

void OpJournal::CompleteStep(Operation& op, Procedure& procedure) {
  int64_t took = 0;
  if (!op.steps.empty()) {
    // Wall time, for the timeline: a step resumed by a new controller includes the gap.
    took = std::max<int64_t>(0, WallMs(clock_) - op.steps.back().started_ms);
    op.steps.back().duration_ms = took;
  }
  metrics_.step_seconds.try_emplace({KindName(op), op.step}, Histogram::Seconds())
      .first->second.Observe(static_cast<double>(took) / 1000);
  std::string done = op.steps.empty() ? op.step : op.steps.back().name;
  store_.Emit(
      KindName(op) + "-step-done",
      op.role + " (" + op.id + "): step " + done + " done in " + std::to_string(took) + "ms",
      OpFields(op));
  if (!procedure.Advance(op)) {
    Finish(op, procedure, wire::OpState::kDone, "");
    return;
  }
  op.step_begun = false;
  store_.PutOp(op);
  (void)store_.Commit();
}

void OpJournal::Finish(Operation& op, Procedure& procedure, wire::OpState state,
                       const std::string& error) {
  op.state = state;
  op.step_begun = false;
  op.error = error;
  op.finished_ms = WallMs(clock_);
  const std::pair<std::string, std::string> outcome{KindName(op),
                                                    std::string(wire::OpStateName(state))};
  ++metrics_.finished[outcome];
  metrics_.seconds.try_emplace(outcome, Histogram::Seconds())
      .first->second.Observe(static_cast<double>(op.finished_ms - op.created_ms) / 1000.0);
  store_.PutOp(op);
  step_began_.erase(op.id);
  procedure.Forget(op);
  std::string timeline;
  for (const auto& s : op.steps) {
    timeline +=
        (timeline.empty() ? "" : ", ") + s.name + " " + std::to_string(s.duration_ms) + "ms";
  }
  JournalEvent e = procedure.Finished(op, timeline);
  store_.Emit(e.type, e.message, std::move(e.fields));
  (void)store_.Commit();
}

void OpJournal::Note(Operation& op, const std::string& note) {
  if (op.steps.empty() || op.steps.back().note == note) return;
  op.steps.back().note = note;
  store_.PutOp(op);
  store_.Emit(KindName(op) + "-wait", op.role + " (" + op.id + "): " + note, OpFields(op));
}

Duration OpJournal::StepElapsed(const Operation& op) const {
  auto it = step_began_.try_emplace(op.id, clock_.Now()).first;
  return clock_.Now() - it->second;
}

}  // namespace hafab::controller
