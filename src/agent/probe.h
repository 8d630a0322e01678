// Probe results and their thresholds: the pure part of probing, driven by the results the
// probe runner (probe_runner.h) delivers. Readiness tells busy (the seed's StatusCheck
// "busy": out of rotation, not restarted) apart from failed.
#pragma once

#include <string_view>

#include "wire/states.h"

namespace hafab::agent {

enum class ProbeOutcome { kOk, kBusy, kFailed };
using wire::Liveness;
using wire::Readiness;

// Counts consecutive results against the thresholds. Not thread-safe.
class ProbeTracker {
 public:
  // REQUIRES: thresholds >= 1.
  ProbeTracker(int failure_threshold, int success_threshold)
      : failure_threshold_(failure_threshold), success_threshold_(success_threshold) {}

  void Record(ProbeOutcome outcome);

  // ok after success_threshold consecutive successes (busy counts as alive); failing after
  // a failure; failed after failure_threshold consecutive failures.
  Liveness liveness() const { return liveness_; }
  // ready after success_threshold consecutive successes; busy at once; failed after
  // failure_threshold consecutive failures; otherwise the previous state.
  Readiness readiness() const { return readiness_; }
  bool ever_succeeded() const { return ever_succeeded_; }

 private:
  int failure_threshold_;
  int success_threshold_;
  int failures_ = 0;
  int successes_ = 0;
  bool ever_succeeded_ = false;
  Liveness liveness_ = Liveness::kUnknown;
  Readiness readiness_ = Readiness::kUnknown;
};

}  // namespace hafab::agent
