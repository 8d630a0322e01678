// The agent's /metrics without a cluster: what AgentMetrics renders from what it was told,
// the cgroup files the limiters read usage from, and the MetricsServer on a loopback port.
#include "agent/agent_metrics.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "agent/cgroup_limiter.h"
#include "agent/metrics_server.h"
#include "core/prometheus.h"
#include "http/http.h"

namespace hafab::agent {
namespace {

using std::chrono::milliseconds;

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

InstanceMetrics Kvd(InstanceState state) {
  InstanceMetrics m;
  m.instance = "kvd-1";
  m.role = "kvd";
  m.state = state;
  m.readiness = Readiness::kReady;
  m.liveness = Liveness::kOk;
  m.restarts = 2;
  m.pid = 4242;
  m.group_cpu_ticks = 250;  // 2.5 s at 100 ticks/s
  m.group_rss_bytes = 8 << 20;
  return m;
}

// Usage from fixed numbers, as a cgroup would account them.
class FixedUsageLimiter final : public ResourceLimiter {
 public:
  std::string Mechanism() const override { return "fixed"; }
  Status Prepare(const std::string&, const manifest::Resources&, LaunchSpec*) override {
    return Status::Ok();
  }
  bool OomKilled(const std::string&) override { return false; }
  void Release(const std::string&) override {}
  std::optional<CgroupUsage> Usage(const std::string& instance) const override {
    if (instance != "kvd-1") return std::nullopt;
    return CgroupUsage{1.25, uint64_t{3} << 20};
  }
};

TEST(AgentMetricsTest, RendersStatesRestartsAndProcUsage) {
  AgentMetrics m("n1", nullptr, 100);
  m.SetInstances({Kvd(InstanceState::kRunning)}, /*lease_valid=*/true, /*fenced=*/false);
  const std::string t = m.Render();
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_state{node="n1",instance_id="kvd-1",role="kvd",state="running"} 1)"))
      << t;
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_state{node="n1",instance_id="kvd-1",role="kvd",state="backoff"} 0)"));
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_readiness{node="n1",instance_id="kvd-1",role="kvd",readiness="ready"} 1)"));
  EXPECT_TRUE(
      Has(t, R"(hafab_agent_instance_restarts_total{node="n1",instance_id="kvd-1",role="kvd"} 2)"));
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_cpu_seconds_total{node="n1",instance_id="kvd-1",role="kvd",source="proc"} 2.5)"));
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_memory_bytes{node="n1",instance_id="kvd-1",role="kvd",source="proc"} 8388608)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_lease_valid{node="n1"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_fenced{node="n1"} 0)"));
  EXPECT_TRUE(Has(t, "# TYPE hafab_agent_instance_restarts_total counter"));
}

TEST(AgentMetricsTest, NoUsageForAStoppedOrUnsampledInstance) {
  AgentMetrics m("n1", nullptr, 100);
  InstanceMetrics stopped = Kvd(InstanceState::kStopped);
  stopped.pid = 0;
  InstanceMetrics fresh = Kvd(InstanceState::kRunning);
  fresh.instance = "kvd-2";
  fresh.group_cpu_ticks.reset();  // not sampled yet
  m.SetInstances({stopped, fresh}, true, false);
  const std::string t = m.Render();
  EXPECT_EQ(t.find("hafab_agent_instance_cpu_seconds_total{"), std::string::npos) << t;
  EXPECT_EQ(t.find("hafab_agent_instance_memory_bytes{"), std::string::npos) << t;
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_state{node="n1",instance_id="kvd-1",role="kvd",state="stopped"} 1)"));
}

TEST(AgentMetricsTest, PrefersTheCgroupsAccounting) {
  FixedUsageLimiter limiter;
  AgentMetrics m("n1", &limiter, 100);
  m.SetInstances({Kvd(InstanceState::kRunning)}, true, false);
  const std::string t = m.Render();
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_cpu_seconds_total{node="n1",instance_id="kvd-1",role="kvd",source="cgroup"} 1.25)"))
      << t;
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_instance_memory_bytes{node="n1",instance_id="kvd-1",role="kvd",source="cgroup"} 3145728)"));
  EXPECT_EQ(t.find("source=\"proc\""), std::string::npos);
}

TEST(AgentMetricsTest, CountsProbesHeartbeatsVolumesAndFences) {
  AgentMetrics m("n1", nullptr, 100);
  m.SetInstances({Kvd(InstanceState::kRunning)}, true, false);
  m.RecordProbe("kvd-1", ProbeType::kReadiness, ProbeOutcome::kOk, milliseconds(3));
  m.RecordProbe("kvd-1", ProbeType::kReadiness, ProbeOutcome::kOk, milliseconds(40));
  m.RecordProbe("kvd-1", ProbeType::kReadiness, ProbeOutcome::kFailed, milliseconds(2000));
  m.RecordProbe("kvd-1", ProbeType::kLiveness, ProbeOutcome::kBusy, milliseconds(1));
  m.RecordHeartbeat(true, milliseconds(2));
  m.RecordHeartbeat(false, milliseconds(1000));  // a failure's time is not a round trip
  m.RecordVolumeOp("attach", "ok");
  m.RecordVolumeOp("attach", "ok");
  m.RecordVolumeOp("detach", "force_detached");
  m.RecordSelfFence(2);
  const std::string t = m.Render();
  const std::string probe = R"(node="n1",instance_id="kvd-1",probe="readiness")";
  EXPECT_TRUE(Has(t, R"(hafab_agent_probes_total{)" + probe + R"(,outcome="ok"} 2)")) << t;
  EXPECT_TRUE(Has(t, R"(hafab_agent_probes_total{)" + probe + R"(,outcome="failed"} 1)"));
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_probes_total{node="n1",instance_id="kvd-1",probe="liveness",outcome="busy"} 1)"));
  EXPECT_TRUE(
      Has(t, R"(hafab_agent_probe_duration_seconds_bucket{)" + probe + R"(,le="0.005"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_probe_duration_seconds_bucket{)" + probe + R"(,le="0.05"} 2)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_probe_duration_seconds_bucket{)" + probe + R"(,le="+Inf"} 3)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_probe_duration_seconds_count{)" + probe + R"(} 3)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_heartbeats_total{node="n1",outcome="ok"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_heartbeats_total{node="n1",outcome="failed"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_heartbeat_round_trip_seconds_count{node="n1"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_heartbeat_round_trip_seconds_sum{node="n1"} 0.002)"));
  EXPECT_TRUE(
      Has(t, R"(hafab_agent_volume_operations_total{node="n1",op="attach",outcome="ok"} 2)"));
  EXPECT_TRUE(Has(
      t,
      R"(hafab_agent_volume_operations_total{node="n1",op="detach",outcome="force_detached"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_self_fences_total{node="n1"} 1)"));
  EXPECT_TRUE(Has(t, R"(hafab_agent_fence_kills_total{node="n1"} 2)"));

  // The instance leaves the node: its probe series go with it.
  m.SetInstances({}, true, false);
  const std::string after = m.Render();
  EXPECT_EQ(after.find("kvd-1"), std::string::npos) << after;
  EXPECT_TRUE(Has(after, R"(hafab_agent_heartbeats_total{node="n1",outcome="ok"} 1)"));
}

TEST(AgentMetricsTest, LabelValuesAreEscaped) {
  AgentMetrics m("n\"1\\", nullptr, 100);
  EXPECT_TRUE(Has(m.Render(), R"(hafab_agent_fenced{node="n\"1\\"} 0)")) << m.Render();
}

TEST(CgroupUsageTest, V2ReadsCpuStatAndMemoryCurrentV1MemoryAndCpuacct) {
  char pattern[] = "/tmp/cgroup_usage_test.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string base = pattern;
  std::filesystem::create_directories(base + "/v2/kvd-1");
  std::ofstream(base + "/v2/kvd-1/cpu.stat") << "usage_usec 1500000\nuser_usec 1000000\n";
  std::ofstream(base + "/v2/kvd-1/memory.current") << "4096\n";
  std::filesystem::create_directories(base + "/mem/kvd-1");
  std::filesystem::create_directories(base + "/cpu/kvd-1");
  std::ofstream(base + "/mem/kvd-1/memory.usage_in_bytes") << "8192\n";
  {
    CgroupV2Limiter v2(base + "/v2");
    auto u = v2.Usage("kvd-1");
    ASSERT_TRUE(u.has_value());
    EXPECT_DOUBLE_EQ(u->cpu_seconds.value_or(-1), 1.5);
    EXPECT_EQ(u->memory_bytes.value_or(0), 4096u);
    EXPECT_FALSE(v2.Usage("web-0").has_value());  // no cgroup of it

    CgroupV1Limiter v1(base + "/mem", base + "/cpu");
    u = v1.Usage("kvd-1");
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->memory_bytes.value_or(0), 8192u);
    EXPECT_FALSE(u->cpu_seconds.has_value());  // cpuacct not mounted with cpu
    std::ofstream(base + "/cpu/kvd-1/cpuacct.usage") << "250000000\n";
    u = v1.Usage("kvd-1");
    EXPECT_DOUBLE_EQ(u->cpu_seconds.value_or(-1), 0.25);
  }
  std::filesystem::remove_all(base);
}

TEST(AgentMetricsServerTest, ServesTheExpositionOnItsOwnThread) {
  AgentMetrics m("n1", nullptr, 100);
  m.RecordHeartbeat(true, milliseconds(1));
  MetricsServer server(m);
  auto port = server.Listen("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  const std::string base = "http://127.0.0.1:" + std::to_string(*port);
  // No io_context of the test runs: the server's own thread answers.
  auto r = http::Fetch("GET", base + "/metrics", "", {}, std::chrono::seconds(5));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(Has(r->body, R"(hafab_agent_heartbeats_total{node="n1",outcome="ok"} 1)")) << r->body;
  auto post = http::Fetch("POST", base + "/metrics", "x", {}, std::chrono::seconds(5));
  ASSERT_TRUE(post.ok());
  EXPECT_NE(post->status, 200);
  auto other = http::Fetch("GET", base + "/nope", "", {}, std::chrono::seconds(5));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 404);

  MetricsServer second(m);
  EXPECT_FALSE(second.Listen("127.0.0.1", *port).ok());  // in use: an error, not a crash
}

}  // namespace
}  // namespace hafab::agent
