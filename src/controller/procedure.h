// Procedure: the steps of one kind of long operation — failover (failover.cc), rolling
// upgrade (rollout.cc); reconfiguration of replicated roles next — run by the operation
// journal (op_journal.h). The procedure decides what a step does; the journal records it:
// every step's start is committed before the step acts and its end after, so a controller
// that dies mid-way resumes at the recorded step. Steps are idempotent.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "controller/records.h"

namespace hafab::controller {

enum class StepResult {
  kDone,   // the step is complete: the journal records it and moves on
  kWait,   // not yet (a note in the journal says why): the same step runs again later
  kAbort,  // the operation fails; op.error says why
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
  // Runs op.step once. May be run again after a crash at any point, so it is idempotent.
  virtual StepResult Run(Operation& op) = 0;
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
