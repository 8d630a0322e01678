// LeaseTable: in-memory leases of nodes (or gateways) renewed by heartbeats. Renewing and
// expiring cost O(log n) each: deadlines sit in an ordered set, and PopExpired only looks
// at its front, so detection never scans every holder (DESIGN: "Heartbeats never go
// through the store"). A renewal copies no name, allocates nothing and searches no tree: the
// holder's entry (found by hash) names its place in the ordered set, which points back at the
// holder's name, and that place moves to the new deadline, usually the latest (a hint at the
// end).
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/name_map.h"

namespace hafab::controller {

// Not thread-safe; the controller uses it from its one event-loop thread.
class LeaseTable {
 public:
  LeaseTable() = default;
  // Its entries point at each other: a copy would point into the original.
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Sets `holder`'s deadline to `deadline` (creating its lease). Returns true when the
  // holder had no live lease before (a new or returning holder).
  bool Renew(const std::string& holder, TimePoint deadline);

  // Removes and returns, in deadline order, every holder whose deadline is <= now.
  std::vector<std::string> PopExpired(TimePoint now);

  // Drops the holder's lease without reporting it as expired.
  void Remove(const std::string& holder);

  bool Live(const std::string& holder) const { return holders_.count(holder) > 0; }
  // REQUIRES: Live(holder).
  TimePoint Deadline(const std::string& holder) const { return holders_.at(holder)->first; }
  size_t size() const { return holders_.size(); }
  // Every live holder, by name (for status pages).
  std::vector<std::string> Holders() const;

 private:
  // A deadline and the holder's name (the key in holders_, whose address is stable).
  using Entry = std::pair<TimePoint, const std::string*>;
  struct ByDeadline {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    }
  };
  using Deadlines = std::set<Entry, ByDeadline>;

  NameMap<Deadlines::iterator> holders_;  // holder -> its entry in by_deadline_
  Deadlines by_deadline_;
};

}  // namespace hafab::controller
