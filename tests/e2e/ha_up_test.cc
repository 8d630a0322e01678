// End-to-end: `hafab up --ha examples/quickstart.yaml` (three etcd members, three controller
// replicas) with a writer through the gateway. `hafab kill controller` SIGKILLs the leader;
// another replica takes over while the writes go on, none failing and none lost. Ctrl-C
// stops everything, and running the same command again resumes the cluster with its data.
// Prints the measured leader change and the writes around it (bench/RESULTS.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "http/http.h"
#include "tests/e2e/kv_checker.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const std::string kManifest = std::string(HAFAB_SOURCE_DIR) + "/examples/quickstart.yaml";
const std::string kGateway = "http://127.0.0.1:7000";  // kvd's endpoint in the quickstart

bool EtcdInstalled() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t at = 0; at <= dirs.size();) {
    size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    if (access((dirs.substr(at, end - at) + "/etcd").c_str(), X_OK) == 0) return true;
    at = end + 1;
  }
  return false;
}

class HaUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdInstalled()) GTEST_SKIP() << "no etcd on PATH (Debian: etcd-server)";
    char tmpl[] = "/tmp/hafab-ha-up-XXXXXX";
    dir_ = mkdtemp(tmpl);
    state_ = dir_ + "/state";
  }

  void TearDown() override {
    StopGroup(up_, SIGINT, 60s);  // `up` stops what it started, instances included
    for (pid_t p : ProcessesNaming(state_)) kill(p, SIGKILL);
    if (HasFailure()) {
      std::cerr << "--- up log (tail)\n" << Tail(dir_ + "/up.log");
      for (const char* c : {"c1", "c2", "c3"}) {
        std::cerr << "--- controller " << c << " (tail)\n"
                  << Tail(state_ + "/logs/controller-" + c + ".log");
      }
    }
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  static std::string Tail(const std::string& path) {
    std::string s = ReadFile(path);
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  }

  void StartUp() {
    up_ = Spawn({HAFAB_BIN, "up", "--ha", kManifest, "--state-dir", state_, "--no-watch"},
                dir_ + "/up.log");
    ASSERT_GT(up_, 0);
  }

  int Hafab(std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), HAFAB_BIN);
    args.insert(args.end(), {"--state-dir", state_});
    return RunCapture(args, "", out);
  }

  // `hafab status` shows a ready kvd primary and a leading controller replica.
  bool Ready(std::string* status) {
    return Hafab({"status"}, status) == 0 && StatusShowsReadyPrimary(*status, "kvd") &&
           status->find(" leader ") != std::string::npos;
  }

  // {URL, replica id} of the replica that says it leads ({} if none), asking each one. The
  // id is new with every process: a restarted replica that wins again is a new term.
  std::pair<std::string, std::string> Leader() {
    const std::string token = ReadFile(state_ + "/admin.token");
    auto up = json::parse(ReadFile(state_ + "/up.json"), nullptr, false);
    if (!up.is_object()) return {};
    for (const auto& c : up.value("controllers", json::array())) {
      std::string url = c.value("url", "");
      auto r =
          http::Fetch("GET", url + "/v1/leader", "",
                      {{"Authorization", "Bearer " + token.substr(0, token.find('\n'))}}, 500ms);
      if (!r.ok() || r->status != 200) continue;
      auto j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.value("role", "") == "leader") {
        return {url, j.value("self", json::object()).value("id", "")};
      }
    }
    return {};
  }

  // SIGINT to `up`'s process group (Ctrl-C); it exits 0 and leaves no process behind.
  void CtrlC() {
    ASSERT_EQ(kill(-up_, SIGINT), 0);
    int wstatus = 0;
    ASSERT_TRUE(WaitFor(
        "`hafab up --ha` to stop", [&] { return waitpid(up_, &wstatus, WNOHANG) == up_; }, 60s));
    up_ = 0;
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
    EXPECT_TRUE(ProcessesNaming(state_).empty()) << "processes left behind";
  }

  std::string dir_;
  std::string state_;
  pid_t up_ = 0;
};

TEST_F(HaUpTest, LeaderControllerKilledWhileWritesGoOn) {
  StartUp();
  std::string status;
  ASSERT_TRUE(WaitFor(
      "a ready kvd primary and a leader in `hafab status`", [&] { return Ready(&status); }, 180s))
      << status;
  EXPECT_NE(status.find("CONTROLLER"), std::string::npos) << status;

  KvChecker checker(kGateway, 10ms);
  checker.Start();
  ASSERT_TRUE(WaitFor(
      "100 acknowledged writes", [&] { return checker.acked() >= 100; }, 30s));

  const auto [old_url, old_id] = Leader();
  ASSERT_FALSE(old_id.empty());
  std::string out;
  const TimePoint killed = RealClock().Now();
  ASSERT_EQ(Hafab({"kill", "controller"}, &out), 0) << out;
  EXPECT_NE(out.find("the leader at " + old_url), std::string::npos) << out;
  // Another replica, or the killed one restarted by `up` (a new process), wins the election.
  std::string new_leader;
  ASSERT_TRUE(WaitFor("a new leader", [&] {
    auto [url, id] = Leader();
    new_leader = url;
    return !id.empty() && id != old_id;
  }));
  const Duration leader_change = RealClock().Now() - killed;
  // Writes go on through the change and for longer than it took again afterwards.
  const int64_t acked_at_change = checker.acked();
  ASSERT_TRUE(WaitFor("writes after the leader change", [&] {
    return RealClock().Now() >= killed + 2 * leader_change + 3s &&
           checker.acked() > acked_at_change + 100;
  }));
  const TimePoint window_end = RealClock().Now();
  // The killed replica is restarted by `up` and follows; `hafab status` names the leader.
  ASSERT_TRUE(WaitFor("three replicas, one of them leading", [&] {
    std::string s;
    return Hafab({"status"}, &s) == 0 && s.find("unreachable") == std::string::npos &&
           s.find(new_leader + "  leader") != std::string::npos;
  }));
  checker.Stop();

  Duration gap{};
  int64_t in_window = 0;
  std::vector<Ack> acks = checker.AcksSnapshot();
  for (size_t i = 1; i < acks.size(); ++i) {
    if (acks[i].acked < killed || acks[i - 1].acked > window_end) continue;
    ++in_window;
    gap = std::max(gap, acks[i].acked - acks[i - 1].acked);
  }
  CheckReport report = checker.Check();
  std::cout << "leader change (SIGKILL of the leader -> a new leader answers): "
            << ToMillis(leader_change) << " ms; writes through the gateway in the "
            << ToMillis(window_end - killed) << " ms from the kill: " << in_window
            << " acknowledged, longest gap between two " << ToMillis(gap)
            << " ms; checker: " << report.ToString() << "\n";
  EXPECT_EQ(report.failed_requests, 0) << report.ToString();
  EXPECT_EQ(report.lost, 0) << report.ToString();
  EXPECT_EQ(report.split_brain, 0) << report.ToString();
  EXPECT_LT(gap, 1s) << "writes stalled during the leader change";
  CtrlC();

  // Running it again resumes: same etcd data, same ports, the keys written before.
  StartUp();
  ASSERT_TRUE(WaitFor(
      "the cluster to come back", [&] { return Ready(&status); }, 180s))
      << status;
  ASSERT_FALSE(acks.empty());
  auto back = http::Fetch("GET", kGateway + "/kv/k" + std::to_string(acks.back().key), "", {}, 5s);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->status, 200) << back->body;
  CtrlC();
}

}  // namespace
}  // namespace hafab::e2e
