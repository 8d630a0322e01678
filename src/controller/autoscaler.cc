#include "controller/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace hafab::controller {

namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Seconds(Duration d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace

AutoscaleDecision Autoscaler::Evaluate(const std::string& role, const AutoscalePolicy& p,
                                       int current, const std::vector<double>& samples,
                                       const std::string& metric) {
  const TimePoint now = clock_.Now();
  auto [it, fresh] = state_.try_emplace(role);
  RoleState& s = it->second;
  if (fresh) s.first_seen = now;

  AutoscaleDecision d;
  d.current = current;
  d.desired = current;
  d.samples = static_cast<int>(samples.size());
  const int lo = std::max(1, p.min), hi = std::max(lo, p.max);
  auto changed_to = [&](int n, std::string why) {
    d.desired = n;
    d.reason = std::move(why);
    if (d.desired != current) s.last_change = now;
    return d;
  };

  if (current < lo || current > hi) {
    int n = std::clamp(current, lo, hi);
    d.recommendation = n;
    return changed_to(n, std::to_string(current) + " instances is outside min " +
                             std::to_string(lo) + " / max " + std::to_string(hi) + ": " +
                             std::to_string(current) + " -> " + std::to_string(n));
  }
  if (samples.empty()) {
    d.recommendation = current;
    d.reason = "no instance reports " + metric + " yet";
    return d;
  }

  double sum = 0;
  for (double v : samples) sum += std::max(0.0, v);
  d.value = sum / static_cast<double>(samples.size());
  const double per_current = sum / static_cast<double>(current);
  int rec;
  if (std::abs(per_current / p.target - 1.0) <= p.tolerance) {
    rec = current;
  } else {
    // 1e-9: 2 instances carrying exactly 2 x target need 2, not 3.
    rec = static_cast<int>(std::ceil(sum / p.target - 1e-9));
  }
  rec = std::clamp(rec, lo, hi);
  d.recommendation = rec;

  s.recommendations.emplace_back(now, rec);
  while (!s.recommendations.empty() && s.recommendations.front().first + p.stabilization < now) {
    s.recommendations.pop_front();
  }

  const std::string load = metric + " " + Num(d.value) + " per instance over " +
                           std::to_string(samples.size()) + " (target " + Num(p.target) + ")";
  int want = current;
  std::string why;
  if (rec > current) {
    want = rec;
    why = load + ": " + std::to_string(current) + " -> " + std::to_string(rec);
  } else if (rec < current) {
    if (now - s.first_seen < p.stabilization) {
      d.reason = load + ": would scale down to " + std::to_string(rec) + ", watching for " +
                 Seconds(p.stabilization) + " first";
      return d;
    }
    int highest = rec;
    for (const auto& [t, r] : s.recommendations) highest = std::max(highest, r);
    want = std::min(current, highest);
    if (want == current) {
      d.reason = load + ": would scale down to " + std::to_string(rec) + ", but " +
                 std::to_string(highest) + " was recommended within the last " +
                 Seconds(p.stabilization);
      return d;
    }
    why = load + ": " + std::to_string(current) + " -> " + std::to_string(want) +
          " (the highest recommendation over the last " + Seconds(p.stabilization) + ")";
  } else {
    d.reason = load + ": " + std::to_string(current) + " is right";
    return d;
  }
  if (s.last_change && now - *s.last_change < p.cooldown) {
    d.reason = load + ": would scale to " + std::to_string(want) + ", cooling down for " +
               Seconds(*s.last_change + p.cooldown - now);
    return d;
  }
  return changed_to(want, why);
}

}  // namespace hafab::controller
