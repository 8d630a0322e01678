// The README's first command, exactly as a user runs it: `bash scripts/quickstart.sh` from
// the repository root (setup, build, `hafab up examples/quickstart.yaml` with its fixed
// ports and ./.hafab). The cluster comes up as `hafab status` shows it, a key written
// through the gateway reads back, and Ctrl-C (SIGINT to the foreground process group)
// stops everything. ctest runs it alone among the tests that use the quickstart's ports.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>

#include "http/http.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kRoot = HAFAB_SOURCE_DIR;
const std::string kStateDir = kRoot + "/.hafab";
const std::string kGateway = "http://127.0.0.1:7000";  // kvd's endpoint in the quickstart

// Whether `hafab status` (run from the root, as the README says) lists a kvd primary that
// is running and ready.
bool KvdPrimaryReady(std::string* status_out) {
  return RunCapture({kRoot + "/build/hafab", "status"}, kRoot, status_out) == 0 &&
         StatusShowsReadyPrimary(*status_out, "kvd");
}

class QuickstartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(kStateDir)) {
      GTEST_SKIP() << kStateDir << " exists (a quickstart cluster of yours?); this test runs "
                   << "the quickstart on a fresh state directory and removes it afterwards";
    }
    created_state_ = true;
    log_ = ::testing::TempDir() + "quickstart_test.log";
    fs::remove(log_);
  }

  void TearDown() override {
    StopGroup(pid_, SIGINT, 60s);  // `up` stops what it started, instances included
    for (pid_t p : ProcessesNaming(kStateDir)) kill(p, SIGKILL);
    if (created_state_) fs::remove_all(kStateDir);
  }

  std::string Log() const { return ReadFile(log_); }

  bool created_state_ = false;
  std::string log_;
  pid_t pid_ = 0;
};

TEST_F(QuickstartTest, ReadmeFirstCommandBringsUpTheClusterAndCtrlCStopsIt) {
  pid_ = Spawn({"/bin/bash", "scripts/quickstart.sh"}, log_, {}, kRoot);
  ASSERT_GT(pid_, 0);

  std::string status;
  bool gone = false;  // reaped: waitpid answers only once
  auto exited = [&] { return gone || (gone = waitpid(pid_, nullptr, WNOHANG) == pid_); };
  bool ready = testing::WaitFor([&] { return exited() || KvdPrimaryReady(&status); }, 240s, 200ms);
  ASSERT_FALSE(exited()) << "quickstart.sh exited; its output:\n" << Log();
  ASSERT_TRUE(ready) << "no ready kvd primary in `hafab status`:\n"
                     << status << "\nquickstart output:\n"
                     << Log();

  // The gateway learns the route within a poll of the controller: the first write may wait.
  Result<http::Response> put = Status::Unavailable("not tried");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        put = http::Fetch("PUT", kGateway + "/kv/greeting", "hello", {}, 2s);
        return put.ok() && put->status == 200;
      },
      20s, 100ms))
      << (put.ok() ? put->body : put.status().ToString()) << "\n"
      << Log();
  auto get = http::Fetch("GET", kGateway + "/kv/greeting", "", {}, 2s);
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello");

  // Ctrl-C: the terminal signals the foreground process group, which `hafab up` heads.
  ASSERT_EQ(kill(-pid_, SIGINT), 0);
  int wstatus = 0;
  bool stopped =
      testing::WaitFor([&] { return waitpid(pid_, &wstatus, WNOHANG) == pid_; }, 60s, 50ms);
  ASSERT_TRUE(stopped) << "`hafab up` did not stop on SIGINT:\n" << Log();
  pid_ = 0;
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus << "\n" << Log();
  EXPECT_NE(Log().find("up: stopped"), std::string::npos) << Log();
  EXPECT_TRUE(ProcessesNaming(kStateDir).empty()) << "processes left behind\n" << Log();
}

}  // namespace
}  // namespace hafab::e2e
