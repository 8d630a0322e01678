// ReportTracker: whether the agent's next heartbeat carries its whole report or is a keep-alive
// naming the last report a controller answered (wire/agent_heartbeat.h). A keep-alive spares
// the controller parsing and comparing a report that has not changed; cpu_percent and rss_bytes
// may drift from the report held by less than kCpuPointsSame and kRssBytesSame.
#pragma once

#include <cstdint>
#include <optional>

#include "wire/agent_heartbeat.h"

namespace hafab::agent {

inline constexpr double kCpuPointsSame = 1.0;                 // percentage points of one core
inline constexpr uint64_t kRssBytesSame = uint64_t{1} << 20;  // 1 MiB

// Whether `a` and `b` report the same: every member of the report equal (instances and volumes
// in the same order), cpu_percent and rss_bytes within the drifts above. The rest of a
// heartbeat (ring, ring_endpoint, fence) is not part of the report.
bool SameReport(const wire::AgentHeartbeat& a, const wire::AgentHeartbeat& b);

// Not thread-safe: the agent's io thread.
class ReportTracker {
 public:
  // `first_id`: the first report's id, drawn at random by the caller so that an id names one
  // report across restarts of the agent (a controller may hold a report of an earlier run).
  explicit ReportTracker(uint64_t first_id) : next_id_(first_id == 0 ? 1 : first_id) {}

  // `hb` holds the full report. It becomes a keep-alive when its report is the same as the
  // last one sent and that one was answered; otherwise it goes whole under a new id.
  void Prepare(wire::AgentHeartbeat& hb);
  // The controller answered a heartbeat that carried report `id` (its `report`; 0 for a
  // keep-alive).
  void Answered(uint64_t id) {
    if (id != 0 && last_ && id == last_->report) answered_ = true;
  }
  // The controller refused a keep-alive (Conflict: it does not hold the report): the next
  // heartbeat goes whole.
  void Refused() { answered_ = false; }

 private:
  uint64_t next_id_;
  std::optional<wire::AgentHeartbeat> last_;  // the last full report sent
  bool answered_ = false;                     // and a controller answered it
};

}  // namespace hafab::agent
