// VolumeManager: keeps the node's attached volumes equal to the desired set, through the
// Provider. Attach happens before an instance starts; detach is asynchronous: a volume
// leaves the desired set, is reported `detaching` until no process holds a file (or its cwd)
// under its mount path, and only then is detached through the provider and reported
// `detached`. Provider calls run through a Runner (a worker thread in the agent, inline in
// tests) so a slow exec script never blocks heartbeats.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "provider/provider.h"
#include "wire/agent_heartbeat.h"

namespace hafab::agent {

// A volume's state here; the heartbeat reports attaching as detached (not attached yet).
enum class VolumeState { kAttaching, kAttached, kDetaching, kDetached };

using wire::VolumeReport;

class VolumeManager {
 public:
  // Runs `op` (possibly on another thread) and then `done` with its result on the caller's
  // thread (the agent posts it back to its io_context).
  using Runner = std::function<void(std::function<Status()> op, std::function<void(Status)> done)>;
  // Pids of processes holding files under a directory (procfs.h ProcessesHolding).
  using HolderCheck = std::function<std::vector<pid_t>(const std::string& dir)>;

  VolumeManager(Clock& clock, provider::Provider& provider, std::string node, Runner runner,
                HolderCheck holders);

  // The volumes this node must have attached, name -> instance. Others are detached, but
  // a `pinned` one (an instance process started with it still runs) only reports
  // `detaching` until it is unpinned: the instance stops first, then the volume detaches.
  void SetDesired(std::map<std::string, std::string> desired, std::set<std::string> pinned = {});

  // Starts the provider calls and holder checks that are due. Call often.
  void Tick();

  // Whether Tick() has nothing to do until SetDesired changes the wanted volumes: each of them
  // attached, every other one detached, no provider call under way.
  bool Settled() const;

  // True once the provider confirmed the attach (and no detach has begun).
  bool IsAttached(const std::string& name) const;
  // HAFAB_VOLUME_DIR for an instance on this node.
  std::string MountPath(const std::string& name) const;
  // Every volume this node attached since the agent started, desired or not.
  std::vector<VolumeReport> Report() const;
  // Moves whenever what Report() says may have changed (a tick, a provider call's answer).
  uint64_t changes() const { return changes_; }
  // A volume the previous agent run left attached here (found through an adopted instance):
  // marks it attached without calling the provider.
  void NoteAttached(const std::string& name, const std::string& instance);

  // Remembers the volumes attached here in `path` (JSON), so that an agent restarted after a
  // crash detaches the ones nothing needs any more. Loads what a previous run left.
  void PersistTo(const std::string& path);

  Duration retry_interval = std::chrono::seconds(1);
  Duration holder_check_interval = std::chrono::milliseconds(100);
  // While holders remain, how often to ask the provider whether the volume is still ours.
  Duration describe_interval = std::chrono::seconds(2);
  // Told each provider call's result (on the caller's thread): op "attach" or "detach",
  // outcome "ok", "failed", "conflict" (attached elsewhere) or "force_detached".
  std::function<void(std::string_view op, std::string_view outcome)> on_result;

 private:
  struct Volume {
    VolumeState state = VolumeState::kDetached;
    std::string instance;
    std::string error;
    bool op_in_flight = false;
    TimePoint next_attempt{};
    TimePoint next_describe{};
  };
  void StartAttach(const std::string& name, Volume& v);
  void StepDetaching(const std::string& name, Volume& v);
  void Save();

  Clock& clock_;
  provider::Provider& provider_;
  std::string node_;
  Runner runner_;
  HolderCheck holders_;
  std::map<std::string, std::string> desired_;
  std::set<std::string> pinned_;
  std::string state_path_;
  std::map<std::string, Volume> volumes_;
  uint64_t changes_ = 0;
};

}  // namespace hafab::agent
