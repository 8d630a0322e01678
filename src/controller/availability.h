// Availability of a role over time: when it had no routable instance (the gateway had
// nothing to send a new connection to). The controller records each change (an event and
// the role's record `/hafab/availability/<role>`); `hafab sla ROLE` reads the fraction of a
// window during which the role was routable — the figure an SLA such as 99.95 % speaks of.
//
// What it can and cannot see: the controller judges from the routes it publishes (ready,
// not busy, out-of-rotation instances excluded), which gateways apply within one long-poll;
// while no controller runs, the last recorded state is assumed to hold. A role is tracked from
// the first time a controller sees it routable; its record is written with its first outage,
// so a controller restarted before any outage starts the record afresh.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace hafab::controller {

inline constexpr char kAvailabilityPrefix[] = "/hafab/availability/";

class AvailabilityLog {
 public:
  // Wall-clock milliseconds throughout. The log starts at `since_ms`, routable.
  explicit AvailabilityLog(int64_t since_ms = 0) : since_ms_(since_ms) {}

  // The role is (or is not) routable from `at_ms` on. Returns true when that is a change.
  bool Record(bool routable, int64_t at_ms);
  bool routable() const { return outages_.empty() || outages_.back().second != 0; }
  int64_t since_ms() const { return since_ms_; }

  struct Report {
    int64_t from_ms = 0, to_ms = 0;  // the part of the window the log covers
    int64_t unavailable_ms = 0;
    int outages = 0;  // outages overlapping the window
    std::vector<std::pair<int64_t, int64_t>>
        windows;  // those outages, clipped; end = to_ms if open
    double availability() const {
      return to_ms > from_ms ? 1.0 - static_cast<double>(unavailable_ms) / (to_ms - from_ms) : 1.0;
    }
  };
  // Over [now - window, now], clipped to the log's start.
  Report Over(int64_t window_ms, int64_t now_ms) const;

  // Keeps at most `n` outages (the oldest go; the log then starts after them).
  void Trim(size_t n);

  nlohmann::json ToJson() const;
  static Result<AvailabilityLog> FromJson(const nlohmann::json& j);

 private:
  int64_t since_ms_;
  std::vector<std::pair<int64_t, int64_t>> outages_;  // [start, end); end 0 = still out
};

}  // namespace hafab::controller
