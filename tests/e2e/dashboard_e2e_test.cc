// The web dashboard in a real browser: examples/quickstart.yaml under `hafab up`, the link
// `hafab dashboard` prints, and tests/e2e/dashboard/browser.mjs (Playwright, Debian's chromium)
// watching the page while kvd's primary node is killed. Its screenshots stay in
// BUILD/dashboard_screenshots. Skipped, saying why, when chromium, node or playwright-core
// (scripts/setup.sh installs them) is missing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "testing/wait.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kRoot = HAFAB_SOURCE_DIR;
const std::string kScriptDir = kRoot + "/tests/e2e/dashboard";

// The first executable `name` on PATH, or "".
std::string OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t i = 0;
  while (i <= dirs.size()) {
    size_t j = dirs.find(':', i);
    if (j == std::string::npos) j = dirs.size();
    std::string candidate = dirs.substr(i, j - i) + "/" + name;
    if (j > i && access(candidate.c_str(), X_OK) == 0) return candidate;
    i = j + 1;
  }
  return "";
}

TEST(DashboardE2eTest, ShowsTheClusterAndAFailoverLive) {
  const char* chromium_env = std::getenv("HAFAB_CHROMIUM");
  const std::string chromium = chromium_env ? chromium_env : OnPath("chromium");
  if (chromium.empty()) {
    GTEST_SKIP() << "no chromium (apt-get install chromium, or set HAFAB_CHROMIUM): the "
                    "dashboard's browser test did not run";
  }
  const std::string node = OnPath("node");
  ASSERT_FALSE(node.empty()) << "chromium is here but node is not: run scripts/setup.sh";
  ASSERT_TRUE(fs::exists(kScriptDir + "/node_modules/playwright-core"))
      << "chromium is here but playwright-core is not: run scripts/setup.sh (npm ci in "
      << kScriptDir << ")";

  ClusterOptions opts;
  opts.example = kQuickstart;
  opts.revive_after = "60s";  // the killed node stays down while the browser looks
  Cluster cluster(opts);
  ASSERT_TRUE(cluster.Start().ok());

  std::string login;
  ASSERT_EQ(cluster.Hafab({"dashboard", "--no-open", "--state-dir", cluster.state_dir()}, &login),
            0)
      << login;
  while (!login.empty() && (login.back() == '\n' || login.back() == ' ')) login.pop_back();
  ASSERT_NE(login.find("/ui/login?token="), std::string::npos) << login;

  const std::string shots = std::string(HAFAB_BINARY_DIR) + "/dashboard_screenshots";
  fs::remove_all(shots);
  fs::create_directories(shots);
  const std::string log = shots + "/browser.log";
  pid_t pid = Spawn({node, kScriptDir + "/browser.mjs"}, log,
                    {{"LOGIN_URL", login},
                     {"HAFAB_BIN", HAFAB_BIN},
                     {"STATE_DIR", cluster.state_dir()},
                     {"SHOTS", shots},
                     {"CHROMIUM", chromium}},
                    kScriptDir);
  ASSERT_GT(pid, 0);
  int status = 0;
  bool exited =
      testing::WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 180s, 100ms);
  if (!exited) StopGroup(pid, SIGKILL);
  const std::string out = ReadFile(log);
  std::cout << out;
  ASSERT_TRUE(exited) << "browser.mjs did not finish in 180 s";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  for (const char* name : {"1-cluster", "2-node-down", "3-failover", "4-failover-done"}) {
    EXPECT_TRUE(fs::exists(shots + "/" + name + ".png")) << name;
  }
  EXPECT_TRUE(cluster.Stop().ok());
}

}  // namespace
}  // namespace hafab::e2e
