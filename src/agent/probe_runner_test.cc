// The agent's ProbeRunner against a real HTTP server on loopback.
#include "agent/probe_runner.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <optional>

#include "http/http.h"
#include "testing/run_io.h"

namespace hafab::agent {
namespace {

using namespace std::chrono_literals;

using testing::RunUntil;

// An app's /health: answers 200, or holds every request without an answer once hung.
class HealthServer {
 public:
  explicit HealthServer(boost::asio::io_context& io)
      : server_(io, [this](http::Request&&, http::Responder respond) {
          ++requests_;
          if (hung_) {
            held_.push_back(std::move(respond));  // never answered, as a stopped process
            return;
          }
          respond(http::Response::Text(200, "ok"));
        }) {
    port_ = *server_.Listen("127.0.0.1", 0);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }
  size_t open() const { return server_.stats().open; }
  void Hang() { hung_ = true; }

 private:
  http::Server server_;
  int port_ = 0;
  int requests_ = 0;
  bool hung_ = false;
  std::vector<http::Responder> held_;
};

struct Outcomes {
  std::vector<ProbeOutcome> got;
  ProbeRunner::ReportFn Fn() {
    return [this](const std::string&, pid_t, ProbeType, ProbeOutcome o, Duration) {
      got.push_back(o);
    };
  }
};

ProbeTarget Target(int port) {
  manifest::Probe probe;
  probe.kind = manifest::ProbeKind::kHttp;
  probe.path = "/health";
  probe.interval = 10ms;
  probe.timeout = 200ms;
  ProbeTarget t;
  t.instance = "kv-0";
  t.pid = 42;
  t.port = port;
  t.readiness = probe;
  return t;
}

// One connection carries every probe: a flood that fills the app's listen queue (its new SYNs
// dropped) does not make the probe fail while the app still answers.
TEST(ProbeRunnerTest, AnHttpProbeKeepsItsConnection) {
  boost::asio::io_context io;
  HealthServer app(io);
  Outcomes outcomes;
  ProbeRunner runner(io, "127.0.0.1", outcomes.Fn());
  runner.Sync({Target(app.port())});
  ASSERT_TRUE(RunUntil(io, [&] { return outcomes.got.size() >= 5; }));
  for (ProbeOutcome o : outcomes.got) EXPECT_EQ(o, ProbeOutcome::kOk);
  EXPECT_EQ(app.open(), 1u);
  // Stopping the probe closes its connection: nothing is held open for an app that drains.
  runner.Sync({});
  EXPECT_TRUE(RunUntil(io, [&] { return app.open() == 0; }));
}

// The kept connection does not hide a hang: a request with no answer within the timeout fails.
TEST(ProbeRunnerTest, AHungAppFailsTheProbeOnItsKeptConnection) {
  boost::asio::io_context io;
  HealthServer app(io);
  Outcomes outcomes;
  ProbeRunner runner(io, "127.0.0.1", outcomes.Fn());
  runner.Sync({Target(app.port())});
  ASSERT_TRUE(RunUntil(io, [&] { return outcomes.got.size() >= 2; }));
  app.Hang();
  const size_t before = outcomes.got.size();
  ASSERT_TRUE(RunUntil(io, [&] {
    return outcomes.got.size() > before && outcomes.got.back() == ProbeOutcome::kFailed;
  }));
}

}  // namespace
}  // namespace hafab::agent
