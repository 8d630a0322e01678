// The agent with real processes, against a fake controller on loopback.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <fstream>
#include <thread>

#include "agent/agent.h"
#include "agent/cgroup_limiter.h"
#include "agent/controller_client.h"
#include "agent/fence_watchdog.h"
#include "agent/process_launcher.h"
#include "agent/procfs.h"
#include "core/version.h"
#include "provider/local_provider.h"
#include "testing/fake_clock.h"
#include "testing/fake_control_link.h"
#include "testing/http_fake_agent_controller.h"
#include "testing/ports.h"
#include "testing/read_file.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace hafab::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::FreePort;
using testing::WaitFor;

bool ProcessAlive(pid_t pid) {
  auto st = ReadProcStat(pid);
  return st && st->state != 'Z';
}

// Whether `pid` ignores SIGTERM (SigIgn in /proc/<pid>/status): a shell's `trap '' TERM`
// has run. Until then a SIGTERM still ends the shell at once.
bool IgnoresSigterm(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigIgn:", 0) == 0) {
      return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1;
    }
  }
  return false;
}

// Live processes whose command line contains `marker` (or, with `exact`, is `marker`).
int CountProcesses(const std::string& marker, bool exact = false) {
  int n = 0;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0 || !ProcessAlive(pid)) continue;
    std::string cmd = testing::ReadWhole(std::string("/proc/") + e->d_name + "/cmdline");
    if (exact ? cmd == marker : cmd.find(marker) != std::string::npos) ++n;
  }
  closedir(d);
  return n;
}

// A load-balanced instance running `argv`; `edit` changes what differs from that.
wire::Assignment Assignment(const std::string& instance, std::vector<std::string> argv,
                            const std::function<void(wire::Assignment&)>& edit = nullptr) {
  wire::Assignment a;
  a.instance = instance;
  a.role = instance.substr(0, instance.rfind('-'));
  a.epoch = 1;
  a.command = argv[0];
  a.args = std::vector<std::string>(argv.begin() + 1, argv.end());
  a.spec_hash = "h1";
  a.stop_grace = 2000ms;
  a.restart = {manifest::RestartPolicy::kAlways, 10, 60000ms, 50ms, 500ms};
  if (edit) edit(a);
  return a;
}

// An active-passive primary.
void Primary(wire::Assignment& a) { a.mode = manifest::RoleMode::kActivePassive; }

// One agent on its own io_context thread, as `hafab agent` runs it.
class AgentHarness {
 public:
  AgentHarness(testing::FakeAgentController& controller, const std::string& data_dir,
               const std::string& volume_root, ResourceLimiter* limiter = nullptr)
      : link_(io_, controller), provider_(volume_root) {
    AgentOptions o;
    o.node = "n1";
    o.data_dir = data_dir;
    o.labels = {{"fault_domain", "fd1"}};
    o.heartbeat_interval = 100ms;
    agent_ = std::make_unique<Agent>(io_, RealClock(), launcher_, provider_, limiter, link_, o);
    agent_->Start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~AgentHarness() {
    if (thread_.joinable()) Shutdown();
  }

  // As SIGKILL of the agent: its loop stops, its instances keep running.
  void Kill() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
    agent_.reset();
  }
  // As SIGTERM: stop the instances, detach volumes, return.
  void Shutdown() {
    boost::asio::post(io_, [this] { agent_->Shutdown([this] { io_.stop(); }); });
    thread_.join();
    agent_.reset();
  }

  provider::LocalProvider& provider() { return provider_; }

 private:
  boost::asio::io_context io_;
  testing::FakeControlLink link_;  // the controller in memory, on io_
  ProcessLauncher launcher_;
  provider::LocalProvider provider_;
  std::unique_ptr<Agent> agent_;
  std::thread thread_;
};

class AgentIntegrationTest : public ::testing::Test {
 protected:
  std::string data_dir() { return dir_.path() + "/n1"; }
  std::string volume_root() { return dir_.path() + "/volumes"; }

  // Waits until the last heartbeat shows `instance` with a predicate true; returns it.
  json WaitInstance(const std::string& instance, const std::function<bool(const json&)>& pred,
                    Duration timeout = std::chrono::seconds(10)) {
    json found;
    bool ok = WaitFor(
        [&] {
          found = controller_.Instance(instance);
          return !found.is_null() && pred(found);
        },
        timeout);
    EXPECT_TRUE(ok) << "instance " << instance << " last seen as " << found.dump();
    return found;
  }
  static bool Running(const json& i) { return i["state"] == "running" && i["pid"] != 0; }

  testing::TempDir dir_;
  testing::FakeAgentController controller_;
};

TEST_F(AgentIntegrationTest, StartsReportsStopsAndForgets) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  ASSERT_TRUE(WaitFor([&] { return controller_.heartbeats() > 0; }));
  auto hb = controller_.LastHeartbeat();
  EXPECT_EQ(hb["node"], "n1");
  EXPECT_EQ(hb["labels"]["fault_domain"], "fd1");
  EXPECT_EQ(hb["agent_version"], kVersion);

  const wire::Assignment sleeper = Assignment(
      "sleeper-0", {"sh", "-c", "echo started $HAFAB_INSTANCE $HAFAB_NODE; exec sleep 1000.11"});
  controller_.SetAssignments({sleeper});
  json i = WaitInstance("sleeper-0", Running);
  pid_t pid = i["pid"].get<pid_t>();
  EXPECT_TRUE(ProcessAlive(pid));
  EXPECT_TRUE(WaitFor([&] {
    std::ifstream in(data_dir() + "/logs/sleeper-0.log");
    std::string line;
    std::getline(in, line);
    return line == "started sleeper-0 n1";
  }));
  EXPECT_EQ(controller_.LastHeartbeat()["assignments_generation"], 2);
  // With the list's digest, which its long poll names too (Controller::AdoptGeneration).
  const uint64_t digest = wire::ContentDigest(wire::AssignmentList{2, {sleeper}, {}, {}});
  EXPECT_EQ(controller_.LastHeartbeat()["assignments_digest"], digest);
  EXPECT_TRUE(
      WaitFor([&] { return controller_.LastPoll() == std::pair<uint64_t, uint64_t>(2, digest); }));
  // Unassigned: stopped (SIGTERM) and forgotten.
  controller_.SetAssignments({});
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }));
  ASSERT_TRUE(WaitFor([&] { return controller_.LastHeartbeat()["instances"].empty(); }));
  EXPECT_EQ(CountProcesses("1000.11"), 0);
}

TEST_F(AgentIntegrationTest, SigkilledInstanceIsRestarted) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  controller_.SetAssignments({Assignment("sleeper-0", {"sleep", "1000.12"})});
  pid_t pid = WaitInstance("sleeper-0", Running)["pid"].get<pid_t>();
  kill(pid, SIGKILL);
  json i = WaitInstance("sleeper-0",
                        [&](const json& i) { return Running(i) && i["pid"].get<pid_t>() != pid; });
  EXPECT_EQ(i["restarts"], 1);
  EXPECT_EQ(i["last_exit"], "signal 9 (Killed)");
  EXPECT_EQ(CountProcesses("1000.12"), 1);
}

// An unchanged report goes as keep-alives; a change goes whole at once, and so does the report
// after a controller that does not hold it (restarted) refuses a keep-alive.
TEST_F(AgentIntegrationTest, AnUnchangedReportGoesAsKeepAlives) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  controller_.SetAssignments({Assignment("sleeper-0", {"sleep", "1000.19"})});
  pid_t pid = WaitInstance("sleeper-0", Running)["pid"].get<pid_t>();
  ASSERT_TRUE(WaitFor([&] { return controller_.keepalives() >= 3; }));
  kill(pid, SIGKILL);
  WaitInstance("sleeper-0", [&](const json& i) {
    return Running(i) && i["pid"].get<pid_t>() != pid && i["restarts"] == 1;
  });
  const int before = controller_.keepalives();
  ASSERT_TRUE(WaitFor([&] { return controller_.keepalives() >= before + 3; }));
  EXPECT_EQ(controller_.refused_keepalives(), 0);
  // As a controller that restarted: the next keep-alive is refused, the report goes whole.
  controller_.ForgetReport();
  ASSERT_TRUE(WaitFor([&] { return controller_.refused_keepalives() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return controller_.keepalives() >= before + 6; }));
  EXPECT_EQ(controller_.refused_keepalives(), 1);
  EXPECT_EQ(controller_.Instance("sleeper-0")["restarts"], 1);
}

TEST_F(AgentIntegrationTest, StopEscalatesToSigkillAfterGrace) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  wire::Assignment stubborn = Assignment(
      "stubborn-0", {"sh", "-c", "trap '' TERM; while true; do sleep 0.05; done; : 1000.13"},
      [](wire::Assignment& a) { a.stop_grace = 300ms; });
  controller_.SetAssignments({stubborn});
  pid_t pid = WaitInstance("stubborn-0", Running)["pid"].get<pid_t>();
  ASSERT_TRUE(WaitFor([&] { return IgnoresSigterm(pid); }));
  const TimePoint start = RealClock().Now();
  stubborn.run = false;
  controller_.SetAssignments({stubborn});
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(pid); }));
  EXPECT_GE(RealClock().Now() - start, 300ms);
  json i = WaitInstance("stubborn-0", [](const json& i) { return i["state"] == "stopped"; });
  EXPECT_EQ(i["last_exit"], "signal 9 (Killed)");
  EXPECT_EQ(CountProcesses("1000.13"), 0);  // the whole group is gone
}

// An app that drains on a request of its own (here: a file in its working directory), not on
// SIGTERM (which it ignores until then): the role's drain hook asks for it and waits; SIGTERM
// follows once the hook returns (the app takes SIGTERM again before it says it is drained).
// Both outputs land in the instance's log.
TEST_F(AgentIntegrationTest, DrainHookRunsThenSigterm) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  const std::vector<std::string> app = {
      "sh", "-c",
      "trap '' TERM; echo app up; while [ ! -f drain-requested ]; do sleep 0.02; done; "
      "echo app drained; trap - TERM; touch drained; exec sleep 1000.25"};
  wire::Assignment drainer = Assignment("drainer-0", app, [](wire::Assignment& a) {
    a.drain = manifest::DrainHook{{"sh", "-c",
                                   "echo hook $HAFAB_INSTANCE; touch drain-requested; "
                                   "while [ ! -f drained ]; do sleep 0.02; done"},
                                  5000ms};
    a.stop_grace = 5000ms;
  });
  controller_.SetAssignments({drainer});
  pid_t pid = WaitInstance("drainer-0", Running)["pid"].get<pid_t>();
  ASSERT_TRUE(WaitFor([&] { return IgnoresSigterm(pid); }));
  const TimePoint start = RealClock().Now();
  drainer.run = false;
  controller_.SetAssignments({drainer});
  json i = WaitInstance("drainer-0", [](const json& i) { return i["state"] == "stopped"; });
  EXPECT_LT(RealClock().Now() - start, 4s) << "stopped by SIGTERM, not SIGKILL after the grace";
  EXPECT_EQ(i["last_exit"], "signal 15 (Terminated)");
  EXPECT_EQ(CountProcesses("1000.25"), 0);
  std::ifstream in(data_dir() + "/logs/drainer-0.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines[0], "app up");
  EXPECT_EQ(lines[1], "hafab-agent: drain hook sh starting (assigned as standby)");
  EXPECT_EQ(lines[2], "hook drainer-0");
  EXPECT_EQ(lines[3], "app drained");
  EXPECT_EQ(lines[4].rfind("hafab-agent: drain hook exit 0 after ", 0), 0u) << lines[4];
}

TEST_F(AgentIntegrationTest, HungInstanceCaughtByLiveness) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  int port = FreePort();
  controller_.SetAssignments({Assignment(
      "web-0",
      {"/usr/bin/python3", "-m", "http.server", std::to_string(port), "--bind", "127.0.0.1"},
      [&](wire::Assignment& a) {
        a.port = port;
        manifest::Probe& p = a.probes.liveness.emplace();
        p.kind = manifest::ProbeKind::kHttp;
        p.path = "/";
        p.interval = 100ms;
        p.timeout = 200ms;
        p.failure_threshold = 3;
        p.success_threshold = 1;
        p.failover_after = p.DefaultFailoverAfter();
      })});
  json i = WaitInstance("web-0", [](const json& i) { return Running(i) && i["liveness"] == "ok"; });
  pid_t pid = i["pid"].get<pid_t>();
  kill(pid, SIGSTOP);  // hung: accepts nothing, answers nothing
  i = WaitInstance("web-0", [&](const json& i) {
    return Running(i) && i["pid"].get<pid_t>() != pid && i["liveness"] == "ok";
  });
  EXPECT_EQ(i["restarts"], 1);
  EXPECT_NE(i["last_exit"].get<std::string>().find("liveness failed"), std::string::npos)
      << i.dump();
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST_F(AgentIntegrationTest, ReadinessBusyAndFailedFromExecProbe) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  std::string flag = dir_.path() + "/state";
  std::ofstream(flag) << "75";
  controller_.SetAssignments({Assignment("w-0", {"sleep", "1000.14"}, [&](wire::Assignment& a) {
    manifest::Probe& p = a.probes.readiness.emplace();
    p.kind = manifest::ProbeKind::kExec;
    p.command = {"sh", "-c", "exit $(cat " + flag + ")"};
    p.interval = 50ms;
    p.timeout = 1000ms;
    p.failure_threshold = 2;
    p.success_threshold = 1;
    // Never hung: this test is about what readiness reports. With a failover_after, failed
    // readiness kills the process once it lasts that long (the hang tests), and a slow run
    // (TSan) could see the kill before it reads "failed".
    p.failover_after = Duration::zero();
  })});
  WaitInstance("w-0", [](const json& i) { return i["readiness"] == "busy"; });
  std::ofstream(flag) << "0";
  WaitInstance("w-0", [](const json& i) { return i["readiness"] == "ready"; });
  std::ofstream(flag) << "1";
  json i = WaitInstance("w-0", [](const json& i) { return i["readiness"] == "failed"; });
  EXPECT_EQ(i["restarts"], 0);  // failed readiness alone restarts nothing
}

TEST_F(AgentIntegrationTest, VolumeAttachConflictThenDetachWaitsForHolder) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  ASSERT_TRUE(agent.provider().Attach("kvd-data", "n2", "kvd-1").ok());
  // The holder's marker names this process: a copy of this test running elsewhere at the
  // same time must not be taken for ours.
  // (zero-padded: a marker is never a prefix of another run's).
  const std::string holder = fmt::format("1000.15{:07d}", getpid());
  wire::Assignment kvd = Assignment("kvd-0",
                                    {"sh", "-c",
                                     "echo x > $HAFAB_VOLUME_DIR/f; setsid sleep " + holder +
                                         " >> $HAFAB_VOLUME_DIR/f 2>&1 & exec sleep 1000.16"},
                                    [](wire::Assignment& a) {
                                      Primary(a);
                                      a.volume = "kvd-data";
                                    });
  controller_.SetAssignments({kvd});
  json i = WaitInstance("kvd-0", [](const json& i) {
    return i["state"] == "starting" &&
           i["message"].get<std::string>().find("n2") != std::string::npos;
  });
  EXPECT_NE(controller_.Volume("kvd-data")["error"].get<std::string>().find("kvd-1"),
            std::string::npos);
  ASSERT_TRUE(agent.provider().Detach("kvd-data", "n2").ok());
  WaitInstance("kvd-0", Running);
  EXPECT_EQ(controller_.Volume("kvd-data")["state"], "attached");
  EXPECT_EQ(agent.provider().Describe("kvd-data")->node, "n1");
  // The holder itself, neither the shell whose script names it nor `setsid sleep …` before
  // its exec (whose command line contains the holder's): once the command line is exactly
  // `sleep <holder>`, setsid has made it a session of its own, which stopping the
  // instance's group does not reach.
  const std::string holder_cmdline = std::string("sleep") + '\0' + holder + '\0';
  ASSERT_TRUE(WaitFor([&] { return CountProcesses(holder_cmdline, /*exact=*/true) == 1; }));

  // The volume is taken away: the instance stops, a process of its own session still holds
  // the volume, so the detach waits.
  kvd.volume.clear();
  kvd.run = false;
  controller_.SetAssignments({kvd});
  WaitInstance("kvd-0", [](const json& i) { return i["state"] == "stopped"; });
  ASSERT_TRUE(WaitFor([&] { return controller_.Volume("kvd-data")["state"] == "detaching"; }));
  std::this_thread::sleep_for(300ms);  // give a wrong detach the chance to happen
  EXPECT_EQ(controller_.Volume("kvd-data")["state"], "detaching");
  EXPECT_EQ(agent.provider().Describe("kvd-data")->node, "n1");
  EXPECT_NE(controller_.Volume("kvd-data")["error"].get<std::string>().find("held by"),
            std::string::npos);
  auto holders = ProcessesHolding(agent.provider().MountPath("kvd-data", "n1"));
  ASSERT_EQ(holders.size(), 1u);
  kill(holders[0], SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return controller_.Volume("kvd-data")["state"] == "detached"; }));
  EXPECT_EQ(agent.provider().Describe("kvd-data")->node, "");
}

TEST_F(AgentIntegrationTest, RestartedAgentAdoptsItsInstances) {
  wire::Assignment a = Assignment("sleeper-0", {"sleep", "1000.17"});
  wire::Assignment b = Assignment("other-0", {"sleep", "1000.18"});
  controller_.SetAssignments({a, b});
  pid_t pid_a, pid_b;
  {
    AgentHarness agent(controller_, data_dir(), volume_root());
    pid_a = WaitInstance("sleeper-0", Running)["pid"].get<pid_t>();
    pid_b = WaitInstance("other-0", Running)["pid"].get<pid_t>();
    agent.Kill();
  }
  EXPECT_TRUE(ProcessAlive(pid_a));
  // While no agent ran, other-0's spec changed: the new agent replaces it, adopts sleeper-0.
  b.spec_hash = "h2";
  b.args = {"1000.19"};
  controller_.SetAssignments({a, b});
  AgentHarness agent(controller_, data_dir(), volume_root());
  WaitInstance("other-0", [&](const json& i) { return Running(i) && i["pid"] != pid_b; });
  json i = WaitInstance("sleeper-0", Running);
  EXPECT_EQ(i["pid"].get<pid_t>(), pid_a);
  EXPECT_EQ(CountProcesses("1000.17"), 1);  // never two copies
  EXPECT_EQ(CountProcesses("1000.18"), 0);
  EXPECT_EQ(CountProcesses("1000.19"), 1);
  // The adopted process is still supervised: killed, it is restarted.
  kill(pid_a, SIGKILL);
  WaitInstance("sleeper-0", [&](const json& i) { return Running(i) && i["pid"] != pid_a; });
  EXPECT_EQ(CountProcesses("1000.17"), 1);
}

// A follower's 503 names the leader: the next call goes there, not to the next URL.
TEST(ControllerClientTest, FollowsTheLeaderAFollowerNames) {
  testing::HttpFakeAgentController follower, other, leader;
  follower.SetNotLeader(leader.url());
  other.SetNotLeader(leader.url());
  boost::asio::io_context io;
  ControllerClient client(io, {follower.url(), other.url(), leader.url()}, leader.token());
  std::vector<Status> results;
  std::function<void()> beat = [&] {
    wire::AgentHeartbeat hb;
    hb.node = "n1";
    client.Heartbeat(hb, 1s, [&](Result<wire::HeartbeatAnswer> r) {
      results.push_back(r.status());
      if (results.size() < 2) beat();
    });
  };
  beat();
  io.run_for(5s);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].code(), StatusCode::kUnavailable) << results[0].ToString();
  EXPECT_TRUE(results[1].ok()) << results[1].ToString();
  EXPECT_EQ(client.current_url(), leader.url());
  EXPECT_EQ(other.requests(), 0);
  EXPECT_EQ(leader.heartbeats(), 1);
}

TEST_F(AgentIntegrationTest, SilentControllerFencesPrimaryOnly) {
  controller_.SetLeaseTtl(800ms);
  AgentHarness agent(controller_, data_dir(), volume_root());
  wire::Assignment primary = Assignment("kvd-0", {"sleep", "1000.20"}, [](wire::Assignment& a) {
    Primary(a);
    a.volume = "kvd-data";
    a.epoch = 2;
  });
  controller_.SetAssignments({primary, Assignment("web-0", {"sleep", "1000.21"})});
  pid_t kvd = WaitInstance("kvd-0", Running)["pid"].get<pid_t>();
  pid_t web_pid = WaitInstance("web-0", Running)["pid"].get<pid_t>();
  ASSERT_TRUE(WaitFor([&] { return controller_.Volume("kvd-data")["state"] == "attached"; }));
  // The last heartbeat the controller answers: from here the agent must kill its primary
  // within lease_ttl of when it sent that heartbeat.
  controller_.SetSilent(true);
  const TimePoint silent_at = RealClock().Now();
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(kvd); }, 5s));
  const Duration fenced_after = RealClock().Now() - silent_at;
  std::printf("primary killed %.0fms after the controller went silent (lease_ttl 800ms)\n",
              ToMillis(fenced_after));
  EXPECT_LE(fenced_after, 800ms + 250ms) << ToMillis(fenced_after);
  EXPECT_TRUE(ProcessAlive(web_pid));
  ASSERT_TRUE(WaitFor([&] { return agent.provider().Describe("kvd-data")->node.empty(); }));
  // The controller returns: the agent reports the fence, then restarts the primary only from
  // a fresh assignment list.
  controller_.SetSilent(false);
  ASSERT_TRUE(WaitFor([&] { return !controller_.FenceReports().empty(); }));
  auto fence = controller_.FenceReports()[0];
  EXPECT_EQ(fence["killed"], json::array({"kvd-0"}));
  EXPECT_NE(fence["reason"].get<std::string>().find("lease"), std::string::npos);
  WaitInstance("kvd-0", [&](const json& i) { return Running(i) && i["pid"] != kvd; });
  EXPECT_EQ(CountProcesses("1000.20"), 1);
}

TEST_F(AgentIntegrationTest, AdoptedPrimaryIsFencedWhenLeaseRanOutWhileAgentWasDown) {
  controller_.SetLeaseTtl(600ms);
  controller_.SetAssignments({Assignment("kvd-0", {"sleep", "1000.23"}, Primary),
                              Assignment("web-0", {"sleep", "1000.24"})});
  pid_t kvd, web_pid;
  {
    AgentHarness agent(controller_, data_dir(), volume_root());
    kvd = WaitInstance("kvd-0", Running)["pid"].get<pid_t>();
    web_pid = WaitInstance("web-0", Running)["pid"].get<pid_t>();
    agent.Kill();  // the agent dies; nobody watches the lease now
  }
  controller_.SetSilent(true);
  std::this_thread::sleep_for(700ms);  // past the lease the dead agent held
  ASSERT_TRUE(ProcessAlive(kvd));
  AgentHarness agent(controller_, data_dir(), volume_root());
  // Fenced at once on start, without waiting for the (silent) controller.
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(kvd); }, 2s));
  EXPECT_TRUE(ProcessAlive(web_pid));
  controller_.SetSilent(false);
  WaitInstance("kvd-0", [&](const json& i) { return Running(i) && i["pid"] != kvd; });
  ASSERT_FALSE(controller_.FenceReports().empty());
  EXPECT_EQ(controller_.FenceReports()[0]["killed"], json::array({"kvd-0"}));
}

// A command given as a path relative to the agent's directory runs, though the process starts
// in its own working directory (the manifest's `command: dir/script`).
TEST(ProcessLauncherTest, ARelativeCommandIsFoundFromTheAgentsDirectory) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/bin");
  std::filesystem::create_directories(dir.path() + "/work");
  {
    std::ofstream f(dir.path() + "/bin/hello");
    f << "#!/bin/sh\necho ran in $(pwd)\n";
  }
  ASSERT_EQ(chmod((dir.path() + "/bin/hello").c_str(), 0755), 0);
  const auto before = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  LaunchSpec spec;
  spec.argv = {"bin/hello"};
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  spec.cwd = dir.path() + "/work";
  spec.log_path = dir.path() + "/out";
  auto pid = SpawnProcess(spec);
  std::filesystem::current_path(before);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(testing::ReadWhole(dir.path() + "/out"), "ran in " + dir.path() + "/work\n");
}

TEST(FenceWatchdogTest, KillsOnlyPrimariesAndOnlyAfterTheLease) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/run");
  ProcessLauncher launcher;
  auto spawn = [&](const std::string& name, const std::string& mode) {
    LaunchSpec spec;
    spec.argv = {"sleep", "1000.25"};
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    pid_t pid = *launcher.Start(spec);
    json a{{"instance", name}, {"role", "r"}, {"mode", mode}, {"run", true}, {"command", "sleep"}};
    std::ofstream(dir.path() + "/run/" + name + ".pid") << json{
        {"pid", pid},
        {"start_time", ReadProcStat(pid)->start_time},
        {"assignment", a.dump()}}.dump();
    return pid;
  };
  pid_t primary = spawn("kvd-0", "active-passive");
  pid_t web = spawn("web-0", "load-balanced");
  testing::FakeClock clock;
  const TimePoint deadline = clock.Now() + 1500ms;
  std::ofstream(dir.path() + "/run/lease")
      << std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  WatchdogPass pass = RunWatchdogPass(clock, dir.path());
  EXPECT_EQ(pass.live_primaries, 1);
  EXPECT_EQ(pass.killed, 0);
  clock.Advance(1500ms);
  pass = RunWatchdogPass(clock, dir.path());
  EXPECT_EQ(pass.killed, 1);
  ASSERT_TRUE(WaitFor([&] {
    for (auto& e : launcher.Reap()) {
      if (e.pid == primary) return true;
    }
    return false;
  }));
  EXPECT_TRUE(ProcessAlive(web));
  kill(web, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !launcher.Reap().empty(); }));
}

TEST_F(AgentIntegrationTest, ShutdownStopsInstancesAndDetaches) {
  AgentHarness agent(controller_, data_dir(), volume_root());
  controller_.SetAssignments({Assignment("kvd-0", {"sleep", "1000.22"}, [](wire::Assignment& a) {
    Primary(a);
    a.volume = "v1";
  })});
  pid_t pid = WaitInstance("kvd-0", Running)["pid"].get<pid_t>();
  agent.Shutdown();
  EXPECT_FALSE(ProcessAlive(pid));
  EXPECT_EQ(agent.provider().Describe("v1")->node, "");
}

TEST_F(AgentIntegrationTest, MemoryLimitKillIsReportedAsOom) {
  auto limiter = MakeResourceLimiter("hafab-test-" + std::to_string(getpid()));
  if (limiter->Mechanism() == "rlimit") GTEST_SKIP() << "no writable cgroup on this machine";
  AgentHarness agent(controller_, data_dir(), volume_root(), limiter.get());
  controller_.SetAssignments({Assignment(
      "hog-0",
      {"/usr/bin/python3", "-c",
       "import time\nx = []\nwhile True:\n  x.append(bytearray(8 << 20)); time.sleep(0.01)"},
      [](wire::Assignment& a) {
        a.resources = {0.5, 64 << 20};
        a.restart = manifest::Restart{};
        a.restart.policy = manifest::RestartPolicy::kNever;
      })});
  json i = WaitInstance(
      "hog-0", [](const json& i) { return i["last_exit"] == "oom"; }, 30s);
  EXPECT_EQ(i["state"], "failed");
  EXPECT_EQ(controller_.LastHeartbeat()["resource_limits"], limiter->Mechanism());
}

}  // namespace
}  // namespace hafab::agent
