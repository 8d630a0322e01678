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

// What a report is made of, by the counters that move when it may change: the same version,
// the same report.
struct ReportVersion {
  uint64_t generation = 0;  // the assignments generation applied
  uint64_t supervisor = 0;  // Supervisor::changes()
  uint64_t volumes = 0;     // VolumeManager::changes()
  bool operator==(const ReportVersion&) const = default;
};

// Not thread-safe: the agent's io thread.
class ReportTracker {
 public:
  // `first_id`: the first report's id, drawn at random by the caller so that an id names one
  // report across restarts of the agent (a controller may hold a report of an earlier run).
  explicit ReportTracker(uint64_t first_id) : next_id_(first_id == 0 ? 1 : first_id) {}

  // Makes `hb`, which holds no report, a keep-alive if the report would be the same as the last
  // one answered, known without building it: `version` has not moved since a report was found
  // the same (or sent). False: build the report and call Prepare.
  bool KeepAlive(const ReportVersion& version, wire::AgentHeartbeat& hb);
  // `hb` holds the full report. It becomes a keep-alive when its report is the same as the
  // last one sent and that one was answered; otherwise it goes whole under a new id.
  void Prepare(wire::AgentHeartbeat& hb, const ReportVersion& version);
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
  ReportVersion version_;                     // whose report is known to be last_'s
};

}  // namespace hafab::agent
