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
  // Judged: the roles whose endpoint changed since the last judgement (Publish lists them);
  // every role the first time and after the routes were rebuilt whole.
  std::set<std::string> judged;
  judged.swap(availability_dirty_);
  if (availability_all_) {
    availability_all_ = false;
    for (const wire::RouteEndpoint& ep : routes_.endpoints) judged.insert(ep.role);
    for (const auto& [role, log] : availability_) judged.insert(role);
  }
  const auto& endpoints = routes_.endpoints;  // sorted by role
  for (const std::string& role : judged) {
    auto ep = RouteOf(endpoints, role);
    auto it = availability_.find(role);
    if (ep == endpoints.end() || ep->role != role) {  // no endpoint any more: forgotten
      if (it != availability_.end()) {
        pending_.push_back(store::Op::Delete(kAvailabilityPrefix + role));
        availability_.erase(it);
      }
      continue;
    }
    bool up = false;
    for (const wire::RouteBackend& b : ep->backends) up |= b.ready && !b.busy;
    if (it == availability_.end()) {
      // Tracked from the first time it is routable; written with its first outage (steady
      // state writes nothing).
      if (up) availability_.emplace(role, AvailabilityLog(now_ms));
      continue;
    }
    if (!it->second.Record(up, now_ms)) continue;
    Emit(
        up ? "role-routable" : "role-unroutable",
        "role " + role +
            (up ? " is routable again" : " has no routable instance: new connections wait or fail"),
        {{"role", role}});
    it->second.Trim(kOutagesKept);
    pending_.push_back(store::Op::Put(kAvailabilityPrefix + role, Dump(it->second.ToJson())));
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
