// Supervisor: makes the node's instance processes match the assignments. Level-triggered:
// Apply() records what is wanted, Tick() moves each instance one step toward it. Per
// instance a small state machine driven by the Clock:
//
//   starting (waiting for its volume / a lease) -> running -> stopping -> stopped
//   running -(unexpected exit)-> backoff -(delay)-> running ...   -> failed (gave up)
//
// Stop = SIGTERM to the process group, SIGKILL after stop_grace; a role's drain hook runs
// first when it has one (SIGTERM once the hook exits or at its timeout). Restarts follow the
// assignment's restart policy with exponential backoff. A primary (run: true) of an
// active-passive role is refused when its epoch is lower than the highest seen for its role,
// and is started only while the agent holds a valid lease. Fence() kills primaries at once.
// Pid files <data-dir>/run/<instance>.pid let the next agent run adopt what this one started.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/account.h"
#include "agent/launcher.h"
#include "agent/probe.h"
#include "agent/process_tracker.h"
#include "agent/procfs.h"
#include "agent/resource_limiter.h"
#include "agent/volume_manager.h"
#include "core/clock.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"

namespace hafab::agent {

// The agent speaks of the assignment message (wire/assignments.h) as its own.
using wire::Assignment;
using wire::AssignmentList;

using wire::InstanceReport;
using wire::InstanceState;
using wire::InstanceStateName;

enum class ProbeType { kLiveness, kReadiness };

// What the probe runner needs to probe one running process.
struct ProbeTarget {
  std::string instance;
  pid_t pid = 0;
  int port = 0;
  // For exec probes: the process's environment, shared with the supervisor (not copied for
  // every target list).
  std::shared_ptr<const std::map<std::string, std::string>> env;
  std::optional<manifest::Probe> liveness;
  std::optional<manifest::Probe> readiness;
};

// A running replica of a replicated role, for the ReplicaLink (replica_link.h).
struct ReplicaTarget {
  std::string instance;
  pid_t pid = 0;
  int port = 0;
  wire::ReplicaConfig config;  // what it is to be now
  std::string hook;            // "" = over HTTP
  // How the hook runs: the instance's environment, account, directory and log (stderr).
  LaunchSpec hook_spec;
};

class Supervisor {
 public:
  struct Options {
    std::string node;
    // The node's address, passed to instances as HAFAB_HOST: they listen there, where the
    // gateway and the probes reach them, and not on every interface (which would bypass the
    // endpoint's allow: list).
    std::string address = "127.0.0.1";
    std::string data_dir;  // logs/, run/ and work/ live under it
    std::string path_env;  // PATH given to instances (the agent's own)
    // `hafab log-writer` (log_writer.h) without its options, e.g. {"/proc/self/exe",
    // "log-writer"}: instance output goes through it, capped at log_max_bytes per file with
    // log_keep rotated files. Empty: appended to the log file directly, with no cap (tests).
    std::vector<std::string> log_writer_argv;
    uint64_t log_max_bytes = 10 << 20;
    int log_keep = 3;
    // Liveness failures before a process's first success count only after this long.
    Duration startup_grace = std::chrono::seconds(10);
    Duration usage_interval = std::chrono::seconds(1);
    ResourceLimiter* limiter = nullptr;  // nullptr: no limits
    // Finds the processes an instance left outside its process group; nullptr: only the
    // process group is signalled (unit tests with a FakeLauncher).
    ProcessTracker* tracker = nullptr;
    // Usage of the given process groups; nullptr: not measured.
    std::function<std::map<pid_t, GroupUsage>(const std::vector<pid_t>&)> usage;
    uint64_t ticks_per_second = 100;
    // Whether the agent holds a valid lease now; primaries start only then.
    std::function<bool()> lease_valid = [] { return true; };
    // /proc start time of a pid (procfs.h ReadProcStat), nullopt if it is not running.
    // Recorded in pid files so a reused pid is never mistaken for an instance.
    std::function<std::optional<uint64_t>(pid_t)> start_time_of;
  };

  Supervisor(Clock& clock, Launcher& launcher, VolumeManager& volumes, Options options);
  ~Supervisor();

  // Finds instances left by a previous agent run (pid files whose process still runs with
  // the recorded start time) and adopts them as running with their recorded assignment;
  // the next Apply keeps them if they still match, else stops them.
  // Call once, before the first Apply.
  void AdoptLeftovers();

  // Records the wanted state. Instances not in `list` are stopped and forgotten.
  void Apply(const AssignmentList& list);
  // Stops every instance gracefully and forgets it (agent shutdown); volumes detach after.
  void StopAll() { Apply(AssignmentList{}); }
  // True when no instance process runs and no volume is attached or detaching.
  bool Idle() const;

  // Self-fence: SIGKILL every active-passive primary now (no grace), release its volume,
  // and start no primary until Unfence(). Returns the instances it killed.
  std::vector<std::string> Fence(const std::string& reason);
  // A fresh assignment list arrived after a fence: primaries may start again.
  void Unfence();
  bool fenced() const { return fenced_; }

  // A probe result for process `pid` of `instance` (stale results for an older process are
  // ignored). Liveness reaching failed kills the process; the restart policy applies. So does
  // readiness failing for failover_after after a ready answer (hung), except that a hung
  // active-passive primary is held failed (not restarted) for the controller to fail over.
  void RecordProbe(const std::string& instance, pid_t pid, ProbeType type, ProbeOutcome outcome);

  // Reaps exits and moves every instance one step; samples usage when due. Call on SIGCHLD
  // and every few ms. Once a tick leaves nothing for the clock to do (every process running as
  // assigned, every other instance stopped or failed for good, no volume moving), the next ones
  // only reap and sample, until an exit or an input (Apply, Fence, Unfence, a probe that stops
  // a process, a replica's answer) comes.
  void Tick();

  // A replica's answer to the agent's ReplicaLink (for process `pid`; stale ones ignored):
  // carried in the next heartbeat.
  void RecordReplica(const std::string& instance, pid_t pid, Result<wire::ReplicaStatus> status);

  std::vector<InstanceReport> Report() const;
  // What the agent's heartbeat-on-change compares: a digest of the fence and, for each
  // instance, what Report() says of its epoch, run, state, pid, probe results, restarts and
  // replica role and epoch; for each volume its state and holder. Not cpu, memory, messages
  // or a replica's position: they go with the regular heartbeats. Allocates nothing for the
  // instances: it runs at every agent tick; once settled, it is computed once.
  uint64_t ReportDigest() const;
  std::vector<ProbeTarget> ProbeTargets() const;
  // Changes whenever what Report(), ReportDigest() or ProbeTargets() say may have changed.
  uint64_t changes() const { return changes_; }
  // Whether a tick now would do nothing but reap exits: the last tick found every instance
  // settled and nothing came in since.
  bool settled() const { return settled_; }
  // The running replicas of replicated roles, with the configuration each is to have.
  std::vector<ReplicaTarget> ReplicaTargets();
  // Where a replica keeps its data on this node: <data-dir>/replicas/<instance>
  // (HAFAB_VOLUME_DIR); it stays when the instance stops.
  std::string ReplicaDataDir(const std::string& instance) const;
  // Highest epoch seen per role (persisted in <data-dir>/epochs.json).
  uint64_t HighestEpoch(const std::string& role) const;
  // The volumes the supervisor wants attached now (name -> instance).
  std::map<std::string, std::string> DesiredVolumes() const;
  // Pids of the live instance processes.
  std::vector<pid_t> Pids() const;
  // CPU ticks of each running instance's process group at its last usage sample (its live
  // members only), by instance; instances not sampled yet are absent.
  std::map<std::string, uint64_t> SampledCpuTicks() const;

  std::string LogPath(const std::string& instance) const;
  std::string PidFilePath(const std::string& instance) const;

 private:
  struct Instance;
  // Reaps `exits` and moves every instance one step.
  void StepAll(const std::vector<ProcessExit>& exits);
  void Step(Instance& in);
  // Whether a tick now would change nothing but by reaping an exit (see Tick()).
  bool Settled() const;
  // Something came in: the next tick moves every instance again.
  void Unsettle() {
    settled_ = false;
    Changed();
  }
  void Changed() {
    ++changes_;
    digest_.reset();
  }
  bool WantsRunning(const Instance& in, std::string* why, bool* refused) const;
  bool NeedsRestartForSpec(const Instance& in) const;
  void Launch(Instance& in);
  // Fills `spec` to run `a` as `account` and gives it its directories.
  void RunAs(const Account& account, const Assignment& a, LaunchSpec* spec);
  // How a hook of the running instance runs (drain, replica): its environment, working
  // directory and log, as its account. Errors: the account cannot be resolved.
  Result<LaunchSpec> HookSpec(Instance& in);
  void CheckHung(Instance& in, ProbeOutcome outcome);
  void BeginStop(Instance& in, const std::string& reason, bool kill_now, bool counts_as_failure);
  // Signals the process group of `in` and every process the tracker finds for it.
  void SignalInstance(Instance& in, int signal);
  // SIGKILLs what is left of an instance whose main process ended; true if anything was.
  bool KillStrays(const std::string& instance);
  // Kills the processes of instances of a previous agent run that were not adopted.
  void KillUnadoptedLeftovers();
  // Starts the drain hook of a stopping instance; false when it could not be started.
  bool StartDrainHook(Instance& in, const std::string& reason);
  // The drain hook ended (`outcome` says how): SIGTERM now, SIGKILL after stop_grace.
  void EndDrainHook(Instance& in, const std::string& outcome, bool ok);
  void AppendToLog(const std::string& instance, const std::string& line);
  void HandleExit(Instance& in, const ProcessExit& exit);
  void ScheduleRestart(Instance& in, const std::string& last_exit);
  // A new instance that crash-looped on other nodes (Assignment::prior_restarts) waits the
  // backoff they earned before its first start.
  void ContinueBackoff(Instance& in);
  void WritePidFile(const Instance& in);
  void RemovePidFile(const std::string& instance);
  void SampleUsage();
  void SaveEpochs();
  void LoadEpochs();

  Clock& clock_;
  Launcher& launcher_;
  VolumeManager& volumes_;
  Options options_;
  std::map<std::string, std::unique_ptr<Instance>> instances_;
  std::map<std::string, uint64_t> highest_epoch_;
  bool fenced_ = false;
  bool settled_ = false;                    // Settled() after the last tick, no input since
  mutable std::optional<uint64_t> digest_;  // ReportDigest() while settled
  uint64_t changes_ = 0;
  std::set<std::string> warned_root_;  // roles logged as running as root
  TimePoint next_usage_{};
};

}  // namespace hafab::agent
