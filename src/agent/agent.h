// Agent: one node's guest agent. On one io_context thread it heartbeats the controller,
// long-polls its assignments and applies them to the Supervisor, runs probes, reaps
// children (SIGCHLD), and fences itself when its lease runs out.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/control_link.h"
#include "agent/launcher.h"
#include "agent/lease.h"
#include "agent/probe_runner.h"
#include "agent/process_tracker.h"
#include "agent/replica_link.h"
#include "agent/resource_limiter.h"
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
  Duration assignments_wait = std::chrono::seconds(5);
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
  std::string ReportDigest() const;
  void Poll(bool immediate);
  void OnAssignments(uint64_t seq, TimePoint sent_at, Result<wire::AssignmentList> r);
  void CheckLease();
  void ArmFenceTimer();
  void PersistLease();
  void RestoreLease();
  void WatchChildren();
  void StartWatchdog();
  void StopWatchdog();

  boost::asio::io_context& io_;
  Clock& clock_;
  AgentOptions options_;
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
  bool heartbeat_in_flight_ = false;
  bool heartbeat_again_ = false;  // a change happened while a heartbeat was in flight
  std::string sent_digest_;       // ReportDigest() as of the last heartbeat sent
  bool long_poll_in_flight_ = false;
  bool immediate_poll_in_flight_ = false;
  bool have_list_ = false;
  uint64_t applied_generation_ = 0;
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
};

}  // namespace hafab::agent
