// TimedLink: a ControlLink (agent/control_link.h) that passes every call to the real one (the
// agent's ControllerClient over HTTP) and records how long each heartbeat took to be answered,
// as the agent sees it, into a HeartbeatStats shared by the agents of one io_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "agent/control_link.h"

namespace hafab::bench {

// Heartbeat outcomes of a group of agents. Thread-safe: written on an agent thread, read and
// reset by the generator's main thread.
class HeartbeatStats {
 public:
  struct Window {
    std::vector<uint32_t> rtt_us;  // answered heartbeats' round trips, microseconds
    int64_t failed = 0;            // heartbeats that got an error (timeout, refused, 5xx)
  };

  void Record(bool ok, std::chrono::steady_clock::duration rtt) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ok) {
      ++w_.failed;
      return;
    }
    w_.rtt_us.push_back(
        static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(rtt).count()));
  }
  // What was recorded since the last call; starts a new window.
  Window Take() {
    std::lock_guard<std::mutex> lock(mu_);
    Window out;
    std::swap(out, w_);
    return out;
  }

 private:
  std::mutex mu_;
  Window w_;
};

class TimedLink final : public agent::ControlLink {
 public:
  TimedLink(agent::ControlLink& inner, HeartbeatStats& stats) : inner_(inner), stats_(stats) {}

  void Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override {
    const auto sent = std::chrono::steady_clock::now();
    inner_.Heartbeat(heartbeat, timeout,
                     [this, sent, done = std::move(done)](Result<wire::HeartbeatAnswer> r) {
                       stats_.Record(r.ok(), std::chrono::steady_clock::now() - sent);
                       done(std::move(r));
                     });
  }

  void FetchAssignments(const std::string& node, uint64_t after, uint64_t digest, Duration wait,
                        std::function<void(Result<wire::AssignmentList>)> done) override {
    inner_.FetchAssignments(node, after, digest, wait, std::move(done));
  }

  std::string Describe() const override { return inner_.Describe(); }

 private:
  agent::ControlLink& inner_;
  HeartbeatStats& stats_;
};

}  // namespace hafab::bench
