// The gateway's control plane against a controller in memory (testing::FakeGatewayLink): it
// follows the route watch, acknowledges versions, loses its lease when heartbeats fail, keeps
// routing with the controller gone, and serves its counters on /metrics and /stats. Then its
// HTTP link (HttpControlLink) against a fake controller on loopback: the next URL, the
// leader a follower names, a refused token.
#include "gateway/control_plane.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "gateway/http_control_link.h"
#include "gateway/metrics_server.h"
#include "http/http.h"
#include "testing/fake_gateway_link.h"
#include "testing/loopback_tcp.h"
#include "testing/wait.h"

namespace hafab::gateway {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::ClosedWithin;
using testing::DeadPort;
using testing::Dial;
using testing::FakeGatewayController;
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

// FakeGatewayController (src/testing/fake_gateway_link.h) behind the controller's gateway API
// on a real http::Server, for the tests of HttpControlLink. Adds what only HTTP has: the
// bearer token, follower replicas answering 503 "not leader", a count of requests.
class HttpFakeController {
 public:
  HttpFakeController()
      : work_(asio::make_work_guard(io_)),
        link_(io_, controller_),
        server_(io_, [this](auto&& r, auto s) { Handle(std::move(r), std::move(s)); }) {
    auto port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok());
    url_ = "http://127.0.0.1:" + std::to_string(port.value_or(0));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HttpFakeController() {
    RunOn(io_, [&] { server_.Stop(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  const std::string& url() const { return url_; }
  FakeGatewayController& controller() { return controller_; }
  // A follower controller replica: every request gets 503 "not leader" naming `leader`.
  void FollowLeader(const std::string& leader) {
    RunOn(io_, [&] { leader_ = leader; });
  }
  int requests() const { return requests_.load(); }

 private:
  static void Fail(http::Responder& respond, const Status& st) {
    respond(http::Response::Json(503, nlohmann::json{{"error", st.message()}}.dump()));
  }

  void Handle(http::Request&& req, http::Responder respond) {
    ++requests_;
    if (!leader_.empty()) {
      respond(http::Response::Json(
          503, nlohmann::json{{"error", "not leader"}, {"leader", leader_}}.dump()));
      return;
    }
    if (req.Header("authorization") != std::string("Bearer ") + kToken) {
      respond(http::Response::Json(401, R"({"error": "bad token"})"));
      return;
    }
    if (req.method == "GET" && req.path == "/v1/routes") {
      link_.FetchRoutes(std::stoull(req.Query("after").empty() ? "0" : req.Query("after")),
                        std::chrono::milliseconds(std::stoi(req.Query("wait_ms"))),
                        [respond = std::move(respond)](Result<wire::Routes> r) mutable {
                          if (!r.ok()) return Fail(respond, r.status());
                          respond(http::Response::Json(200, wire::ToJson(*r).dump()));
                        });
      return;
    }
    if (req.method == "POST" && req.path == "/v1/gateways/gw-test/heartbeat") {
      auto hb = wire::ParseGatewayHeartbeat(nlohmann::json::parse(req.body, nullptr, false));
      if (!hb.ok()) {
        respond(http::Response::Json(400, nlohmann::json{{"error", hb.status().message()}}.dump()));
        return;
      }
      link_.Heartbeat("gw-test", *hb, 1s,
                      [respond = std::move(respond)](Result<wire::HeartbeatAnswer> r) mutable {
                        if (!r.ok()) return Fail(respond, r.status());
                        respond(http::Response::Json(200, wire::ToJson(*r).dump()));
                      });
      return;
    }
    respond(http::Response::Json(404, R"({"error": "no such path"})"));
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  FakeGatewayController controller_;
  testing::FakeGatewayLink link_;  // on io_
  http::Server server_;
  std::string url_;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::string leader_;  // not empty: a follower naming this leader
};

wire::Routes Routes(int64_t version, wire::RoutingMode mode, int64_t epoch,
                    const std::vector<std::pair<std::string, uint16_t>>& backends,
                    int64_t primary_epoch_of_first = 0) {
  wire::RouteEndpoint e;
  e.role = "svc";
  e.mode = mode;
  e.listen = "127.0.0.1:0";
  e.epoch = epoch;
  for (size_t i = 0; i < backends.size(); ++i) {
    wire::RouteBackend b;
    b.instance = backends[i].first;
    b.node = "n" + std::to_string(i);
    b.address = "127.0.0.1";
    b.port = backends[i].second;
    b.epoch = i == 0 ? primary_epoch_of_first : 0;
    b.ready = true;
    e.backends.push_back(b);
  }
  return {version, {e}};
}

constexpr wire::RoutingMode kActivePassive = wire::RoutingMode::kActivePassive;
constexpr wire::RoutingMode kLoadBalanced = wire::RoutingMode::kLoadBalanced;

// A gateway (Proxy + ControlPlane + MetricsServer) in this process, linked to the controller
// by the link `make_link` builds on the gateway's io_context.
class Gateway {
 public:
  using LinkFactory = std::function<std::unique_ptr<ControlLink>(asio::io_context&)>;

  // In memory, to `controller`.
  explicit Gateway(FakeGatewayController& controller)
      : Gateway([&controller](asio::io_context& io) {
          return std::make_unique<testing::FakeGatewayLink>(io, controller);
        }) {}
  // Over HTTP.
  Gateway(std::vector<std::string> controllers, std::string token)
      : Gateway([&](asio::io_context& io) {
          return std::make_unique<HttpControlLink>(io, std::move(controllers), std::move(token));
        }) {}

  explicit Gateway(const LinkFactory& make_link) : work_(asio::make_work_guard(io_)) {
    ProxyOptions po;
    po.threads = 2;
    auto p = Proxy::Start(po);
    EXPECT_TRUE(p.ok());
    proxy_ = std::move(p).value();
    proxy_->SetLeaseDeadline(TimePoint::min());
    ControlPlaneOptions co;
    co.gateway_id = "gw-test";
    co.poll_wait = 500ms;
    co.backoff_initial = 10ms;
    co.backoff_max = 100ms;
    control_ = std::make_unique<ControlPlane>(io_, *proxy_, co, make_link(io_));
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
  FakeGatewayController fc;
  fc.SetRoutes(Routes(1, kActivePassive, 1, {{"a", a.port()}, {"b", b.port()}}, 1));
  Gateway gw(fc);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1 && gw.proxy().LeaseValid(); }));
  int c1 = Dial(gw.port());
  ASSERT_GE(c1, 0);
  EXPECT_EQ(ReadLine(c1), "a");
  EXPECT_TRUE(WaitFor([&] { return fc.acked_version() == 1; }));

  // Failover: epoch 2, b (listed first) is the primary.
  fc.SetRoutes(Routes(2, kActivePassive, 2, {{"b", b.port()}, {"a", a.port()}}, 2));
  EXPECT_TRUE(ClosedWithin(c1, 5s));
  // Confirmed fencing: the controller hears that version 2 is what the gateway routes by.
  EXPECT_TRUE(WaitFor([&] { return fc.acked_version() == 2; }));
  int c2 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c2), "b");
  EXPECT_EQ(gw.status().installed_version, 2u);
  close(c1);
  close(c2);
}

TEST(ControlPlaneTest, KeepsRoutingWithTheControllerGone) {
  TestBackend a("a");
  FakeGatewayController fc;
  fc.SetRoutes(Routes(1, kLoadBalanced, 0, {{"a", a.port()}}));
  Gateway gw(fc);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1; }));
  fc.SetReachable(false);
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
  FakeGatewayController fc;
  fc.SetLeaseTtl(300ms);
  fc.SetRoutes(Routes(1, kActivePassive, 1, {{"a", a.port()}}, 1));
  Gateway gw(fc);
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
  FakeGatewayController fc;
  fc.SetLeaseTtl(300ms);
  fc.SetRoutes(Routes(1, kActivePassive, 1, {{"a", a.port()}}, 1));
  Gateway gw(fc);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 1 && gw.proxy().LeaseValid(); }));
  int c1 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c1), "a");

  fc.SetGrantedLease(0ms);
  EXPECT_TRUE(ClosedWithin(c1, 5s));
  EXPECT_FALSE(gw.proxy().LeaseValid());
  EXPECT_GT(gw.status().heartbeats_ok, 0u);

  fc.SetGrantedLease(300ms);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().LeaseValid(); }));
  int c2 = Dial(gw.port());
  EXPECT_EQ(ReadLine(c2), "a");
  close(c1);
  close(c2);
}

// Over HTTP (HttpControlLink): what only the HTTP link does.

TEST(HttpControlLinkTest, TriesTheNextControllerUrl) {
  TestBackend a("a");
  HttpFakeController fc;
  fc.controller().SetRoutes(Routes(4, kLoadBalanced, 0, {{"a", a.port()}}));
  Gateway gw({"http://127.0.0.1:" + std::to_string(DeadPort()), fc.url()}, kToken);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 4; }));
  EXPECT_EQ(gw.status().controller, fc.url());
  EXPECT_TRUE(WaitFor([&] { return fc.controller().acked_version() == 4; }));
}

// A follower's 503 names the leader: the gateway goes there directly, skipping the other
// URLs of its list (here another follower, which must see no request).
TEST(HttpControlLinkTest, FollowsTheLeaderAFollowerNames) {
  TestBackend a("a");
  HttpFakeController leader, follower, other;
  leader.controller().SetRoutes(Routes(6, kLoadBalanced, 0, {{"a", a.port()}}));
  follower.FollowLeader(leader.url());
  other.FollowLeader(leader.url());
  Gateway gw({follower.url(), other.url(), leader.url()}, kToken);
  ASSERT_TRUE(WaitFor([&] { return gw.proxy().RoutesVersion() == 6; }));
  EXPECT_TRUE(WaitFor([&] { return leader.controller().acked_version() == 6; }));
  EXPECT_EQ(gw.status().controller, leader.url());
  EXPECT_EQ(other.requests(), 0);
  EXPECT_GE(follower.requests(), 1);
}

TEST(HttpControlLinkTest, RejectedTokenIsReportedAndNothingIsRouted) {
  HttpFakeController fc;
  fc.controller().SetRoutes(Routes(1, kLoadBalanced, 0, {{"a", 1}}));
  Gateway gw({fc.url()}, "wrong");
  ASSERT_TRUE(WaitFor([&] { return gw.status().poll_failures >= 1; }));
  EXPECT_NE(gw.status().last_error.find("401"), std::string::npos) << gw.status().last_error;
  EXPECT_EQ(gw.proxy().RoutesVersion(), 0u);
}

TEST(ControlPlaneTest, MetricsAndStatsShowCounters) {
  TestBackend a("a");
  FakeGatewayController fc;
  fc.SetRoutes(Routes(3, kLoadBalanced, 0, {{"a", a.port()}}));
  Gateway gw(fc);
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
