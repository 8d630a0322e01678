// Agent: one node's guest agent. On one io_context thread it heartbeats the controller,
// long-polls its assignments and applies them to the Supervisor, runs probes, reaps
// children (SIGCHLD), and fences itself when its lease runs out.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/agent_metrics.h"
#include "agent/control_link.h"
#include "agent/launcher.h"
#include "agent/lease.h"
#include "agent/probe_runner.h"
#include "agent/process_tracker.h"
#include "agent/procfs.h"
#include "agent/replica_link.h"
#include "agent/report_tracker.h"
#include "agent/resource_limiter.h"
#include "agent/ring_transport.h"
#include "agent/supervisor.h"
#include "agent/volume_manager.h"
#include "provider/provider.h"

namespace hafab::agent {

struct AgentOptions {
  std::string node;
  std::string address = "127.0.0.1";
  std::string data_dir;
  std::map<std::string, std::string> labels;  // fault_domain, update_domain
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  Duration tick_interval = std::chrono::milliseconds(50);
  Duration lease_ttl = std::chrono::milliseconds(1500);  // until the controller says otherwise
  // The long poll's wait. A change answers it at once and a heartbeat's answer names the
  // generation, so the wait only sets how often an idle node asks again (with `brief`: one
  // small answer per node per wait; 1 000 nodes at 5 s were a fifth of the controller's
  // requests).
  Duration assignments_wait = std::chrono::seconds(30);
  Duration retry_interval = std::chrono::milliseconds(200);
  std::string path_env;  // PATH for instances; "" = the agent's own
  // The fence watchdog to start (fence_watchdog.h), e.g. {"/proc/self/exe", "agent-watchdog",
  // ...}; empty = none (then a crashed agent leaves its primaries unfenced).
  std::vector<std::string> watchdog_argv;
  // Finds what instances leave outside their process group (process_tracker.h); outlives the
  // agent. nullptr: only process groups are signalled.
  ProcessTracker* tracker = nullptr;
  // `hafab log-writer` without its options (Supervisor::Options::log_writer_argv); empty =
  // logs appended directly, uncapped.
  std::vector<std::string> log_writer_argv;
  uint64_t log_max_bytes = 10 << 20;
  int log_keep = 3;
  // failure_detector ring: the UDP port ring probes arrive on, on `address` (0 = any free
  // port; the controller learns it from the heartbeats). Opened with the first assignment
  // list that names ring neighbours.
  uint16_t ring_port = 0;
  // Its probes' timing (first_seq is the agent's own). The defaults are the product's;
  // hafab-loadgen probes less often, to simulate 1 000 agents on one machine.
  RingOptions ring;
  // The CPU and memory of the instances' process groups (Supervisor::Options::usage); null =
  // one /proc scan per second (UsageOfGroups). The load generator (bench/controller_load), whose
  // instances are not processes, gives one that measures nothing.
  std::function<std::map<pid_t, GroupUsage>(const std::vector<pid_t>&)> usage;
};

class Agent {
 public:
  // `launcher`, `provider`, `limiter` (may be null) and `link` (to the controller, on `io`)
  // outlive the agent.
  Agent(boost::asio::io_context& io, Clock& clock, Launcher& launcher, provider::Provider& provider,
        ResourceLimiter* limiter, ControlLink& link, AgentOptions options);
  ~Agent();

  // Adopts leftovers of a previous run and starts the timers. Call once, before io.run().
  void Start();
  // Stops every instance gracefully, detaches volumes, then calls `done` (on the io thread).
  void Shutdown(std::function<void()> done);

  Supervisor& supervisor() { return *supervisor_; }
  const LeaseTracker& lease() const { return lease_; }
  uint64_t applied_generation() const { return applied_generation_; }
  int heartbeats_ok() const { return heartbeats_ok_; }
  // What GET /metrics shows (agent/metrics_server.h serves it); thread-safe. The instances'
  // states are published into it on each tick once EnableMetrics() was called (an agent
  // without a metrics endpoint, or the simulator's thousands, skip that work). Call before the
  // io_context runs.
  const AgentMetrics& metrics() const { return *metrics_; }
  void EnableMetrics() { publish_metrics_ = true; }

 private:
  void Tick();
  void ScheduleTick();
  void SendHeartbeat();
  void ScheduleHeartbeat();
  // Sends a heartbeat now (or right after the one in flight) instead of at the next interval.
  void HeartbeatNow();
  // HeartbeatNow() if an instance, a volume, the applied generation or the fence changed
  // since the last heartbeat sent: the controller's failover steps wait on these reports.
  void HeartbeatOnChange();
  uint64_t ReportDigest() const;
  void Poll(bool immediate);
  void OnAssignments(uint64_t seq, TimePoint sent_at, Result<wire::AssignmentList> r);
  // The ring neighbours of a new list: the transport opened at the first, given the peers.
  void ApplyRing(const wire::AssignmentList& list);
  void OnRingReports();
  void AfterLongPoll(TimePoint sent_at);
  void CheckLease();
  // The instances, the lease and the fence as of now, for the next scrape.
  void PublishMetrics();
  void ArmFenceTimer();
  void PersistLease();
  void RestoreLease();
  void WatchChildren();
  void StartWatchdog();
  void StopWatchdog();

  boost::asio::io_context& io_;
  Clock& clock_;
  AgentOptions options_;
  std::unique_ptr<AgentMetrics> metrics_;
  bool publish_metrics_ = false;
  class Worker;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<VolumeManager> volumes_;
  std::unique_ptr<Supervisor> supervisor_;
  ResourceLimiter* limiter_;
  ControlLink& link_;
  LeaseTracker lease_;
  std::unique_ptr<ProbeRunner> probes_;
  std::unique_ptr<ReplicaLink> replicas_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer fence_timer_;
  boost::asio::steady_timer poll_retry_timer_;
  boost::asio::signal_set sigchld_;
  std::string boot_id_;
  // Heartbeats sent and not answered yet, and when the last one went. One unanswered for a
  // whole interval (its request or its answer lost, or slow) does not hold back the next: a
  // lost message costs an interval, not the timeout, and two in a row do not cost the lease.
  // Never more than two.
  int heartbeats_in_flight_ = 0;
  TimePoint heartbeat_sent_at_{};
  bool heartbeat_again_ = false;  // a change happened while a heartbeat was in flight
  uint64_t sent_digest_ = 0;      // ReportDigest() as of the last heartbeat sent
  ReportTracker reports_;         // a whole report or a keep-alive
  bool long_poll_in_flight_ = false;
  bool immediate_poll_in_flight_ = false;
  bool have_list_ = false;
  uint64_t applied_generation_ = 0;
  uint64_t applied_digest_ = 0;  // wire::ContentDigest of that list
  uint64_t poll_seq_ = 0;
  uint64_t applied_seq_ = 0;
  uint64_t controller_generation_ = 0;
  std::optional<TimePoint> fenced_at_;
  std::optional<wire::FenceReport> unreported_fence_;
  int heartbeats_ok_ = 0;
  int heartbeat_failures_ = 0;
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  pid_t watchdog_pid_ = 0;
  Duration keepalive_;  // the heartbeat timer's period: the controller's keep-alive, if it says
  std::set<std::string> ring_refutes_;   // suspicions that ended, not yet told the controller
  std::unique_ptr<RingTransport> ring_;  // last: destroyed first, its callbacks name this agent
};

}  // namespace hafab::agent
