// End-to-end rolling upgrade: `hafab up` with a 6-instance echo role over 3 update domains,
// steady short requests through the gateway; `hafab upgrade` completes with 0 failed
// requests, and an upgrade to a version that exits at start is rolled back automatically,
// also with 0 failed requests. On the quickstart, the drain contract under wrk's keep-alive
// connections: an upgrade of echo and a planned switchover of kvd fail no request.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/e2e/cluster.h"
#include "tests/e2e/load_client.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Instances of echo that run `version` and are ready.
int ReadyAt(Cluster& c, const std::string& version) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return -1;
  int n = 0;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("role", "") == "echo" && i.value("ready", false) && i.value("routed", false) &&
        i.value("version", "") == version) {
      ++n;
    }
  }
  return n;
}

json LastRollout(Cluster& c) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return nullptr;
  for (const auto& op : ops->value("operations", json::array())) {  // newest first
    if (op.value("kind", "") == "rollout") return op;
  }
  return nullptr;
}

void PrintTimeline(const std::string& title, const json& op) {
  std::cout << title << ": " << op.value("id", "") << " " << op.value("state", "")
            << (op.value("rollback", false) ? " (rolled back)" : "") << " in "
            << op.value("finished_ms", int64_t{0}) - op.value("created_ms", int64_t{0}) << "ms\n";
  for (const auto& s : op.value("steps", json::array())) {
    std::cout << "  " << s.value("name", "") << "  " << s.value("duration_ms", int64_t{0}) << "ms  "
              << s.value("note", "") << "\n";
  }
}

// Waits for the 6 echo instances to be ready at version 1, then starts `load` and waits
// for its first 200 answers.
void WaitReadyUnderLoad(Cluster& c, LoadClient& load) {
  Status ready = c.WaitFor(
      "6 echo instances ready", [&] { return ReadyAt(c, "1") == 6; }, 30s);
  ASSERT_TRUE(ready.ok()) << ready.ToString();
  load.Start();
  Status answered = c.WaitFor(
      "200 answers", [&] { return load.ok() >= 200; }, 20s);
  ASSERT_TRUE(answered.ok()) << answered.ToString();
}

TEST(RolloutE2eTest, UpgradeAndBrokenUpgradeUnderLoadFailNoRequest) {
  ClusterOptions o;
  o.nodes = 3;
  o.echo_instances = 6;
  o.echo_extra =
      "    version: \"1\"\n    update: {max_unavailable_domains: 1, ready_timeout: 20s}\n";
  Cluster c(o);
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  LoadClient load(c.echo_url() + "/", 2);
  ASSERT_NO_FATAL_FAILURE(WaitReadyUnderLoad(c, load));

  // 1. A good upgrade.
  std::string out;
  int rc = c.Hafab({"upgrade", "echo", "--set", "version=2", "--set", "env.COLOUR=blue",
                    "--state-dir", c.state_dir()},
                   &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ud1  done"), std::string::npos) << out;
  EXPECT_NE(out.find("rollout op-"), std::string::npos) << out;
  json op = LastRollout(c);
  ASSERT_FALSE(op.is_null());
  EXPECT_EQ(op["state"], "done");
  EXPECT_FALSE(op["rollback"].get<bool>());
  PrintTimeline("upgrade", op);
  EXPECT_TRUE(c.WaitFor(
                   "6 instances ready at version 2", [&] { return ReadyAt(c, "2") == 6; }, 10s)
                  .ok());
  int64_t after_upgrade = load.ok();
  EXPECT_EQ(load.failed(), 0) << "first error: " << (load.errors().empty() ? "" : load.errors()[0]);
  std::cout << "upgrade: " << after_upgrade << " requests answered, " << load.failed()
            << " failed\n";

  // 2. A broken version: exits at start. Rolled back automatically, still no failed request.
  rc = c.Hafab({"upgrade", "echo", "--set", "command=false", "--set", "version=3", "--state-dir",
                c.state_dir()},
               &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("rolling back"), std::string::npos) << out;
  op = LastRollout(c);
  ASSERT_FALSE(op.is_null());
  EXPECT_EQ(op["state"], "done");
  EXPECT_TRUE(op["rollback"].get<bool>());
  EXPECT_NE(op["reason"].get<std::string>().find("failed to start"), std::string::npos)
      << op["reason"];
  PrintTimeline("broken upgrade", op);
  EXPECT_TRUE(
      c.WaitFor(
           "6 instances ready at version 2 again", [&] { return ReadyAt(c, "2") == 6; }, 10s)
          .ok());
  auto roles = c.Api("GET", "/v1/roles");
  ASSERT_TRUE(roles.ok());
  for (const auto& r : (*roles)["roles"]) {
    if (r["name"] == "echo") {
      EXPECT_EQ(r["version"], "2");
    }
  }
  // Keep the load on a little longer: the rolled-back domain serves again.
  int64_t before_tail = load.ok();
  ASSERT_TRUE(c.WaitFor(
                   "200 more answers", [&] { return load.ok() >= before_tail + 200; }, 20s)
                  .ok());
  load.Stop();
  std::cout << "broken upgrade: " << load.ok() - after_upgrade << " requests answered, "
            << load.failed() << " failed in total\n";
  for (const auto& [inst, n] : load.by_instance()) std::cout << "  " << inst << ": " << n << "\n";
  EXPECT_EQ(load.failed(), 0) << "first error: " << (load.errors().empty() ? "" : load.errors()[0]);

  auto events = c.Api("GET", "/v1/events");
  ASSERT_TRUE(events.ok());
  bool rollback_event = false;
  for (const auto& e : (*events)["events"]) rollback_event |= e["type"] == "rollout-rollback";
  EXPECT_TRUE(rollback_event);
  // Neither the upgrade nor the rollback left the role without a routable instance.
  rc = c.Hafab({"sla", "echo", "--window", "1h", "--state-dir", c.state_dir()}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("echo: 100.0000% routable"), std::string::npos) << out;
  EXPECT_NE(out.find(": 0 outages"), std::string::npos) << out;
  std::cout << out;
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

// `wrk -t1 -c8` (keep-alive connections) against `url` until Stop(); output in `out`.
class Wrk {
 public:
  Wrk(const std::string& url, std::string out) : out_(std::move(out)) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("wrk", "wrk", "-t1", "-c8", "-d600s", url.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Wrk() { (void)Stop(); }
  // SIGINT: wrk stops and prints its summary, returned here.
  std::string Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGINT);
      waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
    std::ifstream in(out_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string out_;
  pid_t pid_ = 0;
};

// The gateway's /stats entry for `role`'s endpoint ({} if unavailable).
json GatewayStats(Cluster& c, const std::string& role) {
  std::ifstream in(c.state_dir() + "/gateway.addr");
  std::string addr;
  std::getline(in, addr);
  auto r = http::Fetch("GET", "http://" + addr + "/stats", "", {}, 1s);
  if (!r.ok()) return json::object();
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return json::object();
  for (const auto& e : j.value("endpoints", json::array())) {
    if (e.value("role", "") == role) return e;
  }
  return json::object();
}

// "N requests in" from wrk's summary, -1 if absent.
int64_t WrkRequests(const std::string& summary) {
  size_t at = summary.find(" requests in ");
  if (at == std::string::npos) return -1;
  size_t begin = summary.rfind('\n', at);
  return std::stoll(summary.substr(begin == std::string::npos ? 0 : begin + 1));
}

// Every drain, stop, start and route of a rollout, per wave, in ms (a wave begins at a drain).
std::vector<int64_t> WaveDurations(const json& op) {
  std::vector<int64_t> waves;
  for (const auto& s : op.value("steps", json::array())) {
    if (s.value("name", "").rfind("drain", 0) == 0) waves.push_back(0);
    if (!waves.empty()) waves.back() += s.value("duration_ms", int64_t{0});
  }
  return waves;
}

// Issue 17: the quickstart's echo (3 instances, 3 update domains) upgraded while wrk holds 8
// keep-alive connections through the gateway and a second client opens a connection per
// request. The drain contract hands every connection over: no request fails, and a domain
// does not wait stop_grace for connections a keep-alive client never closes.
TEST(RolloutE2eTest, QuickstartUpgradeUnderKeepAliveLoadFailsNoRequestAndTakesUnder3sADomain) {
  ClusterOptions o;
  o.example = kQuickstart;
  Cluster c(o);
  Status started = c.Start(60s);
  ASSERT_TRUE(started.ok()) << started.ToString();
  ASSERT_TRUE(c.WaitFor(
                   "3 echo instances ready", [&] { return ReadyAt(c, "") == 3; }, 30s)
                  .ok());
  Wrk wrk(c.echo_url() + "/", c.state_dir() + "/../wrk.out");
  LoadClient load(c.echo_url() + "/", 1);  // a connection per request
  load.Start();
  ASSERT_TRUE(c.WaitFor(
                   "100 answers", [&] { return load.ok() >= 100; }, 20s)
                  .ok());
  std::string out;
  int rc = c.Hafab({"upgrade", "echo", "--set", "env.X=2", "--state-dir", c.state_dir()}, &out);
  EXPECT_EQ(rc, 0) << out;
  json op = LastRollout(c);
  ASSERT_FALSE(op.is_null());
  EXPECT_EQ(op["state"], "done");
  EXPECT_FALSE(op["rollback"].get<bool>());
  PrintTimeline("upgrade under wrk -t1 -c8", op);
  std::vector<int64_t> waves = WaveDurations(op);
  EXPECT_EQ(waves.size(), 3u);
  for (int64_t ms : waves) EXPECT_LT(ms, 3000) << "a domain took " << ms << " ms";
  // A little more load on the upgraded instances, then what the clients saw.
  int64_t before = load.ok();
  ASSERT_TRUE(c.WaitFor(
                   "50 more answers", [&] { return load.ok() >= before + 50; }, 20s)
                  .ok());
  load.Stop();
  std::string summary = wrk.Stop();
  std::cout << summary;
  std::cout << "connection per request: " << load.ok() << " answered, " << load.failed()
            << " failed\n";
  EXPECT_GT(WrkRequests(summary), 1000) << summary;
  EXPECT_EQ(summary.find("Socket errors"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("Non-2xx"), std::string::npos) << summary;
  EXPECT_EQ(load.failed(), 0) << "first error: " << (load.errors().empty() ? "" : load.errors()[0]);
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

// A planned switchover of the quickstart's kvd under wrk's 8 keep-alive connections: the old
// primary hands them over (Connection: close after its last answer) instead of the gateway
// cutting them at the epoch change; reconnections wait at the gateway for the new primary.
TEST(RolloutE2eTest, QuickstartPlannedSwitchoverUnderKeepAliveLoadFailsNoRequest) {
  ClusterOptions o;
  o.example = kQuickstart;
  Cluster c(o);
  Status started = c.Start(60s);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto [old_primary, old_node] = c.KvdPrimary();
  Wrk wrk(c.kvd_url() + "/health", c.state_dir() + "/../wrk.out");
  ASSERT_TRUE(c.WaitFor(
                   "wrk's 8 connections through the gateway",
                   [&] { return GatewayStats(c, "kvd").value("active", 0) == 8; }, 10s)
                  .ok());
  std::string out;
  int rc = c.Hafab({"failover", "kvd", "--state-dir", c.state_dir()}, &out);
  EXPECT_EQ(rc, 0) << out;
  std::cout << out;
  auto [new_primary, new_node] = c.KvdPrimary();
  EXPECT_NE(new_primary, old_primary);
  // Traffic on the new primary for a moment, then what wrk saw.
  ASSERT_TRUE(c.WaitFor(
                   "kvd to answer through the gateway",
                   [&] {
                     auto r = http::Fetch("GET", c.kvd_url() + "/health", "", {}, 1s);
                     return r.ok() && r->status == 200;
                   },
                   10s)
                  .ok());
  std::string summary = wrk.Stop();
  std::cout << summary;
  json kvd = GatewayStats(c, "kvd");
  std::cout << "gateway kvd endpoint: " << kvd.dump() << "\n";
  EXPECT_EQ(kvd.value("fenced", -1), 0) << "the gateway cut no connection: kvd handed them over";
  EXPECT_GT(WrkRequests(summary), 100) << summary;
  EXPECT_EQ(summary.find("Socket errors"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("Non-2xx"), std::string::npos) << summary;
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

// The controller process dies (exit 137) right after recording the start of every drain
// step; `hafab up` restarts it and the new controller resumes the rollout at that step.
TEST(RolloutE2eTest, ControllerKilledAtEveryDrainResumesTheRollout) {
  setenv("HAFAB_TEST_CRASH_AT_STEP", "drain", 1);  // inherited by `hafab up`'s controller
  ClusterOptions o;
  o.nodes = 3;
  o.echo_instances = 6;
  o.echo_extra = "    version: \"1\"\n";
  Cluster c(o);
  Status started = c.Start();
  unsetenv("HAFAB_TEST_CRASH_AT_STEP");
  ASSERT_TRUE(started.ok()) << started.ToString();
  LoadClient load(c.echo_url() + "/", 2);
  ASSERT_NO_FATAL_FAILURE(WaitReadyUnderLoad(c, load));
  std::string out;
  // The first crash comes while the upgrade request is answered (the rollout's first step
  // begins inside it): the CLI may see the connection close. The rollout is recorded.
  (void)c.Hafab(
      {"upgrade", "echo", "--set", "version=2", "--no-wait", "--state-dir", c.state_dir()}, &out);
  json op;
  ASSERT_TRUE(c.WaitFor(
                   "the rollout to finish across controller restarts",
                   [&] {
                     op = LastRollout(c);  // null while the controller restarts
                     return !op.is_null() && op["state"] != "running";
                   },
                   90s)
                  .ok());
  EXPECT_EQ(op["state"], "done");
  EXPECT_FALSE(op["rollback"].get<bool>());
  PrintTimeline("upgrade with a controller crash at each drain", op);
  int drains = 0;
  for (const auto& s : op["steps"]) drains += s["name"].get<std::string>().rfind("drain", 0) == 0;
  EXPECT_EQ(drains, 3);  // each resumed, none begun twice
  auto events = c.Api("GET", "/v1/events");
  ASSERT_TRUE(events.ok());
  int resumed = 0;
  for (const auto& e : (*events)["events"]) resumed += e["type"] == "op-resumed";
  EXPECT_EQ(resumed, 3);
  EXPECT_TRUE(c.WaitFor(
                   "6 instances ready at version 2", [&] { return ReadyAt(c, "2") == 6; }, 10s)
                  .ok());
  load.Stop();
  std::cout << "with 3 controller crashes: " << load.ok() << " requests answered, " << load.failed()
            << " failed\n";
  for (const auto& e : load.errors()) std::cout << "  " << e << "\n";
  EXPECT_EQ(load.failed(), 0);
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

}  // namespace
}  // namespace hafab::e2e
