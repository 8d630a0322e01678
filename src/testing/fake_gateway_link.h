// FakeGatewayLink: the gateway's link to a controller that lives in the test's memory
// (gateway/control_link.h), no HTTP. FakeGatewayController is that controller: the test
// publishes routing tables, sets the lease it grants, makes it refuse heartbeats or go away
// (every call fails at once, as to a closed port) and reads the versions acknowledged.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/control_link.h"
#include "wire/agent_heartbeat.h"
#include "wire/gateway_heartbeat.h"
#include "wire/routes.h"

namespace hafab::testing {

class FakeGatewayLink;

// Thread-safe: the test's thread sets and reads, the gateways' io threads call.
class FakeGatewayController {
 public:
  // Publishes a table: answers the long polls waiting for an older version.
  void SetRoutes(wire::Routes routes);
  // false: the controller is gone; every call fails at once with Unavailable, and so do the
  // long polls that were waiting.
  void SetReachable(bool reachable);
  // false: heartbeats fail with Unavailable (as a controller that is not the leader answers).
  void AnswerHeartbeats(bool answer) {
    std::lock_guard lock(mu_);
    answer_heartbeats_ = answer;
  }
  void SetLeaseTtl(Duration ttl) {
    std::lock_guard lock(mu_);
    lease_ttl_ = ttl;
  }
  // The lease granted in heartbeat answers ("lease_ms"); nullopt: left out (a full TTL).
  void SetGrantedLease(std::optional<Duration> lease) {
    std::lock_guard lock(mu_);
    granted_ = lease;
  }
  // The routes_version of the last heartbeat answered.
  uint64_t acked_version() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  int heartbeats() {
    std::lock_guard lock(mu_);
    return heartbeats_;
  }

 private:
  friend class FakeGatewayLink;
  // A long poll's `done`, empty once answered.
  using Waiting = std::function<void(Result<wire::Routes>)>;
  struct Poll {
    FakeGatewayLink* link;
    uint64_t after;
    std::weak_ptr<Waiting> waiting;
  };
  // REQUIRES: mu_ held. Answers the waiting long polls that `routes_` (or the controller's
  // absence) answers, on their links' threads.
  void AnswerPolls();

  std::mutex mu_;
  wire::Routes routes_;  // GUARDED_BY(mu_), and the rest
  bool reachable_ = true;
  bool answer_heartbeats_ = true;
  Duration lease_ttl_ = std::chrono::milliseconds(1500);
  std::optional<Duration> granted_;
  std::vector<Poll> polls_;  // long polls waiting for a newer version
  uint64_t acked_ = 0;
  int heartbeats_ = 0;
};

// One gateway's link, on that gateway's control io_context (calls and answers on its
// thread). Is destroyed before the FakeGatewayController and before `io` (it forgets its
// waiting long polls; answers already posted to `io` are dropped with it).
class FakeGatewayLink final : public gateway::ControlLink {
 public:
  FakeGatewayLink(boost::asio::io_context& io, FakeGatewayController& controller)
      : io_(io), controller_(controller), alive_(std::make_shared<std::atomic<bool>>(true)) {}
  ~FakeGatewayLink() override {
    *alive_ = false;
    std::lock_guard lock(controller_.mu_);
    std::erase_if(controller_.polls_, [this](const auto& p) { return p.link == this; });
  }

  void FetchRoutes(uint64_t after, Duration wait,
                   std::function<void(Result<wire::Routes>)> done) override {
    std::lock_guard lock(controller_.mu_);
    if (!controller_.reachable_) {
      Post([done = std::move(done)] { done(Gone()); });
      return;
    }
    if (static_cast<uint64_t>(controller_.routes_.version) > after || wait == Duration::zero()) {
      Post([done = std::move(done), routes = controller_.routes_] { done(routes); });
      return;
    }
    // Only handlers on `io_` own the waiting call (the controller keeps a weak_ptr): a
    // gateway that owns this link is not kept alive by the controller.
    auto waiting = std::make_shared<FakeGatewayController::Waiting>(std::move(done));
    std::erase_if(controller_.polls_, [](const auto& p) { return p.waiting.expired(); });
    controller_.polls_.push_back({this, after, waiting});
    // `wait` passed without a newer version: the same version again.
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, wait);
    timer->async_wait([this, timer, waiting, alive = alive_](boost::system::error_code) {
      if (!*alive || !*waiting) return;
      wire::Routes routes;
      {
        std::lock_guard lock(controller_.mu_);
        routes = controller_.routes_;
      }
      std::exchange(*waiting, nullptr)(routes);
    });
  }

  void Heartbeat(const std::string& gateway_id, const wire::GatewayHeartbeat& heartbeat,
                 Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override {
    (void)gateway_id;
    (void)timeout;
    std::lock_guard lock(controller_.mu_);
    Result<wire::HeartbeatAnswer> answer = Gone();
    if (controller_.reachable_) {
      ++controller_.heartbeats_;
      if (controller_.answer_heartbeats_) {
        controller_.acked_ = heartbeat.routes_version;
        answer =
            wire::HeartbeatAnswer{controller_.lease_ttl_, 0, controller_.granted_, std::nullopt};
      } else {
        answer = Status::Unavailable("fake controller: not leader");
      }
    }
    Post([done = std::move(done), answer = std::move(answer)] { done(answer); });
  }

  // A single controller names no leader.
  void OnLeaderFound(std::function<void()> fn) override { (void)fn; }
  std::string Current() const override { return "fake-controller"; }

 private:
  friend class FakeGatewayController;

  static Status Gone() { return Status::Unavailable("fake-controller: connection refused"); }

  // Runs `fn` on the io thread, unless this link is gone by then.
  void Post(std::function<void()> fn) {
    boost::asio::post(io_, [alive = alive_, fn = std::move(fn)] {
      if (*alive) fn();
    });
  }

  boost::asio::io_context& io_;
  FakeGatewayController& controller_;
  std::shared_ptr<std::atomic<bool>> alive_;  // false once destroyed: posted answers are dropped
};

inline void FakeGatewayController::SetRoutes(wire::Routes routes) {
  std::lock_guard lock(mu_);
  routes_ = std::move(routes);
  AnswerPolls();
}

inline void FakeGatewayController::SetReachable(bool reachable) {
  std::lock_guard lock(mu_);
  reachable_ = reachable;
  AnswerPolls();
}

inline void FakeGatewayController::AnswerPolls() {
  std::erase_if(polls_, [this](Poll& p) {
    auto waiting = p.waiting.lock();
    if (waiting == nullptr) return true;
    if (reachable_ && static_cast<uint64_t>(routes_.version) <= p.after) return false;
    Result<wire::Routes> answer =
        reachable_ ? Result<wire::Routes>(routes_) : FakeGatewayLink::Gone();
    p.link->Post([waiting, answer = std::move(answer)] {
      if (*waiting) std::exchange(*waiting, nullptr)(answer);
    });
    return true;
  });
}

}  // namespace hafab::testing
