#include "agent/probe.h"

namespace hafab::agent {

void ProbeTracker::Record(ProbeOutcome outcome) {
  if (outcome == ProbeOutcome::kFailed) {
    successes_ = 0;
    ++failures_;
    if (failures_ >= failure_threshold_) {
      liveness_ = Liveness::kFailed;
      readiness_ = Readiness::kFailed;
    } else {
      liveness_ = Liveness::kFailing;
    }
    return;
  }
  failures_ = 0;
  ever_succeeded_ = true;
  if (outcome == ProbeOutcome::kBusy) {
    // Alive but not taking work: never a reason to restart.
    successes_ = 0;
    readiness_ = Readiness::kBusy;
    liveness_ = Liveness::kOk;
    return;
  }
  ++successes_;
  if (successes_ >= success_threshold_) {
    liveness_ = Liveness::kOk;
    readiness_ = Readiness::kReady;
  }
}

}  // namespace hafab::agent
