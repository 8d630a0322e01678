// FakeControlLink: the agent's link to a controller that lives in the test's memory
// (agent/control_link.h), no HTTP. FakeAgentController is that controller: the test sets the
// assignment list and the lease, makes it go silent (no answers: the agent's calls time out,
// as to a partitioned or hung controller) and reads the heartbeats it received. One
// FakeAgentController serves the FakeControlLink of each agent (or each run of one agent)
// in turn; http_fake_agent_controller.h puts the same controller behind HTTP.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/control_link.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"

namespace hafab::testing {

class FakeControlLink;

// Thread-safe: the test's thread sets and reads, the agents' io threads call. A long poll
// waits for a change (not for its `wait`: the agent's own next poll does not depend on it).
class FakeAgentController {
 public:
  // Sets the assignment list of every node; bumps the generation (from 1) and answers the
  // long polls waiting for a change.
  void SetAssignments(std::vector<wire::Assignment> assignments);
  // silent: no call is answered (each fails with DeadlineExceeded after its timeout); the
  // long polls that were waiting before are answered once it speaks again.
  void SetSilent(bool silent);
  bool silent() {
    std::lock_guard lock(mu_);
    return silent_;
  }
  // The lease granted in heartbeat answers (the agent's lease_ttl).
  void SetLeaseTtl(Duration ttl) {
    std::lock_guard lock(mu_);
    lease_ttl_ = ttl;
  }

  // The last heartbeat received, as JSON (wire::ToJson); null if none. A keep-alive shows as
  // the report it names (the controller's view), with its own ring and fence members.
  nlohmann::json LastHeartbeat() {
    std::lock_guard lock(mu_);
    return last_heartbeat_;
  }
  // The last assignments request's `after` and `digest` (ControlLink::FetchAssignments).
  std::pair<uint64_t, uint64_t> LastPoll() {
    std::lock_guard lock(mu_);
    return last_poll_;
  }
  int heartbeats() {
    std::lock_guard lock(mu_);
    return heartbeats_;
  }
  // Of them, keep-alives taken (wire/agent_heartbeat.h), and keep-alives refused.
  int keepalives() {
    std::lock_guard lock(mu_);
    return keepalives_;
  }
  int refused_keepalives() {
    std::lock_guard lock(mu_);
    return refused_keepalives_;
  }
  // Forgets the report held, as a controller that restarted: the next keep-alive is refused
  // (Conflict) and the agent must send its whole report.
  void ForgetReport() {
    std::lock_guard lock(mu_);
    report_ = 0;
  }
  // The "fence" member of every heartbeat that carried one.
  std::vector<nlohmann::json> FenceReports() {
    std::lock_guard lock(mu_);
    return fence_reports_;
  }
  // The instance (volume) object of the last heartbeat, or null.
  nlohmann::json Instance(const std::string& name) { return Find("instances", "instance", name); }
  nlohmann::json Volume(const std::string& name) { return Find("volumes", "name", name); }

 private:
  friend class FakeControlLink;
  struct Poll {
    FakeControlLink* link;
    std::function<void(Result<wire::AssignmentList>)> done;
  };

  nlohmann::json Find(const char* list, const char* key, const std::string& name) {
    nlohmann::json hb = LastHeartbeat();
    if (hb.is_null()) return nullptr;
    for (auto& x : hb[list]) {
      if (x[key] == name) return x;
    }
    return nullptr;
  }
  wire::AssignmentList List() const { return {generation_, assignments_, {}, {}}; }
  // REQUIRES: mu_ held. Answers the waiting long polls (on their links' threads).
  void AnswerPolls();

  std::mutex mu_;
  std::vector<wire::Assignment> assignments_;  // GUARDED_BY(mu_), and the rest
  uint64_t generation_ = 1;
  bool silent_ = false;
  Duration lease_ttl_ = std::chrono::milliseconds(1500);
  std::vector<Poll> polls_;  // long polls waiting for a change
  nlohmann::json last_heartbeat_;
  std::pair<uint64_t, uint64_t> last_poll_;
  uint64_t report_ = 0;  // the id of the full report held (last_report_)
  nlohmann::json last_report_;
  int heartbeats_ = 0;
  int keepalives_ = 0;
  int refused_keepalives_ = 0;
  std::vector<nlohmann::json> fence_reports_;
};

// One agent's link, on that agent's io_context (calls and answers on its thread). Outlives
// the agent; is destroyed before the FakeAgentController and before `io` (it forgets its
// waiting long polls; answers already posted to `io` are dropped with it).
class FakeControlLink final : public agent::ControlLink {
 public:
  FakeControlLink(boost::asio::io_context& io, FakeAgentController& controller)
      : io_(io), controller_(controller), alive_(std::make_shared<std::atomic<bool>>(true)) {}
  ~FakeControlLink() override {
    *alive_ = false;
    std::lock_guard lock(controller_.mu_);
    std::erase_if(controller_.polls_, [this](const auto& p) { return p.link == this; });
  }

  void Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override {
    std::unique_lock lock(controller_.mu_);
    if (controller_.silent_) {
      lock.unlock();
      TimeOut(timeout, std::move(done));
      return;
    }
    // What the controller would refuse is refused here too.
    nlohmann::json body = wire::ToJson(heartbeat);
    auto parsed = wire::ParseAgentHeartbeat(body);
    Result<wire::HeartbeatAnswer> answer =
        parsed.ok()
            ? Result<wire::HeartbeatAnswer>(wire::HeartbeatAnswer{
                  controller_.lease_ttl_, controller_.generation_, std::nullopt, std::nullopt})
            : Result<wire::HeartbeatAnswer>(parsed.status());
    if (parsed.ok() && heartbeat.same_as != 0 && heartbeat.same_as != controller_.report_) {
      answer = Status::Conflict("same_as: report " + std::to_string(heartbeat.same_as) +
                                " is not held; send the full report");
      ++controller_.refused_keepalives_;
    } else if (parsed.ok()) {
      if (heartbeat.same_as == 0) {
        controller_.report_ = heartbeat.report;
        controller_.last_report_ = body;
      } else {
        ++controller_.keepalives_;
      }
      nlohmann::json shown = controller_.last_report_;
      for (const char* member : {"ring", "ring_endpoint", "fence"}) {
        shown.erase(member);
        if (body.contains(member)) shown[member] = body[member];
      }
      controller_.last_heartbeat_ = std::move(shown);
      ++controller_.heartbeats_;
      if (body.contains("fence")) controller_.fence_reports_.push_back(body["fence"]);
    }
    lock.unlock();
    Post([done = std::move(done), answer = std::move(answer)] { done(answer); });
  }

  void FetchAssignments(const std::string& node, uint64_t after, uint64_t digest, Duration wait,
                        std::function<void(Result<wire::AssignmentList>)> done) override {
    (void)node;  // every node gets the same list
    std::unique_lock lock(controller_.mu_);
    controller_.last_poll_ = {after, digest};
    if (controller_.silent_) {
      lock.unlock();
      TimeOut(wait, std::move(done));
      return;
    }
    if (controller_.generation_ > after || wait == Duration::zero()) {
      auto list = controller_.List();
      lock.unlock();
      Post([done = std::move(done), list = std::move(list)] { done(list); });
      return;
    }
    controller_.polls_.push_back({this, std::move(done)});
  }

  std::string Describe() const override { return "in-process fake controller"; }

 private:
  friend class FakeAgentController;

  // Runs `fn` on the io thread, unless this link is gone by then.
  void Post(std::function<void()> fn) {
    boost::asio::post(io_, [alive = alive_, fn = std::move(fn)] {
      if (*alive) fn();
    });
  }

  template <typename T>
  void TimeOut(Duration after, std::function<void(Result<T>)> done) {
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, after);
    timer->async_wait([timer, alive = alive_, done = std::move(done)](boost::system::error_code) {
      if (*alive) done(Status::DeadlineExceeded("fake controller is silent"));
    });
  }

  boost::asio::io_context& io_;
  FakeAgentController& controller_;
  std::shared_ptr<std::atomic<bool>> alive_;  // false once destroyed: posted answers are dropped
};

inline void FakeAgentController::SetAssignments(std::vector<wire::Assignment> assignments) {
  std::lock_guard lock(mu_);
  assignments_ = std::move(assignments);
  ++generation_;
  if (!silent_) AnswerPolls();
}

inline void FakeAgentController::SetSilent(bool silent) {
  std::lock_guard lock(mu_);
  silent_ = silent;
  if (!silent_) AnswerPolls();
}

inline void FakeAgentController::AnswerPolls() {
  for (Poll& p : polls_) {
    p.link->Post([done = std::move(p.done), list = List()] { done(list); });
  }
  polls_.clear();
}

}  // namespace hafab::testing
