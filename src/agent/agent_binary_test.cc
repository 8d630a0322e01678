// The `hafab agent` binary itself: flags, SIGTERM, SIGKILL + adoption, and its memory use.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "agent/fake_controller.h"
#include "agent/procfs.h"
#include "agent/test_util.h"
#include "testing/ports.h"
#include "testing/wait.h"

#ifndef HAFAB_BINARY
#error "HAFAB_BINARY must name the hafab executable"
#endif

namespace hafab::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::FreePort;
using testing::WaitFor;

bool Alive(pid_t pid) {
  auto st = ReadProcStat(pid);
  return st && st->state != 'Z';
}

uint64_t VmRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      uint64_t kib;
      in >> kib;
      return kib;
    }
    std::getline(in, key);
  }
  return 0;
}

class AgentBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_.path() + "/token") << controller_.token() << "\n"; }
  void TearDown() override {
    if (agent_pid_ > 0 && Alive(agent_pid_)) {
      kill(agent_pid_, SIGTERM);
      Wait();
    }
    if (HasFailure() || getenv("HAFAB_SHOW_AGENT_LOG") != nullptr) {
      std::ifstream in(dir_.path() + "/agent.log");
      std::printf("--- agent.log ---\n%s\n",
                  std::string(std::istreambuf_iterator<char>(in), {}).c_str());
    }
  }

  void StartAgent() {
    agent_pid_ = fork();
    if (agent_pid_ == 0) {
      std::string data = dir_.path() + "/n1";
      std::string volumes = dir_.path() + "/volumes";
      std::string log = dir_.path() + "/agent.log";
      freopen(log.c_str(), "a", stderr);
      execl(HAFAB_BINARY, HAFAB_BINARY, "agent", "--node", "n1", "--controller",
            ("http://127.0.0.1:1," + controller_.url()).c_str(),  // the first URL is dead
            "--token-file", (dir_.path() + "/token").c_str(), "--data-dir", data.c_str(),
            "--volume-root", volumes.c_str(), "--fault-domain", "fd1", "--update-domain", "ud2",
            "--heartbeat-interval", "100ms", nullptr);
      _exit(127);
    }
  }
  int Wait() {
    int status = 0;
    waitpid(agent_pid_, &status, 0);
    agent_pid_ = 0;
    return status;
  }
  std::vector<pid_t> RunningPids() {
    std::vector<pid_t> out;
    auto hb = controller_.LastHeartbeat();
    if (hb.is_null()) return out;
    for (auto& i : hb["instances"]) {
      if (i["state"] == "running") out.push_back(i["pid"].get<pid_t>());
    }
    return out;
  }

  testutil::TempDir dir_;
  testutil::FakeController controller_;
  pid_t agent_pid_ = 0;
};

TEST_F(AgentBinaryTest, TenInstancesSigkillAdoptionAndSigterm) {
  json list = json::array();
  for (int i = 0; i < 10; ++i) {
    list.push_back(
        {{"instance", "s-" + std::to_string(i)},
         {"role", "s"},
         {"command", "sleep"},
         {"args", {"2000." + std::to_string(i)}},
         {"spec_hash", "h"},
         {"probes",
          {{"liveness", {{"kind", "exec"}, {"command", {"true"}}, {"interval_ms", 200}}}}}});
  }
  controller_.SetAssignments(list);
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return RunningPids().size() == 10; }));
  auto hb = controller_.LastHeartbeat();
  EXPECT_EQ(hb["labels"]["update_domain"], "ud2");
  std::this_thread::sleep_for(1s);  // a second of heartbeats and probes
  uint64_t rss_kib = VmRssKiB(agent_pid_);
  std::printf("agent RSS with 10 instances: %.2f MiB\n", rss_kib / 1024.0);
  RecordProperty("agent_rss_kib", std::to_string(rss_kib));
  EXPECT_LT(rss_kib, 10u * 1024);

  // SIGKILL: instances survive; a new agent adopts them without a second copy.
  std::vector<pid_t> before = RunningPids();
  kill(agent_pid_, SIGKILL);
  Wait();
  for (pid_t p : before) EXPECT_TRUE(Alive(p));
  const int beats = controller_.heartbeats();
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return controller_.heartbeats() > beats + 3; }));
  ASSERT_TRUE(WaitFor([&] { return RunningPids().size() == 10; }));
  auto after = RunningPids();
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(before, after);

  // SIGTERM: instances stopped gracefully, exit 0.
  kill(agent_pid_, SIGTERM);
  int status = Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (pid_t p : after) EXPECT_FALSE(Alive(p));
}

TEST_F(AgentBinaryTest, WatchdogFencesPrimaryOfKilledAgent) {
  controller_.lease_ttl = 800ms;
  json list = json::array({{{"instance", "kvd-0"},
                            {"role", "kvd"},
                            {"mode", "active-passive"},
                            {"run", true},
                            {"epoch", 1},
                            {"command", "sleep"},
                            {"args", {"2000.31"}},
                            {"spec_hash", "h"}},
                           {{"instance", "web-0"},
                            {"role", "web"},
                            {"command", "sleep"},
                            {"args", {"2000.32"}},
                            {"spec_hash", "h"}}});
  controller_.SetAssignments(list);
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return RunningPids().size() == 2; }));
  pid_t kvd = controller_.Instance("kvd-0")["pid"].get<pid_t>();
  pid_t web = controller_.Instance("web-0")["pid"].get<pid_t>();
  // The agent dies and the controller hears nothing more from this node.
  controller_.SetSilent(true);
  const TimePoint silent_at = RealClock().Now();
  kill(agent_pid_, SIGKILL);
  Wait();
  ASSERT_TRUE(WaitFor([&] { return !Alive(kvd); }, 5s));
  const Duration fenced_after = RealClock().Now() - silent_at;
  std::printf("primary killed %.0fms after the controller went silent (lease_ttl 800ms)\n",
              ToMillis(fenced_after));
  EXPECT_LE(fenced_after, 800ms + 250ms) << ToMillis(fenced_after);
  EXPECT_TRUE(Alive(web));  // load-balanced instances are not fenced
  kill(web, SIGKILL);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {  // the watchdog exits: agent gone, no primary left
    std::ifstream in(dir_.path() + "/n1/logs/watchdog.log");
    log.assign(std::istreambuf_iterator<char>(in), {});
    return log.find("exiting") != std::string::npos;
  }));
  EXPECT_NE(log.find("killing primary kvd-0"), std::string::npos) << log;
}

#ifdef KVD_PATH
// kvd's data follows its volume: written by kvd-0, detached, attached for kvd-1 at a higher
// epoch, read back.
TEST_F(AgentBinaryTest, KvdDataFollowsTheVolume) {
  const int port = FreePort();
  auto kvd = [&](const std::string& instance, uint64_t epoch, bool run, bool volume) {
    json a{{"instance", instance},
           {"role", "kvd"},
           {"mode", "active-passive"},
           {"run", run},
           {"epoch", epoch},
           {"command", KVD_PATH},
           {"port", port},
           {"spec_hash", "k"},
           {"env", {{"HAFAB_HOST", "127.0.0.1"}}},
           {"probes",
            {{"liveness", {{"kind", "tcp"}, {"interval_ms", 100}}},
             {"readiness", {{"kind", "http"}, {"path", "/health"}, {"interval_ms", 100}}}}}};
    if (volume) a["volume"] = "kvd-data";
    return a;
  };
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/kv/greeting";
  controller_.SetAssignments(json::array({kvd("kvd-0", 1, true, true)}));
  StartAgent();
  ASSERT_TRUE(WaitFor([&] {
    auto i = controller_.Instance("kvd-0");
    return !i.is_null() && i["readiness"] == "ready";
  }));
  auto put = http::Fetch("PUT", url, "hello");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_EQ(put->status, 200);
  // Failover, as the controller orders it: stop and detach here...
  controller_.SetAssignments(json::array({kvd("kvd-0", 1, false, false)}));
  ASSERT_TRUE(WaitFor([&] {
    auto v = controller_.Volume("kvd-data");
    return !v.is_null() && v["state"] == "detached";
  }));
  // ...then attach and start the new primary with the next epoch.
  controller_.SetAssignments(json::array({kvd("kvd-1", 2, true, true)}));
  ASSERT_TRUE(WaitFor([&] {
    auto i = controller_.Instance("kvd-1");
    return !i.is_null() && i["readiness"] == "ready";
  }));
  auto get = http::Fetch("GET", url);
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello");
  bool epoch_header = false;
  for (const auto& [k, v] : get->headers) {
    if ((k == "X-Hafab-Epoch" || k == "x-hafab-epoch") && v == "2") epoch_header = true;
  }
  EXPECT_TRUE(epoch_header);
}
#endif

TEST_F(AgentBinaryTest, BadFlagsExitWithUsageError) {
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl(HAFAB_BINARY, HAFAB_BINARY, "agent", "--node", "n1", nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace hafab::agent
