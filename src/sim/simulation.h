// Simulation: one simulated cluster, one seed, simulated time (hafab-sim, docs/simulator.md).
// The real Controller (on an in-memory SqliteStore behind a FaultStore), a SimNode per node
// (the real Supervisor, VolumeManager and LeaseTracker over a FakeLauncher), SimGateways
// (the real RouteTable) and a model client writing to a model kvd (kv_model.h), all talking
// over a SimNetwork with delays, loss and partitions. Faults are drawn from the seed; the
// invariants are checked where they can break (a process starting, a gateway installing a
// table, a client reading, the controller restarting, the end of the run).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"

namespace hafab::sim {

enum class FaultKind {
  kNodeCrash,        // the node dies with its processes; back empty after a while
  kProcessCrash,     // an instance process is killed
  kProcessHang,      // an instance process stops answering (probes, clients)
  kPartition,        // a node cannot reach the controller; healed after a while
  kIsolation,        // a node reaches nobody; healed after a while
  kStoreOutage,      // every store call fails for a while
  kControllerCrash,  // the controller dies now, or at the start of a chosen failover step
  kSwitchover,       // an operator's planned switchover of an active-passive role
  kSlowNode          // a node's agent pauses for up to SimOptions::slow_pause, then goes on
};
const char* FaultKindName(FaultKind k);
// "node-crash" ... as FaultKindName; nullopt for an unknown name.
std::optional<FaultKind> FaultKindFromName(const std::string& name);

// One fault of a run's schedule: drawn from the seed before the run starts, so a subset of
// them (Options::only) replays the same faults.
struct Fault {
  int index = 0;
  Duration at{};
  FaultKind kind = FaultKind::kNodeCrash;
  uint64_t pick = 0;  // chooses the target among those present when it strikes
  Duration lasts{};   // crash, partition, outage: until the node / link / store is back
};

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 50;
  int instances = 0;  // 0: 3 per node (a third active-passive, with volumes)
  int gateways = 2;
  Duration duration = std::chrono::minutes(5);
  // After `duration` no new fault strikes, every fault is healed, and the cluster gets this
  // long to settle before the final checks.
  Duration settle = std::chrono::seconds(30);
  Duration fault_interval = std::chrono::seconds(5);  // mean time between faults
  std::set<FaultKind> faults = {FaultKind::kNodeCrash,       FaultKind::kProcessCrash,
                                FaultKind::kProcessHang,     FaultKind::kPartition,
                                FaultKind::kIsolation,       FaultKind::kStoreOutage,
                                FaultKind::kControllerCrash, FaultKind::kSwitchover};
  // Replay only these faults of the schedule (their indexes); empty = all.
  std::set<int> only;
  double loss = 0.001;  // message loss
  Duration min_delay = std::chrono::microseconds(200);
  Duration max_delay = std::chrono::milliseconds(3);
  // The agent's and gateway's timing (agent.h defaults) and the controller's lease.
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  Duration tick_interval = std::chrono::milliseconds(50);
  Duration lease_ttl = std::chrono::milliseconds(1000);
  Duration probe_interval = std::chrono::milliseconds(100);
  Duration reconcile_interval = std::chrono::milliseconds(100);  // the controller's pass
  int clients = 20;  // active-passive roles the model client writes to (at most all of them)
  Duration write_interval = std::chrono::milliseconds(50);
  // TEST ONLY: break one safety rule on purpose, to prove the checks catch it.
  bool break_stop_wait = false;   // failover does not wait for the old primary to stop
  bool break_self_fence = false;  // an agent whose lease runs out fences nothing
  // Failure detection (--detector ring|star): the ring's agents probe ring_k neighbours on
  // each side, one every ring_probe_interval (agent/ring_monitor.h), and the controller
  // arbitrates (controller/ring_arbiter.h), asking keep-alives at keepalives_per_second.
  bool ring = false;
  int ring_k = 2;
  Duration ring_probe_interval = std::chrono::milliseconds(100);
  double keepalives_per_second = 500;
  Duration slow_pause = std::chrono::milliseconds(200);  // kSlowNode: at most this long
  std::string work_dir;      // "": a fresh directory under /dev/shm (or /tmp)
  size_t trace_keep = 60;    // trace lines printed with a violation
  bool print_trace = false;  // every trace line to stderr as it happens
};

struct Percentiles {
  size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};

struct SimResult {
  uint64_t events = 0;
  int faults = 0;
  std::vector<std::string> violations;  // the first few, each with its simulated time
  int violation_count = 0;
  Percentiles detection_ms;  // node silent -> the controller declares it down
  Percentiles failover_ms;   // node silent -> its primaries' failovers done
  int false_failovers = 0;
  int false_downs = 0;                 // a node declared down that no fault silenced
  int false_suspicions = 0;            // an agent suspecting a neighbour that is up and reachable
  int isolations = 0;                  // node-isolated events
  uint64_t node_messages = 0;          // sent by agents: heartbeats, polls, ring probes
  uint64_t controller_heartbeats = 0;  // agent heartbeats the controller handled
  int failovers = 0;
  uint64_t messages = 0, messages_lost = 0;
  uint64_t writes_acked = 0, reads_checked = 0;
  int controller_restarts = 0;
  std::string trace_hash;
  std::vector<std::string> trace_tail;  // the last trace lines (with a violation)
  std::vector<int> faults_struck;       // indexes of the faults that struck
  double wall_seconds = 0;

  nlohmann::json ToJson(const SimOptions& o) const;
};

// The fault schedule of `options` (its seed, duration, kinds, interval).
std::vector<Fault> FaultSchedule(const SimOptions& options);

// Runs one simulation. Stops at the first violation.
SimResult RunSimulation(const SimOptions& options);

// After a violation: the smallest subset of the struck faults found (removing one at a time
// while the violation stays) that still gives a violation with the same seed. Runs the
// simulation up to `max_runs` times.
std::set<int> ShrinkFaults(const SimOptions& options, const SimResult& failed, int max_runs);

}  // namespace hafab::sim
