#include "agent/report_tracker.h"

#include <cmath>

namespace hafab::agent {

namespace {

bool SameInstance(const wire::InstanceReport& a, const wire::InstanceReport& b) {
  const uint64_t rss_drift =
      a.rss_bytes > b.rss_bytes ? a.rss_bytes - b.rss_bytes : b.rss_bytes - a.rss_bytes;
  return a.instance == b.instance && a.role == b.role && a.epoch == b.epoch && a.run == b.run &&
         a.state == b.state && a.pid == b.pid && a.liveness == b.liveness &&
         a.readiness == b.readiness && a.restarts == b.restarts && a.last_exit == b.last_exit &&
         a.message == b.message && a.replica == b.replica &&
         std::abs(a.cpu_percent - b.cpu_percent) < kCpuPointsSame && rss_drift < kRssBytesSame;
}

bool SameVolume(const wire::VolumeReport& a, const wire::VolumeReport& b) {
  return a.name == b.name && a.state == b.state && a.instance == b.instance && a.error == b.error;
}

template <typename T, typename Eq>
bool SameList(const std::vector<T>& a, const std::vector<T>& b, Eq eq) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!eq(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

bool SameReport(const wire::AgentHeartbeat& a, const wire::AgentHeartbeat& b) {
  return a.node == b.node && a.boot_id == b.boot_id && a.address == b.address &&
         a.agent_version == b.agent_version && a.labels == b.labels &&
         a.assignments_generation == b.assignments_generation &&
         a.resource_limits == b.resource_limits &&
         SameList(a.instances, b.instances, SameInstance) &&
         SameList(a.volumes, b.volumes, SameVolume);
}

bool ReportTracker::KeepAlive(const ReportVersion& version, wire::AgentHeartbeat& hb) {
  if (!last_ || !answered_ || version != version_) return false;
  hb.same_as = last_->report;
  hb.report = 0;
  return true;
}

void ReportTracker::Prepare(wire::AgentHeartbeat& hb, const ReportVersion& version) {
  version_ = version;
  if (last_ && answered_ && SameReport(hb, *last_)) {
    hb.same_as = last_->report;
    hb.report = 0;
    hb.address.clear();
    hb.agent_version.clear();
    hb.labels.clear();
    hb.assignments_generation = 0;
    hb.instances.clear();
    hb.volumes.clear();
    hb.resource_limits.clear();
    return;
  }
  hb.same_as = 0;
  hb.report = next_id_++;
  if (next_id_ == 0) next_id_ = 1;  // 0 is "no id"
  last_ = hb;
  answered_ = false;
}

}  // namespace hafab::agent
