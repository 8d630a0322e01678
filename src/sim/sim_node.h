// SimNode: one simulated node's agent. The real Supervisor, VolumeManager and LeaseTracker run
// over a FakeLauncher and a FakeProvider on simulated time; around them, the agent's loop
// (agent.cc) on simulator events: heartbeat every interval and at once on a change, apply the
// assignments the controller pushes (its long poll) or that a heartbeat answer says are newer,
// fence itself when the lease runs out, probe its instances (a hung process fails them), tick
// its supervisor while that has something to do and at once when a process exits.
// The process's own threads, sockets and the watchdog are not modelled. A crashed node boots
// again with its disk (its data dir) and a new boot id, its processes gone.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/control_link.h"
#include "agent/lease.h"
#include "agent/report_tracker.h"
#include "agent/ring_monitor.h"
#include "agent/supervisor.h"
#include "agent/volume_manager.h"
#include "sim/event_queue.h"
#include "testing/fake_launcher.h"
#include "testing/fake_provider.h"

namespace hafab::sim {

// A process the launcher started, as the simulation sees it.
struct SimProcess {
  std::string node;
  int incarnation = 0;  // of the node: pids start again when it boots again
  pid_t pid = 0;
  std::string instance;
  std::string role;
  uint64_t epoch = 0;
  std::string volume_dir;  // HAFAB_VOLUME_DIR; "" without a volume
};

// What a node tells the simulation about its processes (invariants, the kv model).
class ProcessObserver {
 public:
  virtual ~ProcessObserver() = default;
  virtual void Started(const SimProcess& p) = 0;
};

struct SimNodeOptions {
  std::string name;
  // The node's disk: pid files, logs, the volumes it attached. It outlives a crash (the next
  // boot finds the previous one's state there, as a real agent does).
  std::string data_dir;
  int incarnation = 0;  // boots of the node so far
  std::string address;
  std::string fault_domain, update_domain;
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  Duration tick_interval = std::chrono::milliseconds(50);
  Duration lease_ttl = std::chrono::milliseconds(1000);
  // TEST ONLY (--break self-fence): the lease running out fences nothing.
  bool skip_self_fence = false;
  // Ring failure detection: the agent's RingMonitor, its messages sent through `ring_send`.
  bool ring = false;
  agent::RingOptions ring_options;
  std::function<void(const std::string& to, const wire::RingMessage&)> ring_send;
};

// Not thread-safe. Schedules its own events on `events`, which hold the object: it must outlive
// them. Once Stop() ran they do nothing.
class SimNode {
 public:
  SimNode(EventQueue& events, Clock& clock, testing::FakeProvider& provider,
          agent::ControlLink& link, ProcessObserver& observer, SimNodeOptions options);

  void Start();
  // The node crashed: nothing it scheduled or asked for runs any more.
  void Stop() { alive_ = false; }
  // The controller pushed a newer assignment list (the answer of the agent's long poll).
  void Deliver(const wire::AssignmentList& list, TimePoint asked_at);
  // A ring probe from another agent.
  void OnRing(const wire::RingMessage& m);
  // The controller asks for a heartbeat now (its ring arbiter's check).
  void Check();
  // The agent stops for `d` (a long GC pause, a stalled disk): nothing it would do or receive
  // in that time is handled before it resumes.
  void Pause(Duration d) { paused_until_ = std::max(paused_until_, clock_.Now() + d); }
  bool Paused() const { return clock_.Now() < paused_until_; }
  const agent::RingMonitor* ring() const { return ring_.get(); }

  // Faults.
  void KillProcess(pid_t pid) {
    launcher_.Kill(pid, 9);
    Wake(clock_.Now());  // its SIGCHLD
  }
  void Hang(pid_t pid) { hung_.insert(pid); }
  // Whether `pid` is alive and answers (not hung).
  bool Serves(pid_t pid) const { return launcher_.Alive(pid) && !hung_.count(pid); }
  bool Alive(pid_t pid) const { return launcher_.Alive(pid); }
  std::vector<pid_t> LivePids() const { return supervisor_->Pids(); }

  const std::string& name() const { return options_.name; }
  int incarnation() const { return options_.incarnation; }
  const agent::Supervisor& supervisor() const { return *supervisor_; }
  uint64_t fences() const { return fences_; }
  uint64_t applied_generation() const { return applied_generation_; }

 private:
  // The agent's tick: the lease, the supervisor, the probes due, a heartbeat on a change.
  void Tick();
  // The next tick: at `at`, at the tick interval while the supervisor has something to do
  // (or an exit to reap), when a probe is due; whichever comes first. A settled supervisor's
  // tick only reaps, so a node with nothing to do is not ticked.
  void Wake(TimePoint at = TimePoint::max());
  // Supervisor::Tick, then the processes it started are told to the observer.
  void SupervisorTick();
  // Runs the probes due; sets next_probe_due_.
  void Probe();
  void ArmLeaseTimer();
  void CheckLease();
  void SendHeartbeat(bool scheduled);
  void Poll();
  void Apply(const wire::AssignmentList& list, TimePoint asked_at);
  uint64_t Digest() const;
  // Schedules `fn` unless this node stopped by then; while it is paused, until it resumes.
  template <typename F>
  void Later(Duration d, F fn);
  // Runs `fn` now, or when the node resumes.
  template <typename F>
  void WhenAwake(F fn);
  void ScheduleHeartbeat(Duration d);
  void RingTick();
  void ScheduleRing();
  void TakeRingReports();

  EventQueue& events_;
  Clock& clock_;
  agent::ControlLink& link_;
  ProcessObserver& observer_;
  SimNodeOptions options_;
  testing::FakeLauncher launcher_;
  std::unique_ptr<agent::VolumeManager> volumes_;
  std::unique_ptr<agent::Supervisor> supervisor_;
  agent::LeaseTracker lease_;
  agent::ReportTracker reports_;
  bool alive_ = true;
  TimePoint paused_until_{};
  Duration keepalive_{};          // between scheduled heartbeats (the controller's word)
  uint64_t heartbeat_timer_ = 0;  // the scheduled heartbeat that counts
  std::unique_ptr<agent::RingMonitor> ring_;
  TimePoint ring_due_ = TimePoint::max();   // the ring tick scheduled
  std::set<std::string> refutes_;           // ends of suspicions the controller has not had
  std::map<pid_t, std::string> volume_of_;  // pid -> the volume directory it holds
  std::set<pid_t> hung_;
  std::map<std::pair<std::string, int>, TimePoint> next_probe_;
  std::vector<agent::ProbeTarget> probe_targets_;  // as of the supervisor's changes() below
  uint64_t probe_targets_at_ = ~uint64_t{0};
  // The earliest probe due: until then (and no change in the supervisor) nothing to probe.
  TimePoint next_probe_due_ = TimePoint::max();
  TimePoint wake_due_ = TimePoint::max();  // the tick scheduled
  std::string boot_id_;
  int heartbeats_in_flight_ = 0;  // as the agent: at most two, the second after an interval
  TimePoint heartbeat_sent_at_{};
  bool heartbeat_again_ = false;
  uint64_t sent_digest_ = 0;
  bool poll_in_flight_ = false;
  bool have_list_ = false;
  uint64_t applied_generation_ = 0;
  uint64_t applied_digest_ = 0;  // wire::ContentDigest of that list
  std::optional<TimePoint> fenced_at_;
  TimePoint lease_timer_due_{};  // the fence timer's; {} = not armed
  std::optional<wire::FenceReport> unreported_fence_;
  int heartbeats_ok_ = 0;
  uint64_t fences_ = 0;
  size_t started_seen_ = 0;  // launcher_.started() already told to the observer
};

}  // namespace hafab::sim
