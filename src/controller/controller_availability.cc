// Availability records (availability.h): after each publish, whether every role with an
// endpoint has at least one routable backend; changes become events and are persisted.
#include "controller/availability.h"
#include "controller/controller.h"
#include "core/json.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

constexpr size_t kOutagesKept = 1000;

}  // namespace

void Controller::TrackAvailability() {
  if (crashed_ || reload_needed_) return;
  // A new controller has heard nobody yet: routes are empty until every node had a lease
  // to report. Judging before that would record an outage at every controller start.
  if (clock_.Now() < started_at_ + opts_.lease_ttl) return;
  // Whether a role is routable changes only with the routes: judged once per version.
  if (routes_version_ == availability_routes_version_) return;
  availability_routes_version_ = routes_version_;
  const int64_t now_ms = WallMs(clock_);
  std::map<std::string, bool> routable;
  for (const wire::RouteEndpoint& ep : routes_.endpoints) {
    bool any = false;
    for (const wire::RouteBackend& b : ep.backends) any |= b.ready && !b.busy;
    routable[ep.role] = any;
  }
  for (const auto& [role, up] : routable) {
    auto it = availability_.find(role);
    if (it == availability_.end()) {
      // Tracked from the first time it is routable; written with its first outage (steady
      // state writes nothing).
      if (up) availability_.emplace(role, AvailabilityLog(now_ms));
      continue;
    }
    if (it->second.Record(up, now_ms)) {
      Emit(up ? "role-routable" : "role-unroutable",
           "role " + role +
               (up ? " is routable again"
                   : " has no routable instance: new connections wait or fail"),
           {{"role", role}});
    } else {
      continue;
    }
    it->second.Trim(kOutagesKept);
    pending_.push_back(store::Op::Put(kAvailabilityPrefix + role, Dump(it->second.ToJson())));
  }
  for (auto it = availability_.begin(); it != availability_.end();) {
    if (routable.count(it->first)) {
      ++it;
      continue;
    }
    pending_.push_back(store::Op::Delete(kAvailabilityPrefix + it->first));
    it = availability_.erase(it);
  }
}

Result<json> Controller::Sla(const std::string& role, Duration window) {
  if (!roles_.count(role)) return Status::NotFound("role " + role + " does not exist");
  if (!roles_.at(role).spec.endpoint) {
    return Status::InvalidArgument("role: " + role +
                                   " has no endpoint; availability is measured at the gateway");
  }
  if (window <= Duration::zero()) return Status::InvalidArgument("window: must be positive");
  const int64_t now_ms = WallMs(clock_);
  auto it = availability_.find(role);
  if (it == availability_.end()) {
    return json{{"role", role},
                {"window_ms", ToMs(window)},
                {"observed_ms", 0},
                {"unavailable_ms", 0},
                {"availability", nullptr},
                {"outages", json::array()},
                {"note", "not routable yet since this controller started recording"}};
  }
  AvailabilityLog::Report r = it->second.Over(ToMs(window), now_ms);
  json outages = json::array();
  for (const auto& [s, e] : r.windows) {
    outages.push_back({{"start_ms", s}, {"end_ms", e}, {"duration_ms", e - s}});
  }
  return json{{"role", role},
              {"window_ms", ToMs(window)},
              {"from_ms", r.from_ms},
              {"to_ms", r.to_ms},
              {"observed_ms", r.to_ms - r.from_ms},
              {"unavailable_ms", r.unavailable_ms},
              {"availability", r.availability()},
              {"routable", it->second.routable()},
              {"outages", outages}};
}

}  // namespace hafab::controller
