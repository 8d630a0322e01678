// LeaseTable: in-memory leases of nodes (or gateways) renewed by heartbeats. Renewing and
// expiring cost O(log n) each: deadlines sit in an ordered set, and PopExpired only looks
// at its front, so detection never scans every holder (DESIGN: "Heartbeats never go
// through the store").
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace hafab::controller {

// Not thread-safe; the controller uses it from its one event-loop thread.
class LeaseTable {
 public:
  // Sets `holder`'s deadline to `deadline` (creating its lease). Returns true when the
  // holder had no live lease before (a new or returning holder).
  bool Renew(const std::string& holder, TimePoint deadline);

  // Removes and returns, in deadline order, every holder whose deadline is <= now.
  std::vector<std::string> PopExpired(TimePoint now);

  // Drops the holder's lease without reporting it as expired.
  void Remove(const std::string& holder);

  bool Live(const std::string& holder) const { return deadline_.count(holder) > 0; }
  // REQUIRES: Live(holder).
  TimePoint Deadline(const std::string& holder) const { return deadline_.at(holder); }
  size_t size() const { return deadline_.size(); }
  // Every live holder, by name (for status pages; O(n)).
  std::vector<std::string> Holders() const;

 private:
  std::map<std::string, TimePoint> deadline_;
  std::set<std::pair<TimePoint, std::string>> by_deadline_;
};

}  // namespace hafab::controller
