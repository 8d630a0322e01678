// Integration: the real `hafab controller` and three real `hafab agent` processes on
// loopback, an active-passive role (kvd with its volume), and faults: SIGKILL of the
// primary's whole node, and SIGKILL of the controller right after it records the start of
// each failover step (HAFAB_TEST_CRASH_AT_STEP). Checks: the failover completes, one primary
// runs, the volume is attached to its node only, and every write kvd acknowledged before the
// fault is readable from the new primary.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "controller/controller.h"
#include "core/clock.h"
#include "http/http.h"
#include "provider/local_provider.h"
#include "testing/ports.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/process.h"

namespace hafab::controller {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::ReadFile;
using e2e::Spawn;
using e2e::StopGroup;
using e2e::WaitFor;
using nlohmann::json;
using testing::FreePort;

class ControllerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path().string() + "/hafab-ctl-" + std::to_string(getpid()) + "-" +
           std::to_string(counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/state");
    fs::create_directories(dir_ + "/volumes");
  }

  void TearDown() override {
    for (auto& [n, pid] : agents_) StopGroup(pid, SIGTERM);
    StopGroup(controller_, SIGTERM);
    if (HasFailure()) {
      std::cerr << "--- controller log\n" << ReadFile(dir_ + "/controller.log");
    } else {
      fs::remove_all(dir_);
    }
  }

  void StartController(const std::string& crash_at = "") {
    fs::remove(dir_ + "/state/api.url");
    std::map<std::string, std::string> env;
    if (!crash_at.empty()) env["HAFAB_TEST_CRASH_AT_STEP"] = crash_at;
    if (port_ == 0) port_ = FreePort();
    controller_ = Spawn({HAFAB_BINARY, "controller", "--state-dir", dir_ + "/state", "--listen",
                         "127.0.0.1:" + std::to_string(port_), "--volume-root", dir_ + "/volumes",
                         "--lease-ttl", "1500ms"},
                        dir_ + "/controller.log", env);
    ASSERT_TRUE(WaitFor("api.url", [&] {
      std::string url = ReadFile(dir_ + "/state/api.url");
      while (!url.empty() && url.back() == '\n') url.pop_back();
      url_ = url;
      return !url.empty();
    }));
    token_ = ReadFile(dir_ + "/state/admin.token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
  }

  void StartAgent(const std::string& node, const std::string& fd) {
    fs::create_directories(dir_ + "/nodes/" + node);
    agents_[node] =
        Spawn({HAFAB_BINARY, "agent", "--node", node, "--controller", url_, "--token-file",
               dir_ + "/state/admin.token", "--data-dir", dir_ + "/nodes/" + node, "--volume-root",
               dir_ + "/volumes", "--fault-domain", fd, "--update-domain", fd,
               "--heartbeat-interval", "100ms"},
              dir_ + "/agent-" + node + ".log");
  }

  Result<json> Api(const std::string& method, const std::string& path,
                   const std::string& body = "") {
    auto r = http::Fetch(method, url_ + path, body, {{"Authorization", "Bearer " + token_}}, 2s);
    if (!r.ok()) return r.status();
    if (r->status / 100 != 2) return Status::Internal(path + ": " + r->body);
    return json::parse(r->body, nullptr, false);
  }

  // The running primary of `app` as {instance, node}, when exactly one instance of the
  // role runs and it is the primary, ready, with the volume.
  std::pair<std::string, std::string> SolePrimary() {
    auto st = Api("GET", "/v1/status");
    if (!st.ok()) return {};
    return e2e::SolePrimary(*st, "app", "app-data");
  }

  bool OpsDone() {
    auto ops = Api("GET", "/v1/ops");
    if (!ops.ok()) return false;
    for (const auto& op : (*ops)["operations"]) {
      if (op["state"] == "running") return false;
    }
    return true;
  }

  void StartCluster() {
    StartController();
    StartAgent("n1", "fd1");
    StartAgent("n2", "fd2");
    StartAgent("n3", "fd3");
    ASSERT_TRUE(WaitFor("three nodes up", [&] {
      auto n = Api("GET", "/v1/nodes");
      if (!n.ok()) return false;
      int up = 0;
      for (const auto& x : (*n)["nodes"]) up += x["state"] == "up";
      return up == 3;
    }));
    // kvd binds its port: each test (ctest runs them in parallel) takes its own range,
    // below the kernel's ephemeral ports (32768+), where outgoing connections could hold it.
    const std::string app_port = std::to_string(FreePort());
    std::string manifest = R"(cluster: t
roles:
  - name: app
    mode: active-passive
    command: )" KVD_BINARY R"(
    instances: 3
    port: )" + app_port + R"(
    volume: app-data
    stop_grace: 1s
    probes:
      readiness: {kind: http, path: /health, interval: 100ms, timeout: 500ms}
)";
    auto applied = Api("POST", "/v1/apply?file=t.yaml", manifest);
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    ASSERT_TRUE(WaitFor("a running primary", [&] { return !SolePrimary().first.empty(); }));
  }

  // The port of `instance` as placed by the controller; 0 if unknown.
  int PortOf(const std::string& instance) {
    auto st = Api("GET", "/v1/status");
    if (!st.ok()) return 0;
    for (const auto& i : (*st)["instances"]) {
      if (i["instance"] == instance) return i["port"].get<int>();
    }
    return 0;
  }

  // Writes `n` keys to the primary `instance` directly; returns those kvd acknowledged.
  std::vector<std::string> Write(const std::string& instance, int n) {
    const std::string base = "http://127.0.0.1:" + std::to_string(PortOf(instance)) + "/kv/";
    std::vector<std::string> acked;
    for (int k = 0; k < n; ++k) {
      std::string key = "k" + std::to_string(next_key_++);
      auto r = http::Fetch("PUT", base + key, "v-" + key, {}, 2s);
      if (r.ok() && r->status == 200) acked.push_back(key);
    }
    return acked;
  }

  // Every key in `keys` reads back its value from the primary `instance`.
  void ExpectReadable(const std::string& instance, const std::vector<std::string>& keys) {
    const std::string base = "http://127.0.0.1:" + std::to_string(PortOf(instance)) + "/kv/";
    int missing = 0;
    for (const auto& key : keys) {
      auto r = http::Fetch("GET", base + key, "", {}, 2s);
      if (!r.ok() || r->status != 200 || r->body != "v-" + key) ++missing;
    }
    EXPECT_EQ(missing, 0) << "of " << keys.size() << " acknowledged writes on " << instance;
  }

  std::string AttachedTo() {
    provider::LocalProvider p(dir_ + "/volumes");
    auto d = p.Describe("app-data");
    return d.ok() ? d->node : "?";
  }

  std::string dir_, url_, token_;
  pid_t controller_ = 0;
  int port_ = 0;
  int next_key_ = 0;
  std::map<std::string, pid_t> agents_;
};

TEST_F(ControllerProcessTest, NodeKillFailsOverAndTheNodeRejoinsAsStandby) {
  StartCluster();
  auto [inst, node] = SolePrimary();
  ASSERT_EQ(AttachedTo(), node);
  const auto acked = Write(inst, 20);
  ASSERT_EQ(acked.size(), 20u);
  TimePoint killed = RealClock().Now();
  StopGroup(agents_[node], SIGKILL);  // agent and its instances: the node is gone
  std::pair<std::string, std::string> now;
  ASSERT_TRUE(WaitFor("a new primary", [&] {
    now = SolePrimary();
    return !now.first.empty() && now.second != node;
  }));
  double ms = ToMillis(RealClock().Now() - killed);
  std::cout << "node kill -> new primary running: " << ms << " ms\n";
  EXPECT_EQ(AttachedTo(), now.second);
  ExpectReadable(now.first, acked);
  ASSERT_TRUE(WaitFor("the operation to finish", [&] { return OpsDone(); }));
  // The node comes back: its instance is a stopped standby with the new epoch.
  StartAgent(node, node == "n1" ? "fd1" : node == "n2" ? "fd2" : "fd3");
  ASSERT_TRUE(WaitFor("the old node's standby", [&] {
    auto st = Api("GET", "/v1/status");
    if (!st.ok()) return false;
    for (const auto& i : (*st)["instances"]) {
      if (i["instance"] == inst) {
        return i["state"] == "stopped" && i["primary"] == false && i["epoch"] == 2;
      }
    }
    return false;
  }));
  EXPECT_EQ(SolePrimary().second, now.second);
  EXPECT_EQ(AttachedTo(), now.second);
}

TEST_F(ControllerProcessTest, PlannedSwitchoverToANamedNode) {
  StartCluster();
  auto [inst, node] = SolePrimary();
  std::string to = node == "n3" ? "n2" : "n3";
  TimePoint asked = RealClock().Now();
  auto r = Api("POST", "/v1/roles/app/failover", json{{"to", to}}.dump());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(WaitFor("the switchover", [&] {
    auto p = SolePrimary();
    return OpsDone() && p.second == to;
  }));
  std::cout << "planned switchover: " << ToMillis(RealClock().Now() - asked) << " ms\n";
  EXPECT_EQ(AttachedTo(), to);
  auto op = Api("GET", "/v1/ops/" + (*r)["operation"].get<std::string>());
  ASSERT_TRUE(op.ok());
  EXPECT_EQ((*op)["state"], "done");
  EXPECT_EQ((*op)["planned"], true);
  EXPECT_EQ((*op)["steps"].size(), std::size(kFailoverSteps));
}

// The fault harness in small: the controller is SIGKILLed (_exit 137) right after it
// records the start of each step in turn; the controller started again finishes.
TEST_F(ControllerProcessTest, ControllerKilledAtEveryStepResumes) {
  StartCluster();
  std::vector<std::string> acked;
  for (const char* step : kFailoverSteps) {
    SCOPED_TRACE(step);
    auto [inst, node] = SolePrimary();
    ASSERT_FALSE(inst.empty());
    const auto written = Write(inst, 5);
    ASSERT_EQ(written.size(), 5u);
    acked.insert(acked.end(), written.begin(), written.end());
    StopGroup(controller_, SIGTERM);
    StartController(step);
    auto r = Api("POST", "/v1/roles/app/failover", "{}");
    // The controller may die while answering (at detect, inside the call).
    int status = 0;
    ASSERT_TRUE(WaitFor("the controller to die at " + std::string(step),
                        [&] { return waitpid(controller_, &status, WNOHANG) == controller_; }));
    controller_ = 0;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137) << status;
    StartController();
    ASSERT_TRUE(WaitFor("the failover to finish", [&] {
      auto p = SolePrimary();
      return OpsDone() && !p.first.empty() && p.first != inst;
    }));
    auto p = SolePrimary();
    EXPECT_NE(p.second, node);
    EXPECT_EQ(AttachedTo(), p.second);
    ExpectReadable(p.first, acked);  // every write so far, across all the failovers
  }
}

}  // namespace
}  // namespace hafab::controller
