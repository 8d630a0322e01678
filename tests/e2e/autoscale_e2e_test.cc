// Autoscaling end to end, on connections per instance: N slow requests held open through
// the gateway scale the echo role from min 2 up; released, it comes back to 2 after the
// stabilisation window. The scale events are counted (no flapping).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "tests/e2e/cluster.h"
#include "tests/e2e/load_client.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A connection through the gateway with a request the app answers only after a minute:
// one active connection on a backend for as long as it is held.
int HoldSlowRequest(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  const std::string req = "GET /slow?ms=120000 HTTP/1.1\r\nHost: e2e\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

struct EchoState {
  int desired = -1, ready = 0;
};

EchoState Echo(Cluster& c) {
  EchoState s;
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return s;
  for (const auto& r : (*st)["roles"]) {
    if (r["name"] == "echo") s.desired = r["instances"];
  }
  for (const auto& i : (*st)["instances"]) {
    if (i["role"] == "echo" && i["ready"] == true) ++s.ready;
  }
  return s;
}

std::vector<std::string> ScaleEvents(Cluster& c) {
  std::vector<std::string> out;
  auto ev = c.Api("GET", "/v1/events");
  if (!ev.ok()) return out;
  for (const auto& e : (*ev)["events"]) {
    std::string type = e["type"];
    if (type.rfind("autoscaled-", 0) == 0)
      out.push_back(type + ": " + e["message"].get<std::string>());
  }
  return out;
}

TEST(AutoscaleE2eTest, HeldConnectionsScaleUpAndReleaseScalesBackDown) {
  ClusterOptions o;
  o.echo_extra =
      "    min: 2\n    max: 5\n"
      "    autoscale: {metric: connections, target: 4, stabilization: 5s, cooldown: 2s}\n";
  Cluster c(o);
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  ASSERT_TRUE(c.WaitFor(
                   "2 echo instances ready", [&] { return Echo(c).ready == 2; }, 30s)
                  .ok());
  const int port = std::stoi(c.echo_url().substr(c.echo_url().rfind(':') + 1));
  // Short requests all along: scaling up and down (drained first) fails none of them.
  LoadClient load(c.echo_url() + "/", 1);
  load.Start();

  // 14 connections (15 or 16 with the short requests in flight), 4 per instance wanted:
  // 4 instances whatever the short requests do (a multiple of 4 would sit on the boundary).
  std::vector<int> held;
  for (int i = 0; i < 14; ++i) {
    int fd = HoldSlowRequest(port);
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  TimePoint t0 = RealClock().Now();
  ASSERT_TRUE(c.WaitFor(
                   "4 echo instances ready", [&] { return Echo(c).ready == 4; }, 30s)
                  .ok());
  std::cout << "scaled 2 -> 4 ready in " << ToMillis(RealClock().Now() - t0) << "ms\n";
  // Held for longer than the stabilisation window: the count does not move.
  TimePoint hold_until = RealClock().Now() + 8s;
  while (RealClock().Now() < hold_until) {
    EchoState s = Echo(c);
    EXPECT_EQ(s.desired, 4);
    std::this_thread::sleep_for(200ms);  // sampling the count while the load is held
  }
  // Reset, not FIN: a half-closed request still waits for its answer (and stays active).
  for (int fd : held) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
  }
  TimePoint t1 = RealClock().Now();
  ASSERT_TRUE(c.WaitFor(
                   "echo back to 2", [&] { return Echo(c).desired == 2; }, 30s)
                  .ok());
  double down_ms = ToMillis(RealClock().Now() - t1);
  std::cout << "released -> scaled back to 2 after " << down_ms << "ms (stabilization 5s)\n";
  // Not before the window: the last "4" was recommended at most one evaluation (1 s)
  // before the release.
  EXPECT_GE(down_ms, 5000 - 1100);

  // The removed instances are gone (drained, then stopped) with the load still running.
  ASSERT_TRUE(c.WaitFor(
                   "2 echo instances", [&] { return Echo(c).ready == 2; }, 20s)
                  .ok());
  load.Stop();
  std::cout << "short requests during the whole test: " << load.ok() << " answered, "
            << load.failed() << " failed\n";
  EXPECT_EQ(load.failed(), 0) << (load.errors().empty() ? "" : load.errors()[0]);
  std::vector<std::string> events = ScaleEvents(c);
  for (const auto& e : events) std::cout << "  " << e << "\n";
  int ups = 0, downs = 0;
  for (const auto& e : events) (e.rfind("autoscaled-up", 0) == 0 ? ups : downs)++;
  std::cout << "scale events: " << ups << " up, " << downs << " down\n";
  EXPECT_GE(ups, 1);
  EXPECT_LE(ups, 2);  // connections arrive over ~1 evaluation: 2 -> 4, or 2 -> 3 -> 4
  EXPECT_EQ(downs, 1);
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace hafab::e2e
