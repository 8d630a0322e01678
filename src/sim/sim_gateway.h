// SimGateway: a gateway of the simulated cluster: the real RouteTable, compiled from each
// routes version the controller publishes, and the gateway's lease (control_plane.h): without
// a renewal for the lease TTL it stops routing active-passive endpoints by itself.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "gateway/route_table.h"

namespace hafab::sim {

class SimGateway {
 public:
  explicit SimGateway(std::string id) : id_(std::move(id)) {}

  const std::string& id() const { return id_; }
  uint64_t version() const { return table_ ? table_->version() : 0; }
  const gateway::RouteTable* table() const { return table_.get(); }

  // Installs a newer table; false when `routes` is not newer or does not compile. What it
  // compiled anew (not shared with the table before) is in table()->compiled().
  bool Install(const wire::Routes& routes) {
    if (routes.version <= static_cast<int64_t>(version())) return false;
    auto table = gateway::RouteTable::Compile(routes, table_.get());
    if (!table.ok()) return false;
    table_ = *table;
    return true;
  }
  void Renewed(TimePoint deadline) {
    if (deadline > lease_deadline_) lease_deadline_ = deadline;
  }
  bool LeaseValid(TimePoint now) const { return now < lease_deadline_; }

  // Its long poll for routes: an answer is on the way, and another is wanted after it.
  bool poll_in_flight = false;
  bool poll_again = false;
  uint64_t polls = 0;  // numbers the answers, so that a late one or its timeout is told apart

  // The backend a new connection to `role`'s endpoint goes to now; nullptr when none may serve.
  const gateway::Backend* Route(const std::string& role, TimePoint now, Random& random) const {
    const gateway::Endpoint* found = table_ ? table_->FindByRole(role) : nullptr;
    if (found == nullptr) return nullptr;
    const gateway::Endpoint& e = *found;
    if (e.mode == gateway::RoutingMode::kActivePassive) {
      if (!LeaseValid(now)) return nullptr;
      int i = e.PrimaryIndex();
      return i < 0 ? nullptr : &e.backends[static_cast<size_t>(i)];
    }
    std::vector<size_t> ok;
    for (size_t i = 0; i < e.backends.size(); ++i) {
      if (e.Routable(i)) ok.push_back(i);
    }
    return ok.empty() ? nullptr : &e.backends[ok[random.Uniform(ok.size())]];
  }

 private:
  std::string id_;
  std::shared_ptr<const gateway::RouteTable> table_;
  TimePoint lease_deadline_{};
};

}  // namespace hafab::sim
