// Unit tests of the agent's pure pieces: lease deadline, heartbeat body, assignment parsing,
// the files the cgroup v2 limiter writes and reads.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/cgroup_limiter.h"
#include "agent/lease.h"
#include "core/json.h"
#include "testing/fake_clock.h"
#include "wire/assignments.h"

namespace hafab::agent {
namespace {

using std::chrono::milliseconds;

TEST(LeaseTrackerTest, DeadlineCountsFromSendTimeNotAnswerTime) {
  testing::FakeClock clock;
  LeaseTracker lease(clock);
  EXPECT_FALSE(lease.Valid());
  EXPECT_FALSE(lease.Expired());  // never held: nothing to fence
  const TimePoint sent = clock.Now();
  clock.Advance(milliseconds(400));  // the answer takes 400ms to come back
  lease.Renewed(sent, milliseconds(1500));
  EXPECT_EQ(lease.deadline(), sent + milliseconds(1500));
  clock.Advance(milliseconds(1099));
  EXPECT_TRUE(lease.Valid());
  clock.Advance(milliseconds(1));  // exactly sent + ttl: the controller's earliest expiry
  EXPECT_FALSE(lease.Valid());
  EXPECT_TRUE(lease.Expired());
}

TEST(LeaseTrackerTest, OutOfOrderAnswersNeverShortenOrStretchWrongly) {
  testing::FakeClock clock;
  LeaseTracker lease(clock);
  const TimePoint t0 = clock.Now();
  lease.Renewed(t0 + milliseconds(200), milliseconds(1500));
  lease.Renewed(t0, milliseconds(1500));  // an older heartbeat's answer arrives late
  EXPECT_EQ(lease.deadline(), t0 + milliseconds(1700));
}

TEST(LeaseTrackerTest, RestoredDeadlineFromPreviousRun) {
  testing::FakeClock clock;
  LeaseTracker lease(clock);
  lease.Restore(clock.Now() - milliseconds(1));
  EXPECT_TRUE(lease.Expired());
  lease.Restore(clock.Now() + milliseconds(500));
  EXPECT_TRUE(lease.Valid());
}

TEST(AssignmentTest, ParsesTheProtocolExample) {
  auto list = wire::ParseAssignments(R"({"generation": 13, "assignments": [
    {"instance": "kvd-0", "role": "kvd", "mode": "active-passive", "run": true, "epoch": 3,
     "command": "/path/kvd", "args": [], "env": {"K": "V"}, "port": 7101,
     "volume": "kvd-data", "spec_hash": "abc", "stop_grace_ms": 5000,
     "probes": {"liveness": {"kind": "tcp", "interval_ms": 200, "timeout_ms": 100,
                             "failure_threshold": 3, "success_threshold": 1,
                             "path": "/", "command": []},
                "readiness": null},
     "restart": {"policy": "always", "max_restarts": 3, "window_ms": 60000,
                 "backoff_initial_ms": 100, "backoff_max_ms": 10000},
     "resources": {"cpu": 0.5, "memory_bytes": 268435456},
     "a_field_from_the_future": 1}]})");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->generation, 13u);
  const wire::Assignment& a = list->assignments.at(0);
  EXPECT_TRUE(a.IsActivePrimary());
  EXPECT_EQ(a.epoch, 3u);
  EXPECT_EQ(a.env.at("K"), "V");
  EXPECT_EQ(a.volume, "kvd-data");
  EXPECT_EQ(a.stop_grace, milliseconds(5000));
  ASSERT_TRUE(a.probes.liveness.has_value());
  EXPECT_EQ(a.probes.liveness->kind, manifest::ProbeKind::kTcp);
  EXPECT_FALSE(a.probes.readiness.has_value());
  EXPECT_EQ(a.restart.backoff_max, milliseconds(10000));
  EXPECT_EQ(a.resources.memory_bytes, 268435456u);
  // It round-trips through the text kept in pid files.
  auto again = wire::ParseAssignment(Dump(wire::ToJson(a)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->spec_hash, "abc");
}

TEST(AssignmentTest, ParsesTheDrainHook) {
  auto list = wire::ParseAssignments(R"({"assignments": [
    {"instance": "x-0", "command": "c",
     "drain": {"command": ["app-ctl", "drain"], "timeout_ms": 3000}},
    {"instance": "y-0", "command": "c"}]})");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_TRUE(list->assignments.at(0).drain.has_value());
  EXPECT_EQ(list->assignments.at(0).drain->command, (std::vector<std::string>{"app-ctl", "drain"}));
  EXPECT_EQ(list->assignments.at(0).drain->timeout, milliseconds(3000));
  EXPECT_FALSE(list->assignments.at(1).drain.has_value());
  auto empty = wire::ParseAssignments(R"({"assignments": [{"instance": "x-0", "command": "c",
                                    "drain": {"command": []}}]})");
  EXPECT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("drain.command"), std::string::npos);
}

TEST(AssignmentTest, RejectsBadInput) {
  EXPECT_EQ(wire::ParseAssignments("{").status().code(), StatusCode::kInvalidArgument);
  auto st = wire::ParseAssignments(R"({"assignments": [{"instance": "x-0", "command": "c",
                                   "probes": {"liveness": {"kind": "udp"}}}]})");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("x-0"), std::string::npos);
  EXPECT_NE(st.status().message().find("udp"), std::string::npos);
  EXPECT_FALSE(wire::ParseAssignments(R"({"assignments": [{"instance": "x-0"}]})").ok());
  EXPECT_FALSE(
      wire::ParseAssignments(R"({"assignments": [{"instance": "../etc", "command": "c"}]})").ok());
}

// cgroup v2 cannot be mounted with its controllers on a machine that runs v1 (this one),
// so its file protocol is checked on a plain directory standing in for the group.
TEST(CgroupV2LimiterTest, WritesLimitsAndSeesOomKillsAfterPrepare) {
  char pattern[] = "/tmp/cgroup_v2_test.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string base = pattern;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  std::filesystem::create_directories(base + "/web-0");
  std::ofstream(base + "/web-0/memory.events") << "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n";
  {
    CgroupV2Limiter limiter(base);
    LaunchSpec spec;
    manifest::Resources r;
    r.cpu = 0.25;
    r.memory_bytes = 64 << 20;
    ASSERT_TRUE(limiter.Prepare("web-0", r, &spec).ok());
    EXPECT_EQ(read(base + "/web-0/memory.max"), std::to_string(64 << 20));
    EXPECT_EQ(read(base + "/web-0/cpu.max"), "25000 100000");
    EXPECT_EQ(spec.cgroup_procs, std::vector<std::string>{base + "/web-0/cgroup.procs"});
    EXPECT_FALSE(limiter.OomKilled("web-0"));  // the kill before Prepare is not this run's
    std::ofstream(base + "/web-0/memory.events") << "max 9\noom 2\noom_kill 2\n";
    EXPECT_TRUE(limiter.OomKilled("web-0"));
    EXPECT_FALSE(limiter.OomKilled("web-0"));  // reported once

    ASSERT_TRUE(limiter.Prepare("api-0", manifest::Resources{}, &spec).ok());
    EXPECT_EQ(read(base + "/api-0/memory.max"), "max");
    EXPECT_EQ(read(base + "/api-0/cpu.max"), "max 100000");
  }
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace hafab::agent
