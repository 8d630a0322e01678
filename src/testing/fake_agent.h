// FakeAgent: an agent in the controller's unit tests, without a process or a network: it
// calls the Controller directly. GatewayAck: what a fake gateway reports.
#pragma once

#include <map>
#include <set>
#include <string>

#include "controller/controller.h"
#include "core/json.h"
#include "testing/fake_provider.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"
#include "wire/gateway_heartbeat.h"

namespace hafab::testing {

// A gateway heartbeat acknowledging routes `version`, with the connections it holds.
inline wire::GatewayHeartbeat GatewayAck(int64_t version,
                                         std::map<std::string, uint64_t> active = {}) {
  wire::GatewayHeartbeat hb;
  hb.routes_version = static_cast<uint64_t>(version);
  hb.active = std::move(active);
  return hb;
}

// An in-process agent that does what a real one would, instantly: runs instances whose
// assignment says run (at the assigned epoch), attaches and detaches volumes through the
// provider, and reports it all in its heartbeat.
class FakeAgent {
 public:
  FakeAgent(std::string node, std::string fd, std::string ud, FakeProvider* provider)
      : node_(std::move(node)), fd_(std::move(fd)), ud_(std::move(ud)), provider_(provider) {}

  // Pulls assignments and makes the node match them.
  void Sync(controller::Controller& c) {
    auto got = c.Assignments(node_);
    if (!got.ok()) return;  // as a real agent: keeps what it runs, asks again later
    // What an agent reads: the answer's text, parsed.
    auto list = wire::ParseAssignments(Dump(*got));
    HAFAB_CHECK(list.ok(), list.status().ToString());
    generation_ = static_cast<int64_t>(list->generation);
    digest_ = wire::ContentDigest(*list);
    std::map<std::string, wire::Assignment> want;
    for (auto& x : list->assignments) want[x.instance] = std::move(x);
    for (auto it = inst_.begin(); it != inst_.end();) {
      if (!want.count(it->first)) {
        it = inst_.erase(it);
      } else {
        ++it;
      }
    }
    std::set<std::string> keep_volumes;
    for (const auto& [name, x] : want) {
      auto& s = inst_[name];
      s.role = x.role;
      s.epoch = static_cast<int64_t>(x.epoch);
      s.command = x.command;
      s.replica = x.replica;
      if (!x.volume.empty()) {
        keep_volumes.insert(x.volume);
        if (provider_->Attach(x.volume, node_, name).ok()) volumes_[x.volume] = name;
      }
      bool run = x.run && !hung_.count(name);
      using wire::InstanceState;
      if (!run) {
        s.state = crashed_.count(name) ? InstanceState::kFailed : InstanceState::kStopped;
      } else if (crashed_.count(name) || broken_commands_.count(s.command)) {
        s.state = InstanceState::kFailed;
      } else {
        s.state = InstanceState::kRunning;
      }
    }
    for (auto it = volumes_.begin(); it != volumes_.end();) {
      if (!keep_volumes.count(it->first) && !held_volumes_.count(it->first)) {
        (void)provider_->Detach(it->first, node_);
        it = volumes_.erase(it);
      } else {
        ++it;
      }
    }
  }

  wire::AgentHeartbeat Heartbeat() const {
    wire::AgentHeartbeat hb;
    hb.node = node_;
    hb.address = "127.0.0.1";
    hb.labels = {{"fault_domain", fd_}, {"update_domain", ud_}};
    hb.assignments_generation = static_cast<uint64_t>(generation_);
    hb.assignments_digest = digest_;
    for (const auto& [name, s] : inst_) {
      bool running = s.state == wire::InstanceState::kRunning;
      wire::InstanceReport& r = hb.instances.emplace_back();
      r.instance = name;
      r.role = s.role;
      r.epoch = s.epoch;
      r.state = s.state;
      r.liveness = running ? wire::Liveness::kOk : wire::Liveness::kUnknown;
      r.readiness = running ? wire::Readiness::kReady : wire::Readiness::kUnknown;
      r.restarts = restarts_.count(name) ? restarts_.at(name) : 0;
      r.cpu_percent = cpu_.count(name) ? cpu_.at(name) : 0.0;
      // A replica takes its configuration at once and says so.
      if (running && s.replica && !replica_silent_.count(name)) {
        auto pos = positions_.find(name);
        r.replica = wire::ReplicaStatus{
            s.replica->role, s.replica->epoch,
            pos != positions_.end() ? pos->second : wire::Position{s.replica->epoch, 0},
            "streaming", s.replica->primary ? s.replica->primary->instance : ""};
      }
    }
    for (const auto& [v, inst] : volumes_) {
      hb.volumes.push_back({v, wire::VolumeState::kAttached, inst, ""});
    }
    return hb;
  }

  // Heartbeat, then sync, then heartbeat again (what a real agent does within ~1 interval).
  void Step(controller::Controller& c) {
    if (dead_) return;
    (void)c.AgentHeartbeat(node_, Heartbeat());
    Sync(c);
    (void)c.AgentHeartbeat(node_, Heartbeat());
  }

  std::string State(const std::string& inst) const {
    auto it = inst_.find(inst);
    return it == inst_.end() ? "" : std::string(wire::InstanceStateName(it->second.state));
  }
  void Crash(const std::string& inst) { crashed_.insert(inst); }
  void Heal(const std::string& inst) { crashed_.erase(inst); }
  // Instances whose assignment runs `command` fail at start (a broken version).
  void BreakCommand(const std::string& command) { broken_commands_.insert(command); }
  std::string Command(const std::string& inst) const {
    auto it = inst_.find(inst);
    return it == inst_.end() ? "" : it->second.command;
  }
  // The node reports `volume` attached, for no instance, whatever its assignments (a leftover
  // its agent cannot detach).
  void HoldVolume(const std::string& volume) {
    held_volumes_.insert(volume);
    volumes_.emplace(volume, "");
  }
  void SetRestarts(const std::string& inst, int n) { restarts_[inst] = n; }
  void SetCpu(const std::string& inst, double percent) { cpu_[inst] = percent; }
  // A replica's log ends at `p`; a silent replica answers no status.
  void SetPosition(const std::string& inst, wire::Position p) { positions_[inst] = p; }
  void SetReplicaSilent(const std::string& inst, bool silent) {
    if (silent) {
      replica_silent_.insert(inst);
    } else {
      replica_silent_.erase(inst);
    }
  }
  // The configuration the node's agent holds for a replica (nullopt: none).
  std::optional<wire::ReplicaConfig> Replica(const std::string& inst) const {
    auto it = inst_.find(inst);
    return it == inst_.end() ? std::nullopt : it->second.replica;
  }
  // The whole node dies: agent and instances. Volumes stay attached (in the provider).
  void Kill() {
    dead_ = true;
    inst_.clear();
  }
  void Revive() { dead_ = false; }
  bool dead() const { return dead_; }
  const std::string& node() const { return node_; }

 private:
  struct Inst {
    std::string role, command;
    wire::InstanceState state = wire::InstanceState::kStopped;
    int64_t epoch = 0;
    std::optional<wire::ReplicaConfig> replica;
  };
  std::string node_, fd_, ud_;
  FakeProvider* provider_;
  int64_t generation_ = 0;
  uint64_t digest_ = 0;  // wire::ContentDigest of the list it runs
  std::map<std::string, Inst> inst_;
  std::map<std::string, std::string> volumes_;
  std::set<std::string> held_volumes_;
  std::set<std::string> crashed_, hung_, broken_commands_;
  std::map<std::string, int> restarts_;
  std::map<std::string, double> cpu_;
  std::map<std::string, wire::Position> positions_;
  std::set<std::string> replica_silent_;
  bool dead_ = false;
};

}  // namespace hafab::testing
