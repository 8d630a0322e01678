// HttpFakeAgentController: FakeAgentController (fake_control_link.h) behind the
// controller's agent API (heartbeat, assignments long-poll) on a real http::Server, for the
// tests of the agent's HTTP client and of the agent binary. Adds what only HTTP has: the
// bearer token, follower replicas answering 503 "not leader", a count of requests.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "http/http.h"
#include "testing/fake_control_link.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"

namespace hafab::testing {

class HttpFakeAgentController {
 public:
  HttpFakeAgentController() : work_(boost::asio::make_work_guard(io_)), link_(io_, controller_) {
    server_ =
        std::make_unique<http::Server>(io_, [this](http::Request&& req, http::Responder respond) {
          Handle(std::move(req), std::move(respond));
        });
    auto port = server_->Listen("127.0.0.1", 0);
    HAFAB_CHECK(port.ok(), port.status().ToString());
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HttpFakeAgentController() {
    RunOnIo([this] {
      server_->Stop();
      silenced_.clear();
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& token() const { return token_; }

  // The controller's state: assignments, silence, lease, the heartbeats received.
  FakeAgentController& controller() { return controller_; }
  void SetAssignments(std::vector<wire::Assignment> assignments) {
    controller_.SetAssignments(std::move(assignments));
  }
  // silent: accept connections but never answer (as a partitioned or hung controller).
  void SetSilent(bool silent) { controller_.SetSilent(silent); }
  void SetLeaseTtl(Duration ttl) { controller_.SetLeaseTtl(ttl); }
  nlohmann::json LastHeartbeat() { return controller_.LastHeartbeat(); }
  int heartbeats() { return controller_.heartbeats(); }
  nlohmann::json Instance(const std::string& name) { return controller_.Instance(name); }
  nlohmann::json Volume(const std::string& name) { return controller_.Volume(name); }
  // A follower controller replica: every request gets 503 "not leader" naming `leader`.
  void SetNotLeader(const std::string& leader) {
    RunOnIo([&] { not_leader_ = leader; });
  }
  // Requests received (any path).
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  // Longer than any test: a call the controller went silent on stays unanswered.
  static constexpr Duration kNeverAnswered = std::chrono::hours(1);

  void Handle(http::Request&& req, http::Responder respond) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
    }
    if (!not_leader_.empty()) {
      respond(http::Response::Json(
          503, nlohmann::json{{"error", "not leader"}, {"leader", not_leader_}}.dump()));
      return;
    }
    if (req.Header("authorization") != "Bearer " + token_) {
      respond(http::Response::Json(401, R"({"error": "bad token"})"));
      return;
    }
    if (controller_.silent()) {
      silenced_.push_back(std::move(respond));  // kept, never answered
      return;
    }
    if (req.method == "POST" && req.path.find("/heartbeat") != std::string::npos) {
      auto hb = wire::ParseAgentHeartbeat(nlohmann::json::parse(req.body, nullptr, false));
      if (!hb.ok()) {
        respond(http::Response::Json(400, nlohmann::json{{"error", hb.status().message()}}.dump()));
        return;
      }
      link_.Heartbeat(*hb, kNeverAnswered,
                      [respond = std::move(respond)](Result<wire::HeartbeatAnswer> r) mutable {
                        if (r.ok()) {
                          respond(http::Response::Json(200, wire::ToJson(*r).dump()));
                        } else {
                          const int code = r.status().code() == StatusCode::kConflict ? 409 : 400;
                          respond(http::Response::Json(
                              code, nlohmann::json{{"error", r.status().message()}}.dump()));
                        }
                      });
      return;
    }
    if (req.method == "GET" && req.path.find("/assignments") != std::string::npos) {
      uint64_t after = std::stoull(req.Query("after").empty() ? "0" : req.Query("after"));
      uint64_t digest = std::stoull(req.Query("digest").empty() ? "0" : req.Query("digest"));
      int64_t wait = std::stoll(req.Query("wait_ms").empty() ? "0" : req.Query("wait_ms"));
      link_.FetchAssignments(
          "", after, digest, std::chrono::milliseconds(wait),
          [respond = std::move(respond)](Result<wire::AssignmentList> r) mutable {
            if (r.ok()) respond(http::Response::Json(200, wire::ToJson(*r).dump()));
          });
      return;
    }
    respond(http::Response::Json(404, R"({"error": "no such path"})"));
  }

  void RunOnIo(std::function<void()> fn) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  FakeAgentController controller_;
  FakeControlLink link_;  // on io_
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string token_ = "test-token";
  std::string not_leader_;  // not empty: answer as a follower naming this leader
  std::vector<http::Responder> silenced_;
  int requests_ = 0;  // GUARDED_BY(mu_)
  std::mutex mu_;
};

}  // namespace hafab::testing
