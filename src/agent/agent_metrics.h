// AgentMetrics: what an agent's GET /metrics shows (Prometheus text, core/prometheus.h).
// The agent's io thread records into it (a short lock per call); a scrape renders on the
// metrics server's own thread (agent/metrics_server.h), reading cgroup files there, so a
// slow scrape or a flood of them never delays a heartbeat.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "agent/probe.h"
#include "agent/resource_limiter.h"
#include "agent/supervisor.h"
#include "core/clock.h"
#include "core/prometheus.h"
#include "core/thread_annotations.h"

namespace hafab::agent {

// One instance as the supervisor last reported it, with what /proc said of its usage.
struct InstanceMetrics {
  std::string instance;
  std::string role;
  InstanceState state = InstanceState::kStopped;
  Readiness readiness = Readiness::kUnknown;
  Liveness liveness = Liveness::kUnknown;
  int restarts = 0;
  pid_t pid = 0;
  // Of the process group, summed over its live members (procfs.h UsageOfGroups); nullopt
  // until sampled. Used when the limiter has no cgroup of the instance.
  std::optional<uint64_t> group_cpu_ticks;
  uint64_t group_rss_bytes = 0;
};

class AgentMetrics {
 public:
  // `limiter` (may be null) is asked for cgroup usage on the rendering thread: its Usage()
  // must be thread-safe. It outlives this object.
  AgentMetrics(std::string node, const ResourceLimiter* limiter, uint64_t ticks_per_second);

  // Every method is thread-safe.
  void RecordProbe(const std::string& instance, ProbeType type, ProbeOutcome outcome,
                   Duration latency);
  // A heartbeat answered (ok) or failed, `rtt` after it was sent.
  void RecordHeartbeat(bool ok, Duration rtt);
  // A provider call of the volume manager: op "attach" or "detach", outcome "ok", "failed",
  // "conflict" (attached elsewhere) or "force_detached" (found detached by the controller).
  void RecordVolumeOp(std::string_view op, std::string_view outcome);
  // The agent fenced itself (its lease ran out); `killed` primaries were SIGKILLed.
  void RecordSelfFence(size_t killed);
  // The instances now (replaces the previous list; probe series of instances no longer
  // listed are dropped), whether the lease is valid and whether the agent is fenced.
  void SetInstances(std::vector<InstanceMetrics> instances, bool lease_valid, bool fenced);

  const std::string& node() const { return node_; }
  // The exposition (text format 0.0.4).
  std::string Render() const;

  // Heartbeat round trips: 1 ms .. 2.5 s. Probe latencies: 1 ms .. 10 s.
  static std::vector<double> HeartbeatBuckets();
  static std::vector<double> ProbeBuckets();

 private:
  using ProbeKey = std::tuple<std::string, ProbeType>;  // instance, type

  const std::string node_;
  const ResourceLimiter* limiter_;
  const uint64_t ticks_per_second_;
  mutable std::mutex mu_;
  std::vector<InstanceMetrics> instances_ GUARDED_BY(mu_);
  bool lease_valid_ GUARDED_BY(mu_) = false;
  bool fenced_ GUARDED_BY(mu_) = false;
  std::map<std::tuple<std::string, ProbeType, ProbeOutcome>, uint64_t> probes_ GUARDED_BY(mu_);
  std::map<ProbeKey, Histogram> probe_seconds_ GUARDED_BY(mu_);
  std::map<std::string, uint64_t> heartbeats_ GUARDED_BY(mu_);  // by outcome
  Histogram heartbeat_seconds_ GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> volume_ops_ GUARDED_BY(mu_);
  uint64_t self_fences_ GUARDED_BY(mu_) = 0;
  uint64_t fence_kills_ GUARDED_BY(mu_) = 0;
};

}  // namespace hafab::agent
