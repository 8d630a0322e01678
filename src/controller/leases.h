// LeaseTable: in-memory leases of nodes (or gateways) renewed by heartbeats. Renewing and
// expiring cost O(log n) each: deadlines sit in an ordered set, and PopExpired only looks
// at its front, so detection never scans every holder (DESIGN: "Heartbeats never go
// through the store"). A renewal copies no name and allocates nothing: the set points at the
// holder's name in the hash map, and its entry moves to the new deadline, usually the
// latest (a hint at the end).
#pragma once

#include <set>
#include <string>
#include <unordered_map>
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
  // Every live holder, by name (for status pages; O(n log n)).
  std::vector<std::string> Holders() const;

 private:
  // A deadline and the holder's name (the key in deadline_, whose address is stable).
  using Entry = std::pair<TimePoint, const std::string*>;
  struct ByDeadline {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };

  std::unordered_map<std::string, TimePoint> deadline_;
  std::set<Entry, ByDeadline> by_deadline_;
};

}  // namespace hafab::controller
