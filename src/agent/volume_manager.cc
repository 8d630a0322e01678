#include "agent/volume_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json.h"

namespace hafab::agent {

VolumeManager::VolumeManager(Clock& clock, provider::Provider& provider, std::string node,
                             Runner runner, HolderCheck holders)
    : clock_(clock),
      provider_(provider),
      node_(std::move(node)),
      runner_(std::move(runner)),
      holders_(std::move(holders)) {}

void VolumeManager::SetDesired(std::map<std::string, std::string> desired,
                               std::set<std::string> pinned) {
  desired_ = std::move(desired);
  pinned_ = std::move(pinned);
}

bool VolumeManager::Settled() const {
  for (const auto& [name, v] : volumes_) {
    const VolumeState settled =
        desired_.count(name) ? VolumeState::kAttached : VolumeState::kDetached;
    if (v.op_in_flight || v.state != settled) return false;
  }
  return std::all_of(desired_.begin(), desired_.end(),
                     [this](const auto& d) { return volumes_.count(d.first) > 0; });
}

bool VolumeManager::IsAttached(const std::string& name) const {
  auto it = volumes_.find(name);
  return it != volumes_.end() && it->second.state == VolumeState::kAttached;
}

std::string VolumeManager::MountPath(const std::string& name) const {
  return provider_.MountPath(name, node_);
}

void VolumeManager::NoteAttached(const std::string& name, const std::string& instance) {
  Volume& v = volumes_[name];
  if (v.op_in_flight) return;
  ++changes_;
  v.state = VolumeState::kAttached;
  v.instance = instance;
}

std::vector<VolumeReport> VolumeManager::Report() const {
  std::vector<VolumeReport> out;
  for (const auto& [name, v] : volumes_) {
    wire::VolumeState state = v.state == VolumeState::kAttached    ? wire::VolumeState::kAttached
                              : v.state == VolumeState::kDetaching ? wire::VolumeState::kDetaching
                                                                   : wire::VolumeState::kDetached;
    out.push_back({name, state, v.instance, v.error});
  }
  return out;
}

void VolumeManager::PersistTo(const std::string& path) {
  state_path_ = path;
  std::ifstream in(path);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    auto j = nlohmann::json::parse(ss.str());
    for (auto& [name, instance] : j.items()) {
      if (!volumes_.count(name)) {
        spdlog::info("volume {}: left attached here by the previous agent run", name);
        NoteAttached(name, instance.get<std::string>());
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("ignoring unreadable {}: {}", path, e.what());
  }
}

void VolumeManager::Save() {
  if (state_path_.empty()) return;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, v] : volumes_) {
    // Attaching counts too: the provider may have attached it before we crashed.
    if (v.state != VolumeState::kDetached || v.op_in_flight) j[name] = v.instance;
  }
  const std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Dump(j) << "\n";
  }
  std::rename(tmp.c_str(), state_path_.c_str());
}

void VolumeManager::Tick() {
  ++changes_;
  const TimePoint now = clock_.Now();
  for (const auto& [name, instance] : desired_) {
    Volume& v = volumes_[name];
    if (v.op_in_flight) continue;
    if (v.state == VolumeState::kDetaching) {
      // Wanted again before the provider detach began: it is still ours.
      v.state = VolumeState::kAttached;
      v.error.clear();
    }
    if (v.state == VolumeState::kAttached) continue;
    if (now < v.next_attempt) continue;
    v.instance = instance;
    StartAttach(name, v);
  }
  for (auto& [name, v] : volumes_) {
    if (desired_.count(name) || v.op_in_flight) continue;
    if (v.state == VolumeState::kAttached || v.state == VolumeState::kAttaching) {
      spdlog::info("volume {}: no longer assigned here; detaching once no process holds {}", name,
                   MountPath(name));
      v.state = VolumeState::kDetaching;
      v.error.clear();
      v.next_attempt = now;
      v.next_describe = now + describe_interval;
    }
    if (v.state == VolumeState::kDetaching && !pinned_.count(name) && now >= v.next_attempt) {
      StepDetaching(name, v);
    }
  }
}

void VolumeManager::StartAttach(const std::string& name, Volume& v) {
  v.state = VolumeState::kAttaching;
  v.op_in_flight = true;
  Save();
  std::string instance = v.instance;
  runner_([this, name, instance] { return provider_.Attach(name, node_, instance); },
          [this, name](Status st) {
            Volume& v = volumes_[name];
            v.op_in_flight = false;
            ++changes_;
            if (on_result) {
              on_result("attach", st.ok()                              ? "ok"
                                  : st.code() == StatusCode::kConflict ? "conflict"
                                                                       : "failed");
            }
            if (st.ok()) {
              spdlog::info("volume {}: attached to {} for {}", name, node_, v.instance);
              v.state = VolumeState::kAttached;
              v.error.clear();
            } else {
              spdlog::warn("volume {}: attach failed: {}", name, st.ToString());
              if (st.code() == StatusCode::kConflict) v.state = VolumeState::kDetached;
              v.error = st.ToString();
              v.next_attempt = clock_.Now() + retry_interval;
            }
          });
}

void VolumeManager::StepDetaching(const std::string& name, Volume& v) {
  const TimePoint now = clock_.Now();
  std::vector<pid_t> holders = holders_(MountPath(name));
  if (!holders.empty()) {
    std::string pids;
    for (pid_t p : holders) pids += (pids.empty() ? "" : ",") + std::to_string(p);
    v.error = "still held by pid " + pids;
    v.next_attempt = now + holder_check_interval;
    if (now >= v.next_describe) {
      // With a shared root (LocalProvider in `hafab up`) the holder may be another node's
      // instance after the controller force-detached ours: then the volume is not ours.
      v.next_describe = now + describe_interval;
      v.op_in_flight = true;
      runner_(
          [this, name]() -> Status {
            auto d = provider_.Describe(name);
            if (!d.ok()) return d.status();
            return d->node == node_ ? Status::Ok() : Status::NotFound("not attached here");
          },
          [this, name](Status st) {
            Volume& v = volumes_[name];
            v.op_in_flight = false;
            ++changes_;
            if (st.code() == StatusCode::kNotFound && v.state == VolumeState::kDetaching) {
              spdlog::info("volume {}: no longer attached to {} (force-detached)", name, node_);
              if (on_result) on_result("detach", "force_detached");
              v.state = VolumeState::kDetached;
              v.error.clear();
            }
          });
    }
    return;
  }
  v.op_in_flight = true;
  runner_([this, name] { return provider_.Detach(name, node_); },
          [this, name](Status st) {
            Volume& v = volumes_[name];
            v.op_in_flight = false;
            ++changes_;
            if (on_result) on_result("detach", st.ok() ? "ok" : "failed");
            if (st.ok()) {
              spdlog::info("volume {}: detached from {}", name, node_);
              v.state = VolumeState::kDetached;
              v.error.clear();
              Save();
            } else {
              spdlog::warn("volume {}: detach failed: {}", name, st.ToString());
              v.error = st.ToString();
              v.next_attempt = clock_.Now() + retry_interval;
            }
          });
}

}  // namespace hafab::agent
