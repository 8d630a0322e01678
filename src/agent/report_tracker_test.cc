#include "agent/report_tracker.h"

#include <gtest/gtest.h>

namespace hafab::agent {
namespace {

wire::AgentHeartbeat Report() {
  wire::AgentHeartbeat hb;
  hb.node = "n1";
  hb.boot_id = "boot";
  hb.address = "10.0.0.1";
  hb.agent_version = "1";
  hb.labels = {{"fault_domain", "fd1"}};
  hb.assignments_generation = 7;
  wire::InstanceReport r;
  r.instance = "web-0";
  r.role = "web";
  r.run = true;
  r.state = wire::InstanceState::kRunning;
  r.pid = 42;
  r.cpu_percent = 10.0;
  r.rss_bytes = 100u << 20;
  hb.instances.push_back(r);
  hb.volumes.push_back({"data", wire::VolumeState::kAttached, "web-0", ""});
  return hb;
}

TEST(SameReportTest, CpuAndRssMayDriftALittleEverythingElseMustMatch) {
  const wire::AgentHeartbeat a = Report();
  wire::AgentHeartbeat b = a;
  b.instances[0].cpu_percent += 0.9;
  b.instances[0].rss_bytes += (1u << 20) - 1;
  b.ring.push_back({"n2", true});  // not part of the report
  EXPECT_TRUE(SameReport(a, b));
  b.instances[0].cpu_percent = a.instances[0].cpu_percent - 1.0;
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.instances[0].rss_bytes -= 1u << 20;
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.instances[0].readiness = wire::Readiness::kReady;
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.instances[0].replica = wire::ReplicaStatus{};
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.volumes[0].state = wire::VolumeState::kDetached;
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.assignments_generation = 8;
  EXPECT_FALSE(SameReport(a, b));
  b = a;
  b.instances.push_back(b.instances[0]);
  EXPECT_FALSE(SameReport(a, b));
}

ReportVersion V(uint64_t supervisor) { return ReportVersion{7, supervisor, 0}; }

TEST(ReportTrackerTest, KeepAlivesOnlyAfterTheSameReportWasAnswered) {
  ReportTracker t(1000);
  wire::AgentHeartbeat first = Report();
  t.Prepare(first, V(1));
  EXPECT_EQ(first.report, 1000u);
  EXPECT_EQ(first.same_as, 0u);
  ASSERT_EQ(first.instances.size(), 1u);

  // Not answered yet (in flight): the same report goes whole again, under a new id.
  wire::AgentHeartbeat second = Report();
  t.Prepare(second, V(2));
  EXPECT_EQ(second.report, 1001u);
  EXPECT_EQ(second.same_as, 0u);

  // The answer to the first, not the last one sent, earns no keep-alive.
  t.Answered(first.report);
  wire::AgentHeartbeat third = Report();
  t.Prepare(third, V(3));
  EXPECT_EQ(third.report, 1002u);
  t.Answered(third.report);

  wire::AgentHeartbeat keepalive = Report();
  keepalive.ring.push_back({"n2", true});
  t.Prepare(keepalive, V(4));
  EXPECT_EQ(keepalive.same_as, 1002u);
  EXPECT_EQ(keepalive.report, 0u);
  EXPECT_TRUE(keepalive.instances.empty());
  EXPECT_TRUE(keepalive.volumes.empty());
  EXPECT_TRUE(keepalive.address.empty());
  EXPECT_EQ(keepalive.ring.size(), 1u);  // the ring's reports go with keep-alives
  EXPECT_EQ(keepalive.node, "n1");
  EXPECT_EQ(keepalive.boot_id, "boot");
  t.Answered(keepalive.report);  // 0: changes nothing

  // A change goes whole; so does the next heartbeat after a refused keep-alive.
  wire::AgentHeartbeat changed = Report();
  changed.instances[0].restarts = 1;
  t.Prepare(changed, V(5));
  EXPECT_EQ(changed.report, 1003u);
  t.Answered(changed.report);
  wire::AgentHeartbeat again = Report();
  again.instances[0].restarts = 1;
  t.Prepare(again, V(6));
  EXPECT_EQ(again.same_as, 1003u);
  t.Refused();
  wire::AgentHeartbeat whole = Report();
  whole.instances[0].restarts = 1;
  t.Prepare(whole, V(7));
  EXPECT_EQ(whole.same_as, 0u);
  EXPECT_EQ(whole.report, 1004u);
  EXPECT_EQ(whole.instances.size(), 1u);
}

// A keep-alive without building the report: only while the caller's version stays where the
// last report answered (or found the same) was built.
TEST(ReportTrackerTest, AKeepAliveNeedsNoReportWhileTheVersionStays) {
  ReportTracker t(1);
  wire::AgentHeartbeat hb;
  EXPECT_FALSE(t.KeepAlive(V(5), hb));  // nothing sent yet
  wire::AgentHeartbeat first = Report();
  t.Prepare(first, V(5));
  EXPECT_FALSE(t.KeepAlive(V(5), hb));  // not answered yet
  t.Answered(first.report);
  EXPECT_FALSE(t.KeepAlive(V(6), hb));  // something may have changed
  ASSERT_TRUE(t.KeepAlive(V(5), hb));
  EXPECT_EQ(hb.same_as, first.report);
  EXPECT_EQ(hb.report, 0u);

  // Version 6 built and found the same: 6 earns keep-alives too, 5 no longer does.
  wire::AgentHeartbeat same = Report();
  t.Prepare(same, V(6));
  EXPECT_EQ(same.same_as, first.report);
  wire::AgentHeartbeat next;
  EXPECT_TRUE(t.KeepAlive(V(6), next));
  EXPECT_FALSE(t.KeepAlive(V(5), next));

  // A refused keep-alive: the next one is built whole, whatever the version.
  t.Refused();
  EXPECT_FALSE(t.KeepAlive(V(6), next));
}

}  // namespace
}  // namespace hafab::agent
