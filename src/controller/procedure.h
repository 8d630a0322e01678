// Procedure: the steps of one kind of long operation — failover (failover_procedure.h),
// rolling upgrade (rollout_procedure.h); reconfiguration of replicated roles next — run by the
// operation journal (op_journal.h). A step reads the state through an OpView, writes into an
// OpWrites and says what happened (Step); it never commits or publishes: the journal commits
// what it wrote (publishing it first when it asks) before acting on its result. Every step's
// start is committed before the step acts and its end after, so a controller that dies mid-way
// resumes at the recorded step. Steps are idempotent.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "controller/op_view.h"
#include "controller/op_writes.h"
#include "controller/records.h"

namespace hafab::controller {

enum class StepResult {
  kDone,     // the step is complete: the journal records it and moves on
  kWait,     // not yet (Step::why says why, for the journal's note): it runs again later
  kAbort,    // the operation fails with the error in Step::why
  kPublish,  // commit and publish what the step wrote, then run it again at once: what it
             // waits for is judged against the published state (a routes version, an
             // assignments generation)
};

// What one run of a step came to.
struct Step {
  StepResult result = StepResult::kDone;
  std::string why;  // kWait: the note ("" for none); kAbort: the error

  static Step Done() { return {StepResult::kDone, ""}; }
  static Step Wait(std::string note = "") { return {StepResult::kWait, std::move(note)}; }
  static Step Abort(std::string error) { return {StepResult::kAbort, std::move(error)}; }
  static Step Publish() { return {StepResult::kPublish, ""}; }
};

struct JournalEvent {
  std::string type;
  std::string message;
  std::map<std::string, std::string> fields;
};

class Procedure {
 public:
  virtual ~Procedure() = default;

  // The name the journal records for the current step (a rollout's names its wave's domains).
  virtual std::string StepLabel(const Operation& op) const { return op.step; }
  // Runs op.step once against `view`, writing into `out` (and `op`: its own record, which it
  // puts into `out` when it changes it). May be run again after a crash at any point, so it is
  // idempotent; after a kPublish it runs again with nothing new to write.
  virtual Step Run(Operation& op, const OpView& view, OpWrites& out) = 0;
  // Moves op.step past the step just done; false when that was the last.
  virtual bool Advance(Operation& op) = 0;
  // The most steps one pass of the journal runs (each step at most once per pass).
  virtual size_t StepsPerPass(const Operation& op) const = 0;
  // The event that tells of `op`'s end (op.state: done or failed; `timeline`: its steps and
  // their durations, "fence 12ms, stop 3ms, ...").
  virtual JournalEvent Finished(const Operation& op, const std::string& timeline) const = 0;
  // `op` has finished: forget what was kept in memory for it.
  virtual void Forget(const Operation& op) { (void)op; }
};

}  // namespace hafab::controller
