// Integration: three `hafab controller` replicas on one real etcd member (started by the
// test on loopback), three real agents, real kvd instances behind a real gateway, and the
// checking client writing through the gateway every 5 ms.
//
// 1. A failover with no leader change (the primary's node is SIGKILLed): the baseline.
// 2. The leader is replaced gracefully (SIGTERM: it resigns), by the replica started with
//    HAFAB_TEST_CRASH_AT_STEP; a third replica joins.
// 3. The primary's node is SIGKILLed again; the leader dies (_exit 137, as SIGKILL) right
//    after recording the start of a middle step of that failover. Another replica is
//    elected when the leader key's lease ends, resumes the journaled operation and
//    finishes it.
// 4. Every replica is SIGKILLed; writes through the gateway go on for the second before the
//    replicas are started again; a leader is elected and writes go on.
// Checks: no acknowledged write is lost, no split brain (KvChecker), one running primary
// with the volume, the operation done under the new leader. Prints the client-seen
// downtime of both failovers and the difference: the added downtime of a leader change.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "http/http.h"
#include "provider/local_provider.h"
#include "store/etcd_test_cluster.h"
#include "testing/ports.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"
#include "tests/e2e/process.h"

namespace hafab {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::ReadFile;
using e2e::Spawn;
using e2e::StopGroup;
using e2e::WaitFor;
using nlohmann::json;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr char kReadToken[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
constexpr char kCrashStep[] = "attach";

void WriteSecret(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0) << path;
  std::string line = text + "\n";
  ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  close(fd);
}

class HaControllersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (store::testing::EtcdTestCluster::FindBinary().empty()) GTEST_SKIP() << "no etcd binary";
    auto etcd = store::testing::EtcdTestCluster::Start({});
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(etcd).value();
    dir_ = fs::temp_directory_path().string() + "/hafab-ha-" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/volumes");
    for (int i = 0; i < 3; ++i) {
      std::string state = dir_ + "/ctl" + std::to_string(i);
      fs::create_directories(state);
      // Every replica has the same tokens (docs/deploy.md: copied to each machine).
      WriteSecret(state + "/admin.token", kToken);
      WriteSecret(state + "/read.token", kReadToken);
      ports_[i] = testing::FreePort();
      urls_.push_back("http://127.0.0.1:" + std::to_string(ports_[i]));
    }
    kv_port_ = testing::FreePort();
  }

  void TearDown() override {
    if (checker_) checker_->Stop();
    StopGroup(gateway_, SIGTERM);
    for (auto& [n, pid] : agents_) StopGroup(pid, SIGTERM);
    for (auto& pid : controllers_) StopGroup(pid, SIGTERM);
    if (HasFailure()) {
      for (int i = 0; i < 3; ++i) {
        std::string log = ReadFile(dir_ + "/ctl" + std::to_string(i) + ".log");
        if (log.size() > 6000) log = log.substr(log.size() - 6000);
        std::cerr << "--- controller " << i << " log (tail)\n" << log;
      }
    } else if (!dir_.empty()) {
      fs::remove_all(dir_);
    }
  }

  std::string ControllerList() const { return urls_[0] + "," + urls_[1] + "," + urls_[2]; }

  void StartController(int i, const std::string& crash_at = "") {
    std::map<std::string, std::string> env;
    if (!crash_at.empty()) env["HAFAB_TEST_CRASH_AT_STEP"] = crash_at;
    controllers_[i] =
        Spawn({HAFAB_BINARY, "controller", "--state-dir", dir_ + "/ctl" + std::to_string(i),
               "--store", etcd_->Url(), "--listen", "127.0.0.1:" + std::to_string(ports_[i]),
               "--advertise", urls_[i], "--volume-root", dir_ + "/volumes", "--lease-ttl", "1500ms",
               "--leader-ttl", "1s"},
              dir_ + "/ctl" + std::to_string(i) + ".log", env);
  }

  void StartAgent(const std::string& node) {
    fs::create_directories(dir_ + "/nodes/" + node);
    agents_[node] =
        Spawn({HAFAB_BINARY, "agent", "--node", node, "--controller", ControllerList(),
               "--token-file", dir_ + "/ctl0/admin.token", "--data-dir", dir_ + "/nodes/" + node,
               "--volume-root", dir_ + "/volumes", "--fault-domain", "fd-" + node,
               "--update-domain", "ud-" + node, "--heartbeat-interval", "100ms"},
              dir_ + "/agent-" + node + ".log");
  }

  void StartGateway() {
    gateway_ = Spawn({HAFAB_BINARY, "gateway", "--id", "gw1", "--controller", ControllerList(),
                      "--token-file", dir_ + "/ctl0/admin.token", "--threads", "1"},
                     dir_ + "/gateway.log");
  }

  Result<json> Get(int i, const std::string& path) {
    auto r = http::Fetch("GET", urls_[i] + path, "",
                         {{"Authorization", std::string("Bearer ") + kToken}}, 2s);
    if (!r.ok()) return r.status();
    if (r->status != 200) return Status::Unavailable(path + ": HTTP " + std::to_string(r->status));
    return json::parse(r->body, nullptr, false);
  }

  // The replica that says it leads (and whom every running replica names), or -1.
  int Leader() {
    int leader = -1;
    for (int i = 0; i < 3; ++i) {
      if (controllers_[i] <= 0) continue;
      auto l = Get(i, "/v1/leader");
      if (!l.ok()) continue;
      if ((*l)["role"] == "leader") {
        if (leader >= 0) {
          ADD_FAILURE() << "replicas " << leader << " and " << i << " both lead";
          return -1;
        }
        leader = i;
      }
    }
    return leader;
  }

  // {instance, node} of the kvd primary when exactly one instance runs, ready, with the
  // volume, as the leader reports it.
  std::pair<std::string, std::string> SolePrimary() {
    int l = Leader();
    if (l < 0) return {};
    auto st = Get(l, "/v1/status");
    if (!st.ok()) return {};
    return e2e::SolePrimary(*st, "kvd", "kvd-data");
  }

  bool OpsDone(int l) {
    auto ops = Get(l, "/v1/ops");
    if (!ops.ok()) return false;
    for (const auto& op : (*ops)["operations"]) {
      if (op["state"] != "done") return false;
    }
    return true;
  }

  std::string AttachedTo() {
    provider::LocalProvider p(dir_ + "/volumes");
    auto d = p.Describe("kvd-data");
    return d.ok() ? d->node : "?";
  }

  // The longest time the client saw no acknowledged write between `from` and `to` (the
  // primary of a killed node keeps serving until its agent's watchdog fences it, so the
  // outage starts some time after the kill).
  Duration LongestGap(TimePoint from, TimePoint to) {
    std::vector<TimePoint> t;
    for (const auto& a : checker_->AcksSnapshot()) t.push_back(a.acked);
    std::sort(t.begin(), t.end());
    Duration gap{};
    for (size_t i = 1; i < t.size(); ++i) {
      if (t[i] >= from && t[i - 1] <= to) gap = std::max(gap, t[i] - t[i - 1]);
    }
    return gap;
  }

  // "op: step duration_ms ..." of the last operation the replica `i` knows.
  std::string Timeline(int i) {
    auto ops = Get(i, "/v1/ops");
    if (!ops.ok() || (*ops)["operations"].empty()) return "?";
    json op;  // the most recently started (ids do not sort as numbers)
    for (const auto& o : (*ops)["operations"]) {
      if (op.is_null() || (!o["steps"].empty() && !op["steps"].empty() &&
                           o["steps"][0]["started_ms"] > op["steps"][0]["started_ms"])) {
        op = o;
      }
    }
    std::string out = op["id"].get<std::string>() + ":";
    for (const auto& st : op["steps"]) {
      out += " " + st["step"].get<std::string>() + " " + st["duration_ms"].dump() + "ms";
    }
    return out;
  }

  // SIGKILLs the primary's node (its agent and instances) and returns it.
  std::string KillPrimaryNode(TimePoint* killed) {
    auto [inst, node] = SolePrimary();
    EXPECT_FALSE(node.empty());
    *killed = RealClock().Now();
    StopGroup(agents_[node], SIGKILL);
    return node;
  }

  std::unique_ptr<store::testing::EtcdTestCluster> etcd_;
  std::string dir_;
  int ports_[3] = {0, 0, 0};
  std::vector<std::string> urls_;
  int kv_port_ = 0;
  pid_t controllers_[3] = {0, 0, 0};
  std::map<std::string, pid_t> agents_;
  pid_t gateway_ = 0;
  std::unique_ptr<e2e::KvChecker> checker_;
};

TEST_F(HaControllersTest, LeaderKilledInTheMiddleOfAFailover) {
  // Replica 0 leads; replica 1 (which will crash at kCrashStep when it leads) follows.
  StartController(0);
  ASSERT_TRUE(WaitFor("replica 0 to lead", [&] { return Leader() == 0; }));
  StartController(1, kCrashStep);
  ASSERT_TRUE(WaitFor("replica 1 to follow", [&] {
    auto l = Get(1, "/v1/leader");
    return l.ok() && (*l)["role"] == "follower" && (*l)["leader"]["url"] == urls_[0];
  }));
  for (const char* n : {"n1", "n2", "n3"}) StartAgent(n);
  StartGateway();
  // kvd binds its port: not a fixed one (ctest runs tests in parallel), and below the
  // kernel's ephemeral range, where outgoing connections could hold it.
  const std::string app_port = std::to_string(testing::FreePort());
  std::string manifest = R"(cluster: ha
roles:
  - name: kvd
    mode: active-passive
    command: )" KVD_BINARY R"(
    instances: 3
    port: )" + app_port + R"(
    volume: kvd-data
    stop_grace: 1s
    endpoint: {listen: 127.0.0.1:)" +
                         std::to_string(kv_port_) + R"(, allow: [127.0.0.0/8]}
    probes:
      readiness: {kind: http, path: /health, interval: 100ms, timeout: 500ms}
)";
  // Writes go to the leader; a follower refuses them and names the leader.
  auto refused = http::Fetch("POST", urls_[1] + "/v1/apply?file=ha.yaml", manifest,
                             {{"Authorization", std::string("Bearer ") + kToken}}, 5s);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(json::parse(refused->body)["leader"], urls_[0]);
  auto applied = http::Fetch("POST", urls_[0] + "/v1/apply?file=ha.yaml", manifest,
                             {{"Authorization", std::string("Bearer ") + kToken}}, 5s);
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ(applied->status, 200) << applied->body;
  ASSERT_TRUE(WaitFor("a running primary", [&] { return !SolePrimary().first.empty(); }));
  // A follower serves reads from the store.
  auto roles = Get(1, "/v1/roles");
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ((*roles)["roles"][0]["name"], "kvd");

  checker_ = std::make_unique<e2e::KvChecker>("http://127.0.0.1:" + std::to_string(kv_port_), 5ms);
  checker_->Start();
  ASSERT_TRUE(WaitFor("writes through the gateway", [&] { return checker_->acked() >= 50; }));

  // 1. Baseline: a failover under a leader that stays.
  TimePoint killed;
  std::string node = KillPrimaryNode(&killed);
  ASSERT_TRUE(WaitFor("the baseline failover", [&] {
    auto p = SolePrimary();
    return !p.first.empty() && p.second != node && OpsDone(0);
  }));
  int64_t acked = checker_->acked();
  ASSERT_TRUE(WaitFor("writes after the failover", [&] { return checker_->acked() > acked + 50; }));
  Duration baseline = LongestGap(killed, RealClock().Now());
  std::cout << "baseline failover " << Timeline(0) << "\n";
  StartAgent(node);  // the node comes back as a standby
  ASSERT_TRUE(WaitFor("three kvd instances again", [&] {
    int l = Leader();
    auto st = l < 0 ? Result<json>(Status::Unavailable("no leader")) : Get(l, "/v1/status");
    if (!st.ok()) return false;
    int stopped = 0;
    for (const auto& i : (*st)["instances"])
      stopped += i["role"] == "kvd" && i["state"] == "stopped";
    return stopped == 2;
  }));

  // 2. Graceful handover to replica 1; replica 2 joins and replica 0 comes back as followers.
  TimePoint handover = RealClock().Now();
  StopGroup(controllers_[0], SIGTERM);
  ASSERT_TRUE(WaitFor("replica 1 to lead", [&] { return Leader() == 1; }));
  std::cout << "graceful handover (SIGTERM of the leader -> new leader answers): "
            << ToMillis(RealClock().Now() - handover) << " ms\n";
  StartController(2);
  StartController(0);
  ASSERT_TRUE(WaitFor("three replicas, one leader", [&] {
    int followers = 0;
    for (int i : {0, 2}) {
      auto l = Get(i, "/v1/leader");
      followers += l.ok() && (*l)["role"] == "follower" && (*l)["leader"]["url"] == urls_[1];
    }
    return followers == 2 && Leader() == 1;
  }));
  acked = checker_->acked();
  ASSERT_TRUE(
      WaitFor("writes under the new leader", [&] { return checker_->acked() > acked + 50; }));

  // 3. A failover during which the leader dies.
  auto [old_inst, old_node] = SolePrimary();
  ASSERT_FALSE(old_inst.empty());
  node = KillPrimaryNode(&killed);
  int status = 0;
  ASSERT_TRUE(WaitFor("the leader to die at step " + std::string(kCrashStep), [&] {
    return waitpid(controllers_[1], &status, WNOHANG) == controllers_[1];
  }));
  controllers_[1] = 0;
  TimePoint leader_died = RealClock().Now();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137) << status;
  int next = -1;
  ASSERT_TRUE(WaitFor("a new leader", [&] { return (next = Leader()) >= 0; }));
  std::cout << "leader crash -> new leader answers: " << ToMillis(RealClock().Now() - leader_died)
            << " ms\n";
  ASSERT_TRUE(WaitFor("the new leader to finish the failover", [&] {
    auto p = SolePrimary();
    return !p.first.empty() && p.second != node && OpsDone(next);
  }));
  acked = checker_->acked();
  ASSERT_TRUE(WaitFor("writes after the failover", [&] { return checker_->acked() > acked + 50; }));
  Duration with_crash = LongestGap(killed, RealClock().Now());
  std::cout << "failover finished by the new leader " << Timeline(next) << "\n";
  auto p = SolePrimary();
  EXPECT_EQ(AttachedTo(), p.second);

  // The operation was resumed by the new leader, at the step the old one had begun.
  bool resumed = false;
  auto events = Get(next, "/v1/events?after=0");
  ASSERT_TRUE(events.ok());
  for (const auto& e : (*events)["events"]) {
    resumed |= e["type"] == "op-resumed" &&
               e["message"].get<std::string>().find(std::string("at step ") + kCrashStep) !=
                   std::string::npos;
  }
  EXPECT_TRUE(resumed) << events->dump(1);

  // 4. No controller at all: agents keep their instances and the gateway its routes, so
  //    writes are still acknowledged (until the leases end); then the replicas come back,
  //    one of them leads, and agents and gateway catch up with it.
  for (auto& pid : controllers_) StopGroup(pid, SIGKILL);
  TimePoint all_dead = RealClock().Now();
  ASSERT_TRUE(
      WaitFor("1 s without any controller", [&] { return RealClock().Now() - all_dead >= 1s; }));
  int64_t acked_without_controller = 0;
  for (const auto& a : checker_->AcksSnapshot()) {
    acked_without_controller += a.acked > all_dead + 100ms && a.acked <= all_dead + 1s;
  }
  std::cout << "writes acknowledged through the gateway while no controller ran (0.1-1 s): "
            << acked_without_controller << "\n";
  EXPECT_GT(acked_without_controller, 20) << "the data path depended on the controllers";
  for (int i = 0; i < 3; ++i) StartController(i);
  ASSERT_TRUE(WaitFor("a leader again", [&] { return (next = Leader()) >= 0; }));
  acked = checker_->acked();
  ASSERT_TRUE(WaitFor("writes under the restarted replicas", [&] {
    return checker_->acked() > acked + 50 && !SolePrimary().first.empty();
  }));
  std::cout << "no controller for " << ToMillis(RealClock().Now() - all_dead)
            << " ms in all; longest client-seen gap from then on "
            << ToMillis(LongestGap(all_dead, RealClock().Now())) << " ms\n";

  checker_->Stop();
  e2e::CheckReport report = checker_->Check();
  std::cout << "checker: " << report.ToString() << "\n";
  EXPECT_EQ(report.lost, 0);
  EXPECT_EQ(report.split_brain, 0);
  EXPECT_GT(report.acked, 300);
  std::cout << "client-seen downtime: failover " << ToMillis(baseline)
            << " ms; failover with the leader killed at step " << kCrashStep << " "
            << ToMillis(with_crash) << " ms; added by the leader change "
            << ToMillis(with_crash - baseline) << " ms\n";
}

}  // namespace
}  // namespace hafab
