// Observed state: what agents report about their instances and volumes, as the controller
// keeps it in memory (never in the store), and the readings of it the controller's rules share.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/clock.h"
#include "manifest/model.h"
#include "wire/agent_heartbeat.h"

namespace hafab::controller {

// What an agent reports about one instance and one volume (wire/agent_heartbeat.h).
using ObservedInstance = wire::InstanceReport;
using ObservedVolume = wire::VolumeReport;

// Whether a running instance passes its probes: readiness if it has one, else liveness,
// else running is enough.
inline bool ProbesPass(const manifest::Probes& probes, const ObservedInstance& o) {
  if (probes.readiness) return o.readiness == wire::Readiness::kReady;
  return !probes.liveness || o.liveness == wire::Liveness::kOk;
}

// starting, running or stopping: a process may be alive.
inline bool RunningState(wire::InstanceState s) {
  return s == wire::InstanceState::kStarting || s == wire::InstanceState::kRunning ||
         s == wire::InstanceState::kStopping;
}

struct NodeObservation {
  bool heard = false;  // a heartbeat arrived since this controller started
  TimePoint last_heartbeat{};
  Duration lease_ttl{};  // the lease granted with the last answer
  // The latest end of any lease granted to the node (from when each heartbeat arrived). The
  // agent keeps the latest deadline it was given, so a shorter lease granted later does not
  // shorten its wait: fencing counts from this.
  TimePoint lease_end{};
  std::string address;
  std::string agent_version;
  std::string boot_id;
  uint64_t report = 0;  // the id of the full report this holds (0: the agent sends no keep-alives)
  int64_t assignments_generation = 0;  // the generation the agent says it runs
  WallTime last_fence{};               // the agent's last self-fence reported
  std::map<std::string, ObservedInstance> instances;
  std::map<std::string, ObservedVolume> volumes;
  std::optional<wire::RingEndpoint> ring_endpoint;  // failure_detector ring: its UDP port, counters
};

}  // namespace hafab::controller
