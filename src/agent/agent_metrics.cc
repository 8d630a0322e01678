#include "agent/agent_metrics.h"

#include "core/version.h"

namespace hafab::agent {

namespace {

constexpr InstanceState kStates[] = {InstanceState::kStarting, InstanceState::kRunning,
                                     InstanceState::kStopping, InstanceState::kStopped,
                                     InstanceState::kBackoff,  InstanceState::kFailed};
constexpr Readiness kReadiness[] = {Readiness::kUnknown, Readiness::kReady, Readiness::kBusy,
                                    Readiness::kFailed};
constexpr Liveness kLiveness[] = {Liveness::kUnknown, Liveness::kOk, Liveness::kFailing,
                                  Liveness::kFailed};

std::string_view ProbeTypeName(ProbeType t) {
  return t == ProbeType::kLiveness ? "liveness" : "readiness";
}

std::string_view ProbeOutcomeName(ProbeOutcome o) {
  switch (o) {
    case ProbeOutcome::kOk:
      return "ok";
    case ProbeOutcome::kBusy:
      return "busy";
    case ProbeOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::vector<double> AgentMetrics::HeartbeatBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

std::vector<double> AgentMetrics::ProbeBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

AgentMetrics::AgentMetrics(std::string node, const ResourceLimiter* limiter,
                           uint64_t ticks_per_second)
    : node_(std::move(node)),
      limiter_(limiter),
      ticks_per_second_(ticks_per_second > 0 ? ticks_per_second : 100),
      heartbeat_seconds_(HeartbeatBuckets()) {}

void AgentMetrics::RecordProbe(const std::string& instance, ProbeType type, ProbeOutcome outcome,
                               Duration latency) {
  std::lock_guard<std::mutex> lock(mu_);
  ++probes_[{instance, type, outcome}];
  auto it = probe_seconds_.find({instance, type});
  if (it == probe_seconds_.end()) {
    it = probe_seconds_.emplace(ProbeKey{instance, type}, Histogram(ProbeBuckets())).first;
  }
  it->second.Observe(Seconds(latency));
}

void AgentMetrics::RecordHeartbeat(bool ok, Duration rtt) {
  std::lock_guard<std::mutex> lock(mu_);
  ++heartbeats_[ok ? "ok" : "failed"];
  if (ok) heartbeat_seconds_.Observe(Seconds(rtt));
}

void AgentMetrics::RecordVolumeOp(std::string_view op, std::string_view outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  ++volume_ops_[{std::string(op), std::string(outcome)}];
}

void AgentMetrics::RecordSelfFence(size_t killed) {
  std::lock_guard<std::mutex> lock(mu_);
  ++self_fences_;
  fence_kills_ += killed;
}

void AgentMetrics::SetInstances(std::vector<InstanceMetrics> instances, bool lease_valid,
                                bool fenced) {
  std::lock_guard<std::mutex> lock(mu_);
  instances_ = std::move(instances);
  lease_valid_ = lease_valid;
  fenced_ = fenced;
  auto listed = [this](const std::string& name) {
    for (const auto& i : instances_) {
      if (i.instance == name) return true;
    }
    return false;
  };
  std::erase_if(probes_, [&](const auto& e) { return !listed(std::get<0>(e.first)); });
  std::erase_if(probe_seconds_, [&](const auto& e) { return !listed(std::get<0>(e.first)); });
}

std::string AgentMetrics::Render() const {
  std::vector<InstanceMetrics> instances;
  {
    std::lock_guard<std::mutex> lock(mu_);
    instances = instances_;
  }
  // The cgroup files are read here, on the scraping thread, without the lock.
  std::vector<std::optional<CgroupUsage>> cgroup(instances.size());
  for (size_t i = 0; i < instances.size(); ++i) {
    if (limiter_ != nullptr && instances[i].pid != 0) {
      cgroup[i] = limiter_->Usage(instances[i].instance);
    }
  }

  MetricsWriter w;
  const MetricLabels node{{"node", node_}};
  auto with = [&node](MetricLabels more) {
    MetricLabels l = node;
    l.insert(l.end(), more.begin(), more.end());
    return l;
  };
  w.Family("hafab_agent_build_info", "gauge", "Always 1: the agent's version");
  w.Sample("hafab_agent_build_info", with({{"version", kVersion}}), 1);

  std::lock_guard<std::mutex> lock(mu_);
  w.Family("hafab_agent_lease_valid", "gauge",
           "1 while the agent holds a valid lease from the controller (primaries may run)");
  w.Sample("hafab_agent_lease_valid", node, lease_valid_ ? 1 : 0);
  w.Family("hafab_agent_fenced", "gauge",
           "1 while the agent is self-fenced (its lease ran out; no primary may start)");
  w.Sample("hafab_agent_fenced", node, fenced_ ? 1 : 0);

  // The instance label is instance_id: Prometheus gives every target an `instance` label.
  w.Family("hafab_agent_instance_state", "gauge",
           "1 for the state each instance of this node is in, 0 for the others");
  for (const auto& in : instances) {
    for (InstanceState s : kStates) {
      w.Sample("hafab_agent_instance_state",
               with({{"instance_id", in.instance},
                     {"role", in.role},
                     {"state", std::string(wire::InstanceStateName(s))}}),
               in.state == s ? 1 : 0);
    }
  }
  w.Family("hafab_agent_instance_readiness", "gauge",
           "1 for the readiness of each instance's running process (unknown: not probed yet, or "
           "not running), 0 for the others");
  for (const auto& in : instances) {
    for (Readiness r : kReadiness) {
      w.Sample("hafab_agent_instance_readiness",
               with({{"instance_id", in.instance},
                     {"role", in.role},
                     {"readiness", std::string(wire::ReadinessName(r))}}),
               in.readiness == r ? 1 : 0);
    }
  }
  w.Family("hafab_agent_instance_liveness", "gauge",
           "1 for the liveness of each instance's running process, 0 for the others");
  for (const auto& in : instances) {
    for (Liveness l : kLiveness) {
      w.Sample("hafab_agent_instance_liveness",
               with({{"instance_id", in.instance},
                     {"role", in.role},
                     {"liveness", std::string(wire::LivenessName(l))}}),
               in.liveness == l ? 1 : 0);
    }
  }
  w.Family("hafab_agent_instance_restarts_total", "counter",
           "Restarts of each instance on this node (its restart policy), since it was assigned "
           "here");
  for (const auto& in : instances) {
    w.Sample("hafab_agent_instance_restarts_total",
             with({{"instance_id", in.instance}, {"role", in.role}}), in.restarts);
  }

  // CPU and memory: from the instance's cgroup where the limiter made one (source="cgroup"),
  // else from /proc, summed over the live members of its process group (source="proc": CPU
  // of members that exited is not counted, and memory is their resident set).
  w.Family("hafab_agent_instance_cpu_seconds_total", "counter",
           "CPU time of each running instance (source: cgroup, or proc = its process group's "
           "live members)");
  for (size_t i = 0; i < instances.size(); ++i) {
    const auto& in = instances[i];
    if (in.pid == 0) continue;
    if (cgroup[i] && cgroup[i]->cpu_seconds) {
      w.Sample("hafab_agent_instance_cpu_seconds_total",
               with({{"instance_id", in.instance}, {"role", in.role}, {"source", "cgroup"}}),
               *cgroup[i]->cpu_seconds);
    } else if (in.group_cpu_ticks) {
      w.Sample("hafab_agent_instance_cpu_seconds_total",
               with({{"instance_id", in.instance}, {"role", in.role}, {"source", "proc"}}),
               static_cast<double>(*in.group_cpu_ticks) / static_cast<double>(ticks_per_second_));
    }
  }
  w.Family("hafab_agent_instance_memory_bytes", "gauge",
           "Memory of each running instance (source: cgroup = what it is charged, or proc = the "
           "resident set of its process group)");
  for (size_t i = 0; i < instances.size(); ++i) {
    const auto& in = instances[i];
    if (in.pid == 0) continue;
    if (cgroup[i] && cgroup[i]->memory_bytes) {
      w.Sample("hafab_agent_instance_memory_bytes",
               with({{"instance_id", in.instance}, {"role", in.role}, {"source", "cgroup"}}),
               static_cast<double>(*cgroup[i]->memory_bytes));
    } else if (in.group_cpu_ticks) {  // sampled
      w.Sample("hafab_agent_instance_memory_bytes",
               with({{"instance_id", in.instance}, {"role", in.role}, {"source", "proc"}}),
               static_cast<double>(in.group_rss_bytes));
    }
  }

  w.Family("hafab_agent_probes_total", "counter",
           "Probe results by instance, probe (liveness, readiness) and outcome (ok, busy, "
           "failed)");
  for (const auto& [key, n] : probes_) {
    const auto& [instance, type, outcome] = key;
    w.Sample("hafab_agent_probes_total",
             with({{"instance_id", instance},
                   {"probe", std::string(ProbeTypeName(type))},
                   {"outcome", std::string(ProbeOutcomeName(outcome))}}),
             static_cast<double>(n));
  }
  w.Family("hafab_agent_probe_duration_seconds", "histogram",
           "Time from a probe's start to its result (a timeout counts its full timeout)");
  for (const auto& [key, h] : probe_seconds_) {
    w.Samples("hafab_agent_probe_duration_seconds",
              with({{"instance_id", std::get<0>(key)},
                    {"probe", std::string(ProbeTypeName(std::get<1>(key)))}}),
              h);
  }

  w.Family("hafab_agent_heartbeats_total", "counter",
           "Heartbeats to the controller by outcome (ok: answered; failed: error or timeout)");
  for (const char* outcome : {"ok", "failed"}) {
    auto it = heartbeats_.find(outcome);
    w.Sample("hafab_agent_heartbeats_total", with({{"outcome", outcome}}),
             it == heartbeats_.end() ? 0 : static_cast<double>(it->second));
  }
  w.Family("hafab_agent_heartbeat_round_trip_seconds", "histogram",
           "Time from sending a heartbeat to the controller's answer (answered ones)");
  w.Samples("hafab_agent_heartbeat_round_trip_seconds", node, heartbeat_seconds_);

  w.Family("hafab_agent_volume_operations_total", "counter",
           "Provider calls for this node's volumes by op (attach, detach) and outcome (ok, "
           "failed, conflict = attached elsewhere, force_detached = the controller detached it)");
  for (const auto& [key, n] : volume_ops_) {
    w.Sample("hafab_agent_volume_operations_total",
             with({{"op", key.first}, {"outcome", key.second}}), static_cast<double>(n));
  }
  w.Family("hafab_agent_self_fences_total", "counter",
           "Times the agent fenced itself because it could not renew its lease");
  w.Sample("hafab_agent_self_fences_total", node, static_cast<double>(self_fences_));
  w.Family("hafab_agent_fence_kills_total", "counter",
           "Primaries the agent SIGKILLed when it fenced itself");
  w.Sample("hafab_agent_fence_kills_total", node, static_cast<double>(fence_kills_));
  return w.text();
}

}  // namespace hafab::agent
