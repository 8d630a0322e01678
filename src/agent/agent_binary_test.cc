// The `hafab agent` binary itself: flags, SIGTERM, SIGKILL + adoption, and its memory use.
#include <dirent.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/log_writer.h"
#include "agent/process_launcher.h"
#include "agent/procfs.h"
#include "testing/http_fake_agent_controller.h"
#include "testing/ports.h"
#include "testing/read_file.h"
#include "testing/temp_dir.h"
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

// Live processes whose command line contains `token` (a unique sleep argument).
std::vector<pid_t> PidsRunning(const std::string& token) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  while (dirent* e = d != nullptr ? readdir(d) : nullptr) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0 || !Alive(pid)) continue;
    std::string cmdline = testing::ReadWhole("/proc/" + std::to_string(pid) + "/cmdline");
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find(token) != std::string::npos && cmdline.find("sh -c") == std::string::npos) {
      out.push_back(pid);
    }
  }
  if (d != nullptr) closedir(d);
  return out;
}

// An instance that daemonizes a child the way classic daemons do: a subshell forks it and
// exits (double fork), and setsid moves it to a session of its own, out of the instance's
// process group. The instance itself stays in the foreground.
// The one process whose command line holds `token`, once it runs in a session of its own (its
// command line holds the token from `setsid sleep …` on, before setsid has run).
bool DaemonRunning(const std::string& token) {
  std::vector<pid_t> pids = PidsRunning(token);
  if (pids.size() != 1) return false;
  auto stat = ReadProcStat(pids[0]);
  return stat && stat->pgid == pids[0];
}

// An instance of role `instance` up to its '-' running `command` `args`.
wire::Assignment Assignment(const std::string& instance, std::string command,
                            std::vector<std::string> args) {
  wire::Assignment a;
  a.instance = instance;
  a.role = instance.substr(0, instance.find('-'));
  a.command = std::move(command);
  a.args = std::move(args);
  a.spec_hash = "h";
  return a;
}

wire::Assignment Daemonizing(const std::string& instance, const std::string& tag, bool primary) {
  wire::Assignment a = Assignment(
      instance, "sh",
      {"-c", "(setsid sleep 3000." + tag + "1 > /dev/null 2>&1 &); exec sleep 3000." + tag + "0"});
  if (primary) {
    a.mode = manifest::RoleMode::kActivePassive;
    a.run = true;
    a.epoch = 1;
  }
  return a;
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
      // A test that dies without its TearDown still stops its agent: left running, the agent
      // would hold ctest's output pipe and the whole run would wait for it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
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

  testing::TempDir dir_;
  testing::HttpFakeAgentController controller_;
  pid_t agent_pid_ = 0;
};

TEST_F(AgentBinaryTest, TenInstancesSigkillAdoptionAndSigterm) {
  std::vector<wire::Assignment> list;
  for (int i = 0; i < 10; ++i) {
    wire::Assignment& a = list.emplace_back(
        Assignment("s-" + std::to_string(i), "sleep", {"2000." + std::to_string(i)}));
    manifest::Probe& p = a.probes.liveness.emplace();
    p.kind = manifest::ProbeKind::kExec;
    p.command = {"true"};
    p.interval = 200ms;
    p.failover_after = p.DefaultFailoverAfter();
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
  // 10.3 MiB since the binary links OpenSSL for mutual TLS (its libraries' pages); 9.x before.
  EXPECT_LT(rss_kib, 12u * 1024);

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
  controller_.SetLeaseTtl(800ms);
  wire::Assignment primary = Assignment("kvd-0", "sleep", {"2000.31"});
  primary.mode = manifest::RoleMode::kActivePassive;
  primary.epoch = 1;
  controller_.SetAssignments({primary, Assignment("web-0", "sleep", {"2000.32"})});
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

// Every process an instance starts is stopped with it: a daemon that left the instance's
// process group and session (double fork + setsid) dies on a stop, and on a restart after the
// main process exits.
TEST_F(AgentBinaryTest, DaemonizedChildDiesWithItsInstance) {
  controller_.SetAssignments({Daemonizing("dmn-0", "5", false)});
  StartAgent();
  // The main process counts once its shell has exec'd `sleep 3000.50`.
  ASSERT_TRUE(WaitFor([&] {
    return DaemonRunning("3000.51") && RunningPids().size() == 1 &&
           PidsRunning("3000.50").size() == 1;
  }));
  const pid_t daemon = PidsRunning("3000.51")[0];
  auto daemon_stat = ReadProcStat(daemon);
  ASSERT_TRUE(daemon_stat);
  EXPECT_NE(daemon_stat->pgid, RunningPids()[0]);  // out of the instance's process group
  // The main process exits: what it left dies with it before the restart.
  kill(PidsRunning("3000.50")[0], SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !Alive(daemon); })) << "the daemon outlived its instance";
  ASSERT_TRUE(WaitFor([&] { return DaemonRunning("3000.51"); }));  // restarted
  // A stop: no process of the instance is left.
  controller_.SetAssignments({});
  ASSERT_TRUE(WaitFor([&] {
    return PidsRunning("3000.50").empty() && PidsRunning("3000.51").empty();
  })) << "left after the stop: "
      << PidsRunning("3000.5").size();
}

// A self-fence (the lease ran out while the agent runs) kills a primary's daemons too.
TEST_F(AgentBinaryTest, SelfFenceKillsDaemonizedChildOfPrimary) {
  controller_.SetLeaseTtl(800ms);
  controller_.SetAssignments({Daemonizing("dmp-0", "6", true)});
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return DaemonRunning("3000.61"); }));
  controller_.SetSilent(true);
  ASSERT_TRUE(
      WaitFor([&] { return PidsRunning("3000.60").empty() && PidsRunning("3000.61").empty(); }, 5s))
      << "left after the fence: " << PidsRunning("3000.6").size();
  EXPECT_TRUE(Alive(agent_pid_));  // the agent fenced itself; it did not die
}

// After the agent is SIGKILLed, a new agent adopts an instance with what it started (a stop
// then kills both), and kills the daemons of an instance whose main process died meanwhile.
TEST_F(AgentBinaryTest, AgentRestartAdoptsOrKillsDaemonizedChildren) {
  controller_.SetAssignments({Daemonizing("dma-0", "7", false), Daemonizing("dmb-0", "8", false)});
  StartAgent();
  ASSERT_TRUE(WaitFor([&] {
    return DaemonRunning("3000.71") && DaemonRunning("3000.81") &&
           PidsRunning("3000.70").size() == 1 && PidsRunning("3000.80").size() == 1;
  }));
  const pid_t kept_daemon = PidsRunning("3000.71")[0];
  const pid_t orphan = PidsRunning("3000.81")[0];
  kill(agent_pid_, SIGKILL);
  Wait();
  kill(PidsRunning("3000.80")[0], SIGKILL);  // dmb-0's main process dies while no agent runs
  controller_.SetAssignments({Daemonizing("dma-0", "7", false)});
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return !Alive(orphan); })) << "an orphaned daemon survived";
  ASSERT_TRUE(WaitFor([&] { return RunningPids().size() == 1; }));
  EXPECT_TRUE(Alive(kept_daemon));  // adopted with its instance, not restarted
  controller_.SetAssignments({});
  ASSERT_TRUE(
      WaitFor([&] { return PidsRunning("3000.70").empty() && PidsRunning("3000.71").empty(); }));
}

// The uid a live process runs as (/proc/<pid>/status), -1 if it is gone.
long UidOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "Uid:") {
      long uid;
      in >> uid;
      return uid;
    }
    std::getline(in, key);
  }
  return -1;
}

// A user the test creates, removed at the end.
class TestUser {
 public:
  TestUser() : name_("hafabt" + std::to_string(getpid() % 100000)) {
    ok_ =
        std::system(("useradd --no-create-home --shell /usr/sbin/nologin " + name_ + " 2>/dev/null")
                        .c_str()) == 0;
  }
  ~TestUser() {
    if (ok_) (void)!std::system(("userdel " + name_ + " 2>/dev/null").c_str());
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  uid_t uid() const { return getpwnam(name_.c_str())->pw_uid; }

 private:
  std::string name_;
  bool ok_ = false;
};

// user: runs the instance as that account, which owns its directory and log; a user missing
// on the node fails the instance with a clear reason (the controller then moves it).
TEST_F(AgentBinaryTest, InstanceRunsAsItsUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the agent switches users only as root";
  TestUser user;
  ASSERT_TRUE(user.ok()) << "useradd failed";
  wire::Assignment as_user =
      Assignment("usr-0", "sh", {"-c", "echo started as $(id -un); exec sleep 3000.11"});
  as_user.restart.max_restarts = 1000;
  as_user.restart.backoff_max = 300ms;
  as_user.user = user.name();
  wire::Assignment missing = Assignment("nou-0", "sleep", {"3000.12"});
  missing.user = "no-such-user-x";
  controller_.SetAssignments({as_user, missing});
  StartAgent();
  ASSERT_TRUE(WaitFor([&] {
    auto i = controller_.Instance("nou-0");
    return !i.is_null() && i["state"] == "failed";
  }));
  EXPECT_EQ(controller_.Instance("nou-0")["last_exit"],
            "start failed: user 'no-such-user-x' does not exist on this node (node n1)");
  // The test's temporary directory is 0700: the account cannot reach its working directory,
  // and says so.
  ASSERT_TRUE(WaitFor([&] {
    auto i = controller_.Instance("usr-0");
    return !i.is_null() && i["last_exit"].get<std::string>().find(
                               "every parent directory must be searchable") != std::string::npos;
  })) << controller_.Instance("usr-0").dump();
  ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  ASSERT_TRUE(WaitFor([&] { return PidsRunning("3000.11").size() == 1; }, 15s));
  EXPECT_EQ(UidOf(PidsRunning("3000.11")[0]), static_cast<long>(user.uid()));
  struct stat st {};
  ASSERT_EQ(stat((dir_.path() + "/n1/work/usr-0").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, user.uid());
  const std::string log = dir_.path() + "/n1/logs/usr-0.log";
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream in(log);
    std::string text(std::istreambuf_iterator<char>(in), {});
    return text.find("started as " + user.name()) != std::string::npos;
  }));
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, user.uid());
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  controller_.SetAssignments({});
  ASSERT_TRUE(WaitFor([&] { return PidsRunning("3000.11").empty(); }));
}

// Runs `command` (a shell line) with its output through `hafab log-writer` into `path`, as
// the agent does, and waits until the writer has written its last line and exited.
void RunThroughLogWriter(const std::string& command, const std::string& path, uint64_t max_bytes,
                         int keep) {
  LaunchSpec spec;
  spec.argv = {"sh", "-c", command};
  spec.env["PATH"] = "/usr/bin:/bin";
  spec.log_writer_argv = {HAFAB_BINARY, "log-writer",        "--path",
                          path,         "--max-bytes",       std::to_string(max_bytes),
                          "--keep",     std::to_string(keep)};
  auto pid = SpawnProcess(spec);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  int status;
  waitpid(*pid, &status, 0);
  // The writer ends at EOF, once it wrote everything; its last line is then in the log.
  ASSERT_TRUE(WaitFor([&] {
    auto files = LogFilesOldestFirst(path);
    if (files.empty()) return false;
    std::ifstream last(files.back());
    std::string text(std::istreambuf_iterator<char>(last), {});
    return text.size() >= 7 && text.compare(text.size() - 7, 7, "200000\n") == 0;
  }));
}

// The lines of the logs of `path`, oldest first; fails on a file over `max_bytes`.
std::vector<std::string> LogLines(const std::string& path, uint64_t max_bytes) {
  std::vector<std::string> lines;
  for (const std::string& f : LogFilesOldestFirst(path)) {
    EXPECT_LE(std::filesystem::file_size(f), max_bytes) << f;
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  return lines;
}

// Log rotation caps the size without losing or splitting a line, with a fast writer (the
// pipe blocks it rather than dropping output), and `hafab logs` reads across the rotation.
TEST_F(AgentBinaryTest, LogRotationCapsSizeWithoutLosingLines) {
  const std::string logs = dir_.path() + "/nodes/n1/logs";
  std::filesystem::create_directories(logs);
  const uint64_t max_bytes = 64 << 10;
  // 200 000 lines (1.3 MB) kept in full by 30 files of 64 KiB: every line, in order, whole.
  RunThroughLogWriter("seq 1 200000", logs + "/seq-0.log", max_bytes, 30);
  auto lines = LogLines(logs + "/seq-0.log", max_bytes);
  ASSERT_EQ(lines.size(), 200000u);
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i], std::to_string(i + 1)) << "line " << i + 1 << " lost or split";
  }
  EXPECT_GE(LogFilesOldestFirst(logs + "/seq-0.log").size(), 19u);  // 1.3 MB / 64 KiB

  // Two rotated files kept: at most 3 x 64 KiB, the newest lines, contiguous.
  RunThroughLogWriter("seq 1 200000", logs + "/seq-1.log", max_bytes, 2);
  EXPECT_EQ(LogFilesOldestFirst(logs + "/seq-1.log").size(), 3u);
  lines = LogLines(logs + "/seq-1.log", max_bytes);
  ASSERT_GT(lines.size(), 20000u);
  const uint64_t first = std::stoull(lines[0]);
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(lines[i], std::to_string(first + i));
  EXPECT_EQ(lines.back(), "200000");

  // hafab logs --tail reads back through the rotated files.
  const std::string out = dir_.path() + "/logs.out";
  std::string cmd = std::string(HAFAB_BINARY) + " logs seq-0 --tail 150000 --state-dir " +
                    dir_.path() + " > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out);
  std::string line;
  uint64_t expect = 50001;
  while (std::getline(in, line)) {
    ASSERT_EQ(line, "[n1/seq-0] " + std::to_string(expect)) << "hafab logs skipped a line";
    ++expect;
  }
  EXPECT_EQ(expect, 200001u);
}

#ifdef KVD_PATH
// kvd's data follows its volume: written by kvd-0, detached, attached for kvd-1 at a higher
// epoch, read back.
TEST_F(AgentBinaryTest, KvdDataFollowsTheVolume) {
  const int port = FreePort();
  auto kvd = [&](const std::string& instance, uint64_t epoch, bool run, bool volume) {
    wire::Assignment a = Assignment(instance, KVD_PATH, {});
    a.mode = manifest::RoleMode::kActivePassive;
    a.run = run;
    a.epoch = epoch;
    a.port = port;
    a.spec_hash = "k";
    a.env = {{"HAFAB_HOST", "127.0.0.1"}};
    manifest::Probe& live = a.probes.liveness.emplace();
    live.interval = 100ms;
    live.failover_after = live.DefaultFailoverAfter();
    manifest::Probe& ready = a.probes.readiness.emplace();
    ready.kind = manifest::ProbeKind::kHttp;
    ready.path = "/health";
    ready.interval = 100ms;
    ready.failover_after = ready.DefaultFailoverAfter();
    if (volume) a.volume = "kvd-data";
    return a;
  };
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/kv/greeting";
  controller_.SetAssignments({kvd("kvd-0", 1, true, true)});
  StartAgent();
  ASSERT_TRUE(WaitFor([&] {
    auto i = controller_.Instance("kvd-0");
    return !i.is_null() && i["readiness"] == "ready";
  }));
  auto put = http::Fetch("PUT", url, "hello");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_EQ(put->status, 200);
  // Failover, as the controller orders it: stop and detach here...
  controller_.SetAssignments({kvd("kvd-0", 1, false, false)});
  ASSERT_TRUE(WaitFor([&] {
    auto v = controller_.Volume("kvd-data");
    return !v.is_null() && v["state"] == "detached";
  }));
  // ...then attach and start the new primary with the next epoch.
  controller_.SetAssignments({kvd("kvd-1", 2, true, true)});
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
