// Autoscaler: how many instances a load-balanced role should have, from a metric its
// instances report, between the role's min and max. A plain class on a Clock&, so the
// stabilisation rules are unit-tested on a FakeClock; the controller feeds it samples
// (controller_autoscale.cc) and acts on its decisions.
//
// The rules (Kubernetes' HPA, plus a cooldown):
//   - recommendation = ceil(sum of the samples / target), i.e. the number of instances that
//     would each carry `target`; kept at `current` while the per-instance value is within
//     `tolerance` (10%) of the target; clamped to [min, max];
//   - scale up at once to the recommendation;
//   - scale down only to the HIGHEST recommendation seen over the last `stabilization`
//     (and not before the autoscaler has watched the role for that long), so a noisy signal
//     that dips briefly does not remove instances;
//   - after any change, no other change for `cooldown` (new instances need time to take
//     load; removing them again at once is flapping);
//   - a current count outside [min, max] is brought back at once, whatever the cooldown.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace hafab::controller {

struct AutoscalePolicy {
  int min = 1;
  int max = 1;
  double target = 70;  // per instance, in the metric's unit
  Duration stabilization = std::chrono::seconds(30);
  Duration cooldown = std::chrono::seconds(30);
  double tolerance = 0.1;  // relative band around the target where nothing changes
};

struct AutoscaleDecision {
  int current = 0;
  int desired = 0;         // == current: no change
  int recommendation = 0;  // this sample's recommendation, before stabilisation and cooldown
  double value = 0;        // the metric per reporting instance (mean of the samples)
  int samples = 0;         // how many instances reported
  std::string reason;      // why `desired` is what it is, for events and status
  bool changed() const { return desired != current; }
};

// Not thread-safe (the controller's event-loop thread calls it).
class Autoscaler {
 public:
  explicit Autoscaler(Clock& clock) : clock_(clock) {}

  // One evaluation for `role`, now. `current` is the role's instance count; `samples` holds
  // the metric of each instance able to report it (ready instances). With no samples the
  // count stays (nothing to judge by), except to bring it into [min, max].
  // A returned change is taken as done: the cooldown starts now.
  AutoscaleDecision Evaluate(const std::string& role, const AutoscalePolicy& policy, int current,
                             const std::vector<double>& samples, const std::string& metric_name);

  // Drops what is remembered about `role` (removed, or no longer autoscaled).
  void Forget(const std::string& role) { state_.erase(role); }

 private:
  struct RoleState {
    TimePoint first_seen{};
    std::deque<std::pair<TimePoint, int>> recommendations;  // oldest first
    std::optional<TimePoint> last_change;
  };

  Clock& clock_;
  std::map<std::string, RoleState> state_;
};

}  // namespace hafab::controller
