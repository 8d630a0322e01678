// The gateway against a fake controller (hafab_http::Server on loopback): it follows the
// route watch, acknowledges versions, loses its lease when heartbeats fail, keeps routing
// with the controller gone, and serves its counters on /metrics and /stats.
#include "gateway/control_plane.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <list>
#include <nlohmann/json.hpp>
#include <thread>

#include "gateway/metrics_server.h"
#include "gateway/test_util.h"
#include "http/http.h"

namespace hafab::gateway {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::ClosedWithin;
using testing::DeadPort;
using testing::Dial;
using testing::ReadLine;
using testing::TestBackend;
using testing::WaitFor;

constexpr const char* kToken = "s3cret";

// Runs `fn` on `io`'s thread and waits for it.
void RunOn(asio::io_context& io, std::function<void()> fn) {
  std::promise<void> done;
  asio::post(io, [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

// The controller's side of the gateway protocol (docs/architecture.md), nothing more.
class FakeController {
 public:
  FakeController()
      : work_(asio::make_work_guard(io_)),
        server_(io_, [this](auto&& r, auto s) { Handle(std::move(r), std::move(s)); }) {
    auto port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok());
    url_ = "http://127.0.0.1:" + std::to_string(port.value_or(0));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeController() { Stop(); }

  const std::string& url() const { return url_; }
  // Publishes a table: answers waiting polls at once.
  void SetRoutes(const nlohmann::json& routes) {
    RunOn(io_, [&] {
      routes_ = routes;
      auto waiting = std::move(waiting_);
      waiting_.clear();
      for (auto& w : waiting) w.respond(http::Response::Json(200, routes_.dump()));
    });
  }
  void AnswerHeartbeats(bool yes) { answer_heartbeats_ = yes; }
  // A follower controller replica: every request gets 503 "not leader" naming `leader`.
  void FollowLeader(const std::string& leader) {
    RunOn(io_, [&] { leader_ = leader; });
  }
  int requests() const { return requests_.load(); }
  void SetLeaseTtl(int ms) { lease_ttl_ms_ = ms; }
  // The heartbeats' "lease_ms" (what the controller grants); -1: left out.
  void SetGrantedLease(int ms) { granted_ms_ = ms; }
  uint64_t acked_version() const { return acked_.load(); }
  int heartbeats() const { return heartbeats_.load(); }
  int unauthorized() const { return unauthorized_.load(); }
  // The controller goes away: its port is closed.
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    RunOn(io_, [&] {
      waiting_.clear();
      server_.Stop();
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  struct Waiting {
    uint64_t id;
    http::Responder respond;
  };

  void Handle(http::Request&& req, http::Responder respond) {
    ++requests_;
    if (!leader_.empty()) {
      respond(http::Response::Json(
          503, nlohmann::json{{"error", "not leader"}, {"leader", leader_}}.dump()));
      return;
    }
    if (req.Header("authorization") != std::string("Bearer ") + kToken) {
      ++unauthorized_;
      respond(http::Response::Json(401, R"({"error": "bad token"})"));
      return;
    }
    if (req.method == "GET" && req.path == "/v1/routes") {
      const uint64_t after = std::stoull(req.Query("after").empty() ? "0" : req.Query("after"));
      if (routes_.is_object() && routes_["version"].get<uint64_t>() > after) {
        respond(http::Response::Json(200, routes_.dump()));
        return;
      }
      const uint64_t id = next_id_++;
      waiting_.push_back({id, std::move(respond)});
      auto timer = std::make_shared<asio::steady_timer>(io_);
      timer->expires_after(std::chrono::milliseconds(std::stoi(req.Query("wait_ms"))));
      timer->async_wait([this, id, timer](const boost::system::error_code&) {
        for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
          if (it->id != id) continue;
          it->respond(http::Response::Json(
              200, routes_.is_object() ? routes_.dump() : R"({"version": 0})"));
          waiting_.erase(it);
          return;
        }
      });
      return;
    }
    if (req.method == "POST" && req.path.rfind("/v1/gateways/", 0) == 0) {
      ++heartbeats_;
      if (!answer_heartbeats_) {
        respond(http::Response::Json(503, R"({"error": "not leader"})"));
        return;
      }
      auto j = nlohmann::json::parse(req.body);
      acked_ = j["routes_version"].get<uint64_t>();
      nlohmann::json answer = {{"lease_ttl_ms", lease_ttl_ms_.load()}};
      if (granted_ms_ >= 0) answer["lease_ms"] = granted_ms_.load();
      respond(http::Response::Json(200, answer.dump()));
      return;
    }
    respond(http::Response::Json(404, R"({"error": "no such path"})"));
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  http::Server server_;
  std::string url_;
  std::thread thread_;
  bool stopped_ = false;
  nlohmann::json routes_;
  std::list<Waiting> waiting_;
  uint64_t next_id_ = 1;
  std::atomic<bool> answer_heartbeats_{true};
  std::atomic<int> lease_ttl_ms_{1500};
  std::atomic<int> granted_ms_{-1};
  std::atomic<uint64_t> acked_{0};
  std::atomic<int> heartbeats_{0}, unauthorized_{0};
  std::atomic<int> requests_{0};
  std::string leader_;  // not empty: a follower naming this leader
};

nlohmann::json Routes(uint64_t version, const std::string& mode, uint64_t epoch,
                      const std::vector<std::pair<std::string, uint16_t>>& backends,
                      uint64_t primary_epoch_of_first = 0) {
  nlohmann::json bs = nlohmann::json::array();
  for (size_t i = 0; i < backends.size(); ++i) {
    bs.push_back({{"instance", backends[i].first},
                  {"node", "n" + std::to_string(i)},
                  {"address", "127.0.0.1"},
                  {"port", backends[i].second},
                  {"epoch", i == 0 ? primary_epoch_of_first : 0},
                  {"ready", true},
                  {"busy", false}});
  }
  return {{"version", version},
          {"endpoints",
           {{{"role", "svc"},
             {"mode", mode},
             {"listen", "127.0.0.1:0"},
             {"epoch", epoch},
             {"backends", bs}}}}};
}

// A gateway (Proxy + ControlPlane + MetricsServer) in this process.
class Gateway {
 public:
  explicit Gateway(std::vector<std::string> controllers, std::string token = kToken)
      : work_(asio::make_work_guard(io_)) {
    ProxyOptions po;
    po.threads = 2;
    auto p = Proxy::Start(po);
    EXPECT_TRUE(p.ok());
    proxy_ = std::move(p).value();
    proxy_->SetLeaseDeadline(TimePoint::min());
    ControlPlaneOptions co;
    co.gateway_id = "gw-test";
    co.controllers = std::move(controllers);
    co.token = std::move(token);
    co.poll_wait = 500ms;
    co.backoff_initial = 10ms;
    co.backoff_max = 100ms;
    control_ = std::make_unique<ControlPlane>(io_, *proxy_, co);
    metrics_ = std::make_unique<MetricsServer>(io_, *proxy_, control_.get());
    metrics_port_ = metrics_->Listen("127.0.0.1", 0).value_or(0);
    control_->Start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Gateway() {
    RunOn(io_, [&] {
      control_->Stop();
      metrics_->Stop();
    });
    work_.reset();
    io_.stop();
    thread_.join();
    proxy_->Drain(0s);
  }
  Proxy& proxy() { return *proxy_; }
  ControlPlaneStatus status() const { return control_->status(); }
  uint16_t port() { return proxy_->BoundPort("127.0.0.1:0").value_or(0); }
  std::string MetricsUrl(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(metrics_port_) + path;
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<ControlPlane> control_;
  std::unique_ptr<MetricsServer> metrics_;
  uint16_t metrics_port_ = 0;
  std::thread thread_;
};

TEST(ControlPlaneTest, FollowsRouteWatchAndAcknowledgesEachVersion) {
  TestBackend a("a"), b("b");
  FakeController fc;
  fc.SetRoutes(Routes(1, "active-passive", 1, {{"a", a.port()}, {"b", b.port()}}, 1));
  Gateway gw({fc.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1 && gw.proxy().LeaseValid(); }));
  int c1 = Dial(gw.port());
  ASSERT_GE(c1, 0);
  EXPECT_EQ(ReadLine(c1), "a");
  EXPECT_TRUE(WaitFor([&] { return fc.acked_version() == 1; }));

  // Failover: epoch 2, b (listed first) is the primary.
  fc.SetRoutes(Routes(2, "active-passive", 2, {{"b", b.port()}, {"a", a.port()}}, 2));
  EXPECT_TRUE(ClosedWithin(c1, 5s));
  // Confirmed fencing: the controller hears that version 2 is what the gateway routes by.
  EXPECT_TRUE(WaitFor([&] { return fc.acked_version() == 2; }));
  int c2 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c2), "b");
  EXPECT_EQ(gw.status().installed_version, 2u);
  EXPECT_EQ(fc.unauthorized(), 0);
  close(c1);
  close(c2);
}

TEST(ControlPlaneTest, KeepsRoutingWithTheControllerGone) {
  TestBackend a("a");
  auto fc = std::make_unique<FakeController>();
  fc->SetRoutes(Routes(1, "load-balanced", 0, {{"a", a.port()}}));
  Gateway gw({fc->url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1; }));
  fc->Stop();
  // The gateway has noticed (polls and heartbeats fail) ...
  ASSERT_TRUE(WaitFor([&] {
    auto s = gw.status();
    return s.poll_failures >= 3 && s.heartbeat_failures >= 1;
  }));
  // ... and still routes from its last table.
  for (int i = 0; i < 3; ++i) {
    int c = Dial(gw.port());
    ASSERT_GE(c, 0);
    EXPECT_EQ(ReadLine(c), "a");
    close(c);
  }
  EXPECT_EQ(gw.status().installed_version, 1u);
}

TEST(ControlPlaneTest, LeaseLossStopsActivePassiveRoutingUntilHeartbeatsReturn) {
  TestBackend a("a");
  FakeController fc;
  fc.SetLeaseTtl(300);
  fc.SetRoutes(Routes(1, "active-passive", 1, {{"a", a.port()}}, 1));
  Gateway gw({fc.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1 && gw.proxy().LeaseValid(); }));
  int c1 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c1), "a");

  fc.AnswerHeartbeats(false);  // e.g. the gateway is cut off from the controller
  EXPECT_TRUE(ClosedWithin(c1, 5s));
  EXPECT_FALSE(gw.proxy().LeaseValid());
  EXPECT_EQ(gw.proxy().stats().Endpoint("svc").fenced, 1u);
  int c2 = Dial(gw.port());
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().stats().Endpoint("svc").waits == 1; }));

  fc.AnswerHeartbeats(true);
  EXPECT_EQ(ReadLine(c2), "a");
  close(c1);
  close(c2);
}

// A controller that answers heartbeats but grants no lease (the gateway has not acknowledged
// routes published a lease ago, so the controller no longer waits for it) stops the gateway's
// active-passive routing as a silent controller does.
TEST(ControlPlaneTest, NoGrantedLeaseStopsActivePassiveRouting) {
  TestBackend a("a");
  FakeController fc;
  fc.SetLeaseTtl(300);
  fc.SetRoutes(Routes(1, "active-passive", 1, {{"a", a.port()}}, 1));
  Gateway gw({fc.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1 && gw.proxy().LeaseValid(); }));
  int c1 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c1), "a");

  fc.SetGrantedLease(0);
  EXPECT_TRUE(ClosedWithin(c1, 5s));
  EXPECT_FALSE(gw.proxy().LeaseValid());
  EXPECT_GT(gw.status().heartbeats_ok, 0u);

  fc.SetGrantedLease(300);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().LeaseValid(); }));
  int c2 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c2), "a");
  close(c1);
  close(c2);
}

TEST(ControlPlaneTest, TriesTheNextControllerUrl) {
  TestBackend a("a");
  FakeController fc;
  fc.SetRoutes(Routes(4, "load-balanced", 0, {{"a", a.port()}}));
  Gateway gw({"http://127.0.0.1:" + std::to_string(DeadPort()), fc.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 4; }));
  EXPECT_EQ(gw.status().controller, fc.url());
  EXPECT_TRUE(WaitFor([&] { return fc.acked_version() == 4; }));
}

// A follower's 503 names the leader: the gateway goes there directly, skipping the other
// URLs of its list (here another follower, which must see no request).
TEST(ControlPlaneTest, FollowsTheLeaderAFollowerNames) {
  TestBackend a("a");
  FakeController leader, follower, other;
  leader.SetRoutes(Routes(6, "load-balanced", 0, {{"a", a.port()}}));
  follower.FollowLeader(leader.url());
  other.FollowLeader(leader.url());
  Gateway gw({follower.url(), other.url(), leader.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 6; }));
  EXPECT_TRUE(WaitFor([&] { return leader.acked_version() == 6; }));
  EXPECT_EQ(gw.status().controller, leader.url());
  EXPECT_EQ(other.requests(), 0);
  EXPECT_GE(follower.requests(), 1);
}

TEST(ControlPlaneTest, RejectedTokenIsReportedAndNothingIsRouted) {
  FakeController fc;
  fc.SetRoutes(Routes(1, "load-balanced", 0, {{"a", 1}}));
  Gateway gw({fc.url()}, "wrong");
  ASSERT_TRUE(WaitFor([&] { return gw.status().poll_failures >= 1; }));
  EXPECT_NE(gw.status().last_error.find("401"), std::string::npos) << gw.status().last_error;
  EXPECT_EQ(gw.proxy().RoutesVersion(), 0u);
}

TEST(ControlPlaneTest, MetricsAndStatsShowCounters) {
  TestBackend a("a");
  FakeController fc;
  fc.SetRoutes(Routes(3, "load-balanced", 0, {{"a", a.port()}}));
  Gateway gw({fc.url()});
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 3; }));
  int c = Dial(gw.port());
  EXPECT_EQ(ReadLine(c), "a");
  close(c);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().stats().Endpoint("svc").active == 0; }));

  auto m = http::Fetch("GET", gw.MetricsUrl("/metrics"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(
      m->body.find("hafab_gateway_connections_total{endpoint=\"svc\",listen=\"127.0.0.1:0\"} 1\n"),
      std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("hafab_gateway_backend_connections_total{endpoint=\"svc\",backend=\"a\""),
            std::string::npos);
  EXPECT_NE(m->body.find("hafab_gateway_routes_version 3\n"), std::string::npos);
  EXPECT_NE(m->body.find("hafab_gateway_bytes_out_total{endpoint=\"svc\""), std::string::npos);

  auto s = http::Fetch("GET", gw.MetricsUrl("/stats"));
  ASSERT_TRUE(s.ok());
  auto j = nlohmann::json::parse(s->body);
  EXPECT_EQ(j["routes_version"], 3);
  EXPECT_EQ(j["endpoints"][0]["role"], "svc");
  EXPECT_EQ(j["endpoints"][0]["total"], 1);
  EXPECT_EQ(j["endpoints"][0]["backends"][0]["instance"], "a");
  EXPECT_GE(j["endpoints"][0]["bytes_out"].get<uint64_t>(), 2u);  // "a\n"
  EXPECT_EQ(j["control"]["installed_version"], 3);
}

}  // namespace
}  // namespace hafab::gateway
