// ProcessTracker with real processes: both mechanisms find a daemon that left the instance's
// process group and session, and kill it.
#include "agent/process_tracker.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "agent/process_launcher.h"
#include "agent/procfs.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace hafab::agent {
namespace {

bool Alive(pid_t pid) {
  auto st = ReadProcStat(pid);
  return st && st->state != 'Z';
}

// Starts `instance` as the supervisor would: a shell that daemonizes `sleep` (double fork,
// setsid) and waits in the foreground. Returns the main pid.
pid_t StartDaemonizing(ProcessTracker& tracker, const std::string& data_dir,
                       const std::string& instance) {
  LaunchSpec spec;
  spec.argv = {"sh", "-c", "(setsid sleep 3000.91 > /dev/null 2>&1 &); exec sleep 3000.90"};
  spec.env["PATH"] = "/usr/bin:/bin";
  spec.cwd = InstanceDirOf(data_dir, instance);
  spec.env["HAFAB_INSTANCE_DIR"] = spec.cwd;
  std::filesystem::create_directories(spec.cwd);
  Status st = tracker.Prepare(instance, &spec);
  EXPECT_TRUE(st.ok()) << st.ToString();
  auto pid = SpawnProcess(spec);
  EXPECT_TRUE(pid.ok()) << pid.status().ToString();
  return pid.ok() ? *pid : 0;
}

// Waits until `instance` is its main process and a daemon out of its process group (the
// shell in between is gone); returns the daemon's pid, 0 if that does not happen.
pid_t WaitDaemonized(ProcessTracker& tracker, const std::string& instance, pid_t main_pid) {
  pid_t daemon = 0;
  bool ok = testing::WaitFor([&] {
    std::vector<pid_t> members = tracker.Members(instance);
    if (members.size() != 2 || !std::count(members.begin(), members.end(), main_pid)) return false;
    daemon = members[0] == main_pid ? members[1] : members[0];
    auto st = ReadProcStat(daemon);
    return st && st->pgid != main_pid;
  });
  return ok ? daemon : 0;
}

void ExpectFindsAndKillsDaemon(ProcessTracker& tracker, const std::string& data_dir) {
  pid_t main_pid = StartDaemonizing(tracker, data_dir, "dmn-0");
  ASSERT_GT(main_pid, 0);
  pid_t daemon = WaitDaemonized(tracker, "dmn-0", main_pid);
  ASSERT_GT(daemon, 0);
  auto instances = tracker.Instances();
  EXPECT_EQ(instances, std::vector<std::string>{"dmn-0"});
  EXPECT_TRUE(tracker.Members("other-0").empty());

  EXPECT_EQ(tracker.Signal("dmn-0", SIGKILL), 2);
  int status;
  waitpid(main_pid, &status, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return !Alive(daemon); }));
  EXPECT_TRUE(testing::WaitFor([&] { return tracker.Members("dmn-0").empty(); }));
  tracker.Release("dmn-0");

  // KillTracked, as the fence watchdog uses it, without the tracker object.
  main_pid = StartDaemonizing(tracker, data_dir, "dmn-1");
  ASSERT_GT(WaitDaemonized(tracker, "dmn-1", main_pid), 0);
  EXPECT_EQ(KillTracked(tracker.Handle("dmn-1")), 2);
  waitpid(main_pid, &status, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return tracker.Members("dmn-1").empty(); }));
  tracker.Release("dmn-1");
}

TEST(ProcessTrackerTest, EnvironTrackerFindsAndKillsADaemon) {
  testing::TempDir dir;
  EnvironTracker tracker(dir.path());
  ExpectFindsAndKillsDaemon(tracker, dir.path());
}

// An instance that execs itself over and over is found by every scan: in the middle of an
// exec its environment reads empty for an instant (a scan that missed it left a daemon alive
// after a kill).
TEST(ProcessTrackerTest, EnvironTrackerDoesNotMissAProcessInTheMiddleOfAnExec) {
  testing::TempDir dir;
  EnvironTracker tracker(dir.path());
  const std::string script = dir.path() + "/reexec.sh";
  std::ofstream(script) << "[ \"$1\" -gt 0 ] && exec /bin/sh \"$0\" $(($1 - 1))\n"
                           "exec sleep 3000.92\n";
  LaunchSpec spec;
  spec.argv = {"/bin/sh", script, "100000"};
  spec.cwd = InstanceDirOf(dir.path(), "exec-0");
  spec.env["HAFAB_INSTANCE_DIR"] = spec.cwd;
  // Ahead of it, more than the 1 KiB stdio reads of /proc at a time: a read in pieces could
  // end at an exec before reaching it.
  spec.env["AAA_PADDING"] = std::string(16 << 10, 'x');
  std::filesystem::create_directories(spec.cwd);
  ASSERT_TRUE(tracker.Prepare("exec-0", &spec).ok());
  auto pid = SpawnProcess(spec);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();

  // Between the fork and its first exec the child still has the test's environment: counted
  // from when it is the instance.
  ASSERT_TRUE(
      testing::WaitFor([&] { return tracker.Members("exec-0") == std::vector<pid_t>{*pid}; }));
  int scans = 0, misses = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < end) {
    ++scans;
    std::vector<pid_t> members = tracker.Members("exec-0");
    if (members != std::vector<pid_t>{*pid}) {
      ++misses;
      ADD_FAILURE() << "scan " << scans << " found " << members.size() << " processes";
    }
  }
  EXPECT_EQ(tracker.Signal("exec-0", SIGKILL), 1);
  int status;
  waitpid(*pid, &status, 0);
  EXPECT_GT(scans, 20);
  EXPECT_EQ(misses, 0) << "of " << scans << " scans";
}

// What the environ scan uses to tell one program image from the next (ReadEnviron): the
// stack's start, which address-space randomisation moves at every exec.
TEST(ProcessTrackerTest, StackStartChangesAtAnExec) {
  std::ifstream aslr("/proc/sys/kernel/randomize_va_space");
  int randomize = 0;
  if (!(aslr >> randomize) || randomize == 0) GTEST_SKIP() << "address-space randomisation off";
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(go[0], 0);
    close(go[1]);
    execl("/bin/sh", "sh", "-c", "read x; exec sleep 30", nullptr);
    _exit(127);
  }
  close(go[0]);
  auto comm = [&] {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return comm() == "sh"; }));
  const auto shell = ReadProcStat(pid);
  ASSERT_TRUE(shell.has_value());
  EXPECT_NE(shell->start_stack, 0u);
  ASSERT_EQ(write(go[1], "\n", 1), 1);
  ASSERT_TRUE(testing::WaitFor([&] { return comm() == "sleep"; }));
  const auto sleeper = ReadProcStat(pid);
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  close(go[1]);
  ASSERT_TRUE(sleeper.has_value());
  EXPECT_NE(sleeper->start_stack, shell->start_stack);
  EXPECT_EQ(sleeper->start_time, shell->start_time);  // the same process
}

TEST(ProcessTrackerTest, CgroupTrackerFindsAndKillsADaemon) {
  testing::TempDir dir;
  auto tracker = MakeProcessTracker(AgentCgroupName("t", dir.path()), dir.path());
  if (tracker->Mechanism() == "environment") GTEST_SKIP() << "no writable cgroup v2 here";
  ExpectFindsAndKillsDaemon(*tracker, dir.path());
}

TEST(ProcessTrackerTest, CgroupNamesDifferPerDataDir) {
  EXPECT_NE(AgentCgroupName("n1", "/a"), AgentCgroupName("n1", "/b"));
  EXPECT_EQ(AgentCgroupName("n1", "/a"), AgentCgroupName("n1", "/a"));
  EXPECT_EQ(AgentCgroupName("n1", "/a").rfind("hafab-n1-", 0), 0u);
}

}  // namespace
}  // namespace hafab::agent
