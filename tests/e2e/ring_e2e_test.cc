// settings.failure_detector: ring with real agents (`hafab up`, three nodes on loopback): a
// stopped node is found down by its ring neighbours and its kvd primary fails over no slower
// than with the star (same lease and margin), with no acknowledged write lost; a node whose
// ring probes are dropped (cut from its neighbours only, yet talking to the controller) is
// reported isolated and nothing fails over.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>

#include <iostream>
#include <optional>

#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The first event of `type` about `node` after event id `after`; nullopt if none yet.
std::optional<json> Event(Cluster& c, const std::string& type, const std::string& node,
                          int64_t after = 0) {
  auto ev = c.Api("GET", "/v1/events");
  if (!ev.ok()) return std::nullopt;
  for (const auto& e : (*ev)["events"]) {
    if (e.value("id", int64_t{0}) > after && e.value("type", "") == type &&
        e.value("message", "").find("node " + node + " ") != std::string::npos) {
      return e;
    }
  }
  return std::nullopt;
}

int64_t LastEvent(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  return st.ok() ? st->value("last_event", int64_t{0}) : 0;
}

std::optional<json> Node(Cluster& c, const std::string& name) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return std::nullopt;
  for (const auto& n : st->value("nodes", json::array())) {
    if (n.value("name", "") == name) return n;
  }
  return std::nullopt;
}

void Signal(Cluster& c, const std::string& node, const char* sig) {
  std::string out;
  ASSERT_EQ(c.Hafab({"kill", node, "--signal", sig, "--state-dir", c.state_dir()}, &out), 0) << out;
}

struct Outcome {
  Duration down = Duration::max();      // the stop to the node-down event seen
  Duration failover = Duration::max();  // the stop to the first write acknowledged after it
  std::string down_message;
};

// SIGSTOPs the node of the kvd primary (agent, watchdog and instances) under writes every 5 ms,
// measures, resumes it, and checks that no acknowledged write was lost.
Outcome StopPrimaryNode(const std::string& detector) {
  ClusterOptions o;
  o.failure_detector = detector;
  o.echo_instances = 0;
  o.revive_after = "600s";  // never: the test resumes the node itself
  Cluster c(o);
  Outcome out;
  Status st = c.Start();
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!st.ok()) return out;
  auto [primary, node] = c.KvdPrimary();
  EXPECT_FALSE(node.empty());
  if (detector == "ring") {
    // Every node probes and is probed before the fault.
    EXPECT_TRUE(c.WaitFor(
                     "ring probes on every node",
                     [&] {
                       for (const char* n : {"n1", "n2", "n3"}) {
                         auto j = Node(c, n);
                         if (!j || !j->contains("ring") || (*j)["ring"]["received"] < 10) {
                           return false;
                         }
                       }
                       return true;
                     },
                     20s)
                    .ok());
  }
  KvChecker checker(c.kvd_url(), 5ms, detector);
  checker.Start();
  EXPECT_TRUE(c.WaitFor(
                   "writes before the stop", [&] { return checker.acked() >= 40; }, 10s)
                  .ok());
  const int64_t after = LastEvent(c);
  const TimePoint t_stop = RealClock().Now();
  Signal(c, node, "STOP");
  const TimePoint t_stopped = RealClock().Now();
  std::optional<TimePoint> first_after;
  Status back = c.WaitFor(
      "the node-down event and a write acknowledged after the stop",
      [&] {
        if (out.down == Duration::max()) {
          if (auto e = Event(c, "node-down", node, after)) {
            out.down = RealClock().Now() - t_stop;
            out.down_message = e->value("message", "");
          }
        }
        for (const auto& a : checker.AcksSnapshot()) {
          if (a.sent >= t_stopped) {
            first_after = a.acked;
            break;
          }
        }
        return first_after && out.down != Duration::max();
      },
      30s);
  EXPECT_TRUE(back.ok()) << back.ToString();
  if (first_after) out.failover = *first_after - t_stop;
  Signal(c, node, "CONT");
  const int64_t acked_now = checker.acked();
  EXPECT_TRUE(
      c.WaitFor(
           "writes after the resume", [&] { return checker.acked() >= acked_now + 40; }, 10s)
          .ok());
  // The resumed node rejoins (its agent fenced the old primary: its lease had run out).
  EXPECT_TRUE(c.WaitFor(
                   "the stopped node back up",
                   [&] {
                     auto j = Node(c, node);
                     return j && j->value("state", "") == "up";
                   },
                   20s)
                  .ok());
  checker.Stop();
  CheckReport rep = checker.Check();
  EXPECT_EQ(rep.lost, 0) << rep.ToString();
  EXPECT_EQ(rep.split_brain, 0) << rep.ToString();
  if (detector == "ring") {
    for (const char* n : {"n1", "n2", "n3"}) {
      auto j = Node(c, n);
      EXPECT_TRUE(j && j->contains("ring")) << n;
      if (j && j->contains("ring")) {
        EXPECT_EQ((*j)["ring"]["dropped_invalid"], 0) << n;
      }
    }
  }
  std::cout << "[" << detector << "] node " << node << " stopped: node-down after "
            << ToMs(out.down) << " ms (" << out.down_message << "), first write after "
            << ToMs(out.failover) << " ms\n";
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
  return out;
}

TEST(RingE2eTest, StoppedNodeFailsOverNoSlowerThanWithTheStar) {
  const Outcome star = StopPrimaryNode("star");
  const Outcome ring = StopPrimaryNode("ring");
  ASSERT_NE(star.failover, Duration::max());
  ASSERT_NE(ring.failover, Duration::max());
  EXPECT_NE(ring.down_message.find("suspected by its ring neighbours"), std::string::npos)
      << ring.down_message;
  // The ring finds the node down before its lease runs out (the star's only way)...
  EXPECT_LT(ring.down, star.down);
  // ...and the primary, which waits for the lease plus the margin either way, moves no later
  // (one run each on a shared machine: a quarter and 300 ms of slack for scheduling noise).
  EXPECT_LE(ring.failover, star.failover + star.failover / 4 + 300ms)
      << "ring " << ToMs(ring.failover) << " ms, star " << ToMs(star.failover) << " ms";
}

// The test's own network namespace (so that the routing rules below touch nobody else's
// loopback); false when the kernel or the container refuses.
bool OwnNetworkNamespace() {
  if (unshare(CLONE_NEWNET) != 0) return false;
  return std::system("ip link set lo up") == 0;
}

TEST(RingE2eTest, NodeCutFromItsNeighboursOnlyIsIsolatedAndNothingFailsOver) {
  if (geteuid() != 0 || !OwnNetworkNamespace()) {
    GTEST_SKIP() << "needs root and a network namespace of its own (unshare, ip rule)";
  }
  ClusterOptions o;
  o.failure_detector = "ring";
  o.echo_instances = 0;
  Cluster c(o);
  Status st = c.Start();
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto [primary, node] = c.KvdPrimary();
  ASSERT_FALSE(node.empty());
  int port = 0;
  ASSERT_TRUE(c.WaitFor(
                   "the primary's node's ring port",
                   [&] {
                     auto j = Node(c, node);
                     if (!j || !j->contains("ring")) return false;
                     port = (*j)["ring"]["port"];
                     return port > 0 && (*j)["ring"]["received"] >= 10;
                   },
                   20s)
                  .ok());
  KvChecker checker(c.kvd_url(), 5ms, "isolated");
  checker.Start();
  ASSERT_TRUE(c.WaitFor(
                   "writes before the cut", [&] { return checker.acked() >= 40; }, 10s)
                  .ok());
  const int64_t after = LastEvent(c);
  // Every UDP datagram to or from the node's ring port is refused by routing rules ahead of the
  // local table (one way would not do: any datagram from a node shows it alive). Its heartbeats
  // (TCP to the controller) pass.
  const std::string p = std::to_string(port);
  const std::string cut =
      "ip rule add pref 100 lookup local && ip rule del pref 0 && "
      "ip rule add pref 10 ipproto udp dport " +
      p + " blackhole && " + "ip rule add pref 11 ipproto udp sport " + p + " blackhole";
  ASSERT_EQ(std::system(cut.c_str()), 0) << cut;
  std::optional<json> isolated;
  EXPECT_TRUE(c.WaitFor(
                   "node-isolated",
                   [&] { return (isolated = Event(c, "node-isolated", node, after)).has_value(); },
                   10s)
                  .ok());
  // Held for three leases: still not down, and the primary has not moved.
  const Status down = c.WaitFor(
      "no node-down (this wait must time out)",
      [&] { return Event(c, "node-down", node, after).has_value(); }, 4500ms);
  EXPECT_FALSE(down.ok()) << "the cut node was failed";
  EXPECT_EQ(c.KvdPrimary(), std::make_pair(primary, node));
  ASSERT_EQ(std::system("ip rule del pref 10 && ip rule del pref 11"), 0);
  EXPECT_TRUE(c.WaitFor(
                   "no neighbour suspecting the node",
                   [&] {
                     auto j = Node(c, node);
                     return j && j->contains("ring") && (*j)["ring"]["suspected_by"].empty();
                   },
                   10s)
                  .ok());
  checker.Stop();
  CheckReport rep = checker.Check();
  EXPECT_EQ(rep.lost, 0) << rep.ToString();
  EXPECT_EQ(rep.split_brain, 0) << rep.ToString();
  if (isolated) std::cout << "isolated: " << isolated->value("message", "") << "\n";
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace hafab::e2e
