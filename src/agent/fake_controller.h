// FakeController: the controller's agent API (heartbeat, assignments long-poll) on a real
// http::Server, for the agent's integration tests. Records every heartbeat; the test sets the
// assignment list and can make the controller go silent (no answers) to trigger self-fencing.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "http/http.h"
#include "wire/agent_heartbeat.h"

namespace hafab::agent::testutil {

class FakeController {
 public:
  FakeController() : work_(boost::asio::make_work_guard(io_)) {
    server_ =
        std::make_unique<http::Server>(io_, [this](http::Request&& req, http::Responder respond) {
          Handle(std::move(req), std::move(respond));
        });
    auto port = server_->Listen("127.0.0.1", 0);
    HAFAB_CHECK(port.ok(), port.status().ToString());
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeController() {
    RunOnIo([this] {
      server_->Stop();
      pending_.clear();
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& token() const { return token_; }

  // Sets the assignment list (a JSON array of assignment objects); bumps the generation.
  void SetAssignments(nlohmann::json assignments) {
    RunOnIo([&] {
      assignments_ = std::move(assignments);
      ++generation_;
      for (auto& p : pending_) p(Response());
      pending_.clear();
    });
  }
  // silent: accept connections but never answer (as a partitioned or hung controller).
  void SetSilent(bool silent) {
    RunOnIo([&] {
      silent_ = silent;
      if (!silent) {
        for (auto& p : pending_) p(Response());
        pending_.clear();
      }
    });
  }
  // A follower controller replica: every request gets 503 "not leader" naming `leader`.
  void SetNotLeader(const std::string& leader) {
    RunOnIo([&] { not_leader_ = leader; });
  }
  // Requests received (any path).
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // The last heartbeat body received, parsed; null if none.
  nlohmann::json LastHeartbeat() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_heartbeat_;
  }
  int heartbeats() {
    std::lock_guard<std::mutex> lock(mu_);
    return heartbeats_;
  }
  // Every heartbeat that carried a "fence" record.
  std::vector<nlohmann::json> FenceReports() {
    std::lock_guard<std::mutex> lock(mu_);
    return fence_reports_;
  }
  // The instance object of the last heartbeat, or null.
  nlohmann::json Instance(const std::string& name) {
    auto hb = LastHeartbeat();
    if (hb.is_null()) return nullptr;
    for (auto& i : hb["instances"]) {
      if (i["instance"] == name) return i;
    }
    return nullptr;
  }
  nlohmann::json Volume(const std::string& name) {
    auto hb = LastHeartbeat();
    if (hb.is_null()) return nullptr;
    for (auto& v : hb["volumes"]) {
      if (v["name"] == name) return v;
    }
    return nullptr;
  }

  Duration lease_ttl = std::chrono::milliseconds(1500);

 private:
  http::Response Response() {
    return http::Response::Json(
        200, nlohmann::json{{"generation", generation_}, {"assignments", assignments_}}.dump());
  }

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
    if (silent_) {
      silenced_.push_back(std::move(respond));  // kept, never answered
      return;
    }
    if (req.method == "POST" && req.path.find("/heartbeat") != std::string::npos) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      // What the controller would refuse is refused here too.
      if (auto hb = wire::ParseAgentHeartbeat(body); !hb.ok()) {
        respond(http::Response::Json(400, nlohmann::json{{"error", hb.status().message()}}.dump()));
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_heartbeat_ = body;
        ++heartbeats_;
        if (last_heartbeat_.contains("fence")) fence_reports_.push_back(last_heartbeat_["fence"]);
      }
      respond(http::Response::Json(
          200, wire::ToJson(wire::HeartbeatAnswer{lease_ttl, generation_, std::nullopt}).dump()));
      return;
    }
    if (req.method == "GET" && req.path.find("/assignments") != std::string::npos) {
      uint64_t after = std::stoull(req.Query("after").empty() ? "0" : req.Query("after"));
      int64_t wait = std::stoll(req.Query("wait_ms").empty() ? "0" : req.Query("wait_ms"));
      if (generation_ > after || wait == 0) {
        respond(Response());
      } else {
        pending_.push_back(std::move(respond));  // answered on the next change
      }
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
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string token_ = "test-token";
  nlohmann::json assignments_ = nlohmann::json::array();
  uint64_t generation_ = 1;
  bool silent_ = false;
  std::string not_leader_;  // not empty: answer as a follower naming this leader
  int requests_ = 0;        // GUARDED_BY(mu_)
  std::vector<http::Responder> pending_;
  std::vector<http::Responder> silenced_;
  std::mutex mu_;
  nlohmann::json last_heartbeat_;
  int heartbeats_ = 0;
  std::vector<nlohmann::json> fence_reports_;
};

}  // namespace hafab::agent::testutil
