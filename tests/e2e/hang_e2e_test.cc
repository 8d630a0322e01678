// A hung instance (SIGSTOP: it still completes TCP handshakes from its listen backlog, but
// answers nothing) is replaced, on the quickstart manifest as shipped: the kvd primary within
// 2 s of the first acknowledged write through the gateway with no acknowledged write lost, and
// an echo instance within 2 s. With a tcp liveness probe (which cannot see the hang) the kvd
// primary fails over once readiness has failed for failover_after.
#include <gtest/gtest.h>

#include <iostream>
#include <optional>

#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr auto kReplacedWithin = 2s;  // issue 17's bound

std::optional<json> Instance(Cluster& c, const std::string& name) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return std::nullopt;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("instance", "") == name) return i;
  }
  return std::nullopt;
}

void Hang(Cluster& c, const std::string& instance) {
  std::string out;
  ASSERT_EQ(c.Hafab({"kill", instance, "--signal", "STOP", "--state-dir", c.state_dir()}, &out), 0)
      << out;
}

// SIGSTOPs the kvd primary while a client writes through the gateway every 5 ms; returns
// the time from the stop to the first acknowledged write sent after it. Checks that no
// acknowledged write was lost and that the hung process was killed.
Duration HangKvdPrimary(Cluster& c, const std::string& tag) {
  auto [primary, node] = c.KvdPrimary();
  EXPECT_FALSE(primary.empty());
  auto before = Instance(c, primary);
  EXPECT_TRUE(before.has_value());
  const pid_t hung = before ? before->value("pid", 0) : 0;
  KvChecker checker(c.kvd_url(), 5ms, tag);
  checker.Start();
  EXPECT_TRUE(c.WaitFor(
                   "writes before the hang", [&] { return checker.acked() >= 40; }, 10s)
                  .ok());
  TimePoint t_stop = RealClock().Now();
  Hang(c, primary);
  TimePoint t_stopped = RealClock().Now();
  std::optional<TimePoint> first_after;
  Status back = c.WaitFor(
      "a write acknowledged after the hang",
      [&] {
        for (const auto& a : checker.AcksSnapshot()) {
          if (a.sent >= t_stopped) {
            first_after = a.acked;
            return true;
          }
        }
        return false;
      },
      30s);
  EXPECT_TRUE(back.ok()) << back.ToString();
  int64_t acked_now = checker.acked();
  (void)c.WaitFor(
      "writes after the hang", [&] { return checker.acked() >= acked_now + 20; }, 10s);
  checker.Stop();
  CheckReport rep = checker.Check();
  EXPECT_EQ(rep.lost, 0) << rep.ToString();
  EXPECT_EQ(rep.split_brain, 0) << rep.ToString();
  EXPECT_GT(hung, 0);
  EXPECT_TRUE(c.WaitFor(
                   "the hung kvd process to be killed", [&] { return kill(hung, 0) != 0; }, 10s)
                  .ok());
  return first_after ? *first_after - t_stop : Duration::max();
}

bool AnyEvent(Cluster& c, const std::string& type, const std::string& text) {
  auto ev = c.Api("GET", "/v1/events");
  if (!ev.ok()) return false;
  for (const auto& e : ev->value("events", json::array())) {
    if (e.value("type", "") == type && e.value("message", "").find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

TEST(HangE2eTest, QuickstartReplacesAHungKvdPrimaryAndAHungEchoInstance) {
  ClusterOptions co;
  co.example = kQuickstart;
  Cluster c(co);
  Status started = c.Start(60s);
  ASSERT_TRUE(started.ok()) << started.ToString();

  Duration kvd = HangKvdPrimary(c, "q-");
  std::cout << "quickstart: SIGSTOP of the kvd primary -> first acknowledged write after "
            << ToMillis(kvd) << " ms\n";
  EXPECT_LT(kvd, kReplacedWithin);

  // echo: the hung instance is killed and restarted in place, ready again.
  ASSERT_TRUE(c.WaitFor(
                   "echo-1 ready",
                   [&] {
                     auto i = Instance(c, "echo-1");
                     return i && i->value("ready", false);
                   },
                   30s)
                  .ok());
  const pid_t hung = Instance(c, "echo-1")->value("pid", 0);
  TimePoint t_stop = RealClock().Now();
  Hang(c, "echo-1");
  Status replaced = c.WaitFor(
      "echo-1 to run again as a new, ready process",
      [&] {
        auto i = Instance(c, "echo-1");
        return i && i->value("ready", false) && i->value("pid", 0) != hung &&
               i->value("pid", 0) != 0;
      },
      30s);
  ASSERT_TRUE(replaced.ok()) << replaced.ToString();
  Duration echo = RealClock().Now() - t_stop;
  std::cout << "quickstart: SIGSTOP of echo-1 -> a new ready echo-1 after " << ToMillis(echo)
            << " ms\n";
  EXPECT_LT(echo, kReplacedWithin);
  EXPECT_EQ(kill(hung, 0), -1);
  EXPECT_TRUE(c.WaitFor(
                   "an instance-restarted event for echo-1",
                   [&] { return AnyEvent(c, "instance-restarted", "echo-1"); }, 5s)
                  .ok());
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

TEST(HangE2eTest, WithTcpLivenessAHungPrimaryFailsOverAfterFailoverAfter) {
  ClusterOptions co;
  co.example = kQuickstart;
  co.example_edits = {kQuickstartKvdTcpLiveness};  // the kvd role before issue 17
  Cluster c(co);
  Status started = c.Start(60s);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto [old_primary, old_node] = c.KvdPrimary();

  Duration kvd = HangKvdPrimary(c, "t-");
  std::cout << "tcp liveness: SIGSTOP of the kvd primary -> first acknowledged write after "
            << ToMillis(kvd) << " ms\n";
  EXPECT_LT(kvd, kReplacedWithin);
  auto [new_primary, new_node] = c.KvdPrimary();
  EXPECT_NE(new_primary, old_primary) << "the standby took over";
  EXPECT_NE(new_node, old_node);
  EXPECT_TRUE(c.WaitFor(
                   "a failover-started event naming the hang",
                   [&] { return AnyEvent(c, "failover-started", "hung: readiness failed"); }, 5s)
                  .ok());
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace hafab::e2e
