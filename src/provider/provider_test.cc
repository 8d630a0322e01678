#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "provider/exec_provider.h"
#include "provider/local_provider.h"
#include "testing/temp_dir.h"

namespace hafab::provider {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

TEST(LocalProviderTest, AttachCreatesVolumeAndIsIdempotent) {
  TempDir dir;
  LocalProvider p(dir.path());
  EXPECT_EQ(p.Describe("kvd-data").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(p.Attach("kvd-data", "n1", "kvd-0").ok());
  EXPECT_TRUE(fs::is_directory(p.MountPath("kvd-data", "n1")));
  EXPECT_TRUE(p.Attach("kvd-data", "n1", "kvd-0").ok());
  auto d = p.Describe("kvd-data");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->node, "n1");
  EXPECT_EQ(d->instance, "kvd-0");
}

TEST(LocalProviderTest, AttachElsewhereIsConflictNamingHolder) {
  TempDir dir;
  LocalProvider p(dir.path());
  ASSERT_TRUE(p.Attach("v", "n1", "kvd-0").ok());
  Status st = p.Attach("v", "n2", "kvd-1");
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_NE(st.message().find("n1"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("kvd-0"), std::string::npos) << st.message();
}

TEST(LocalProviderTest, DetachOnlyByHolder) {
  TempDir dir;
  LocalProvider p(dir.path());
  ASSERT_TRUE(p.Attach("v", "n1", "kvd-0").ok());
  ASSERT_TRUE(p.Detach("v", "n2").ok());  // not attached there: a no-op
  EXPECT_EQ(p.Describe("v")->node, "n1");
  ASSERT_TRUE(p.Detach("v", "n1").ok());
  EXPECT_EQ(p.Describe("v")->node, "");
  ASSERT_TRUE(p.Detach("v", "n1").ok());  // idempotent
  ASSERT_TRUE(p.Attach("v", "n2", "kvd-1").ok());
  ASSERT_TRUE(p.ForceDetach("v", "n1").ok());  // names another node: keeps n2's record
  EXPECT_EQ(p.Describe("v")->node, "n2");
  ASSERT_TRUE(p.ForceDetach("v", "n2").ok());
  EXPECT_EQ(p.Describe("v")->node, "");
}

TEST(LocalProviderTest, DataSurvivesDetachAndMoves) {
  TempDir dir;
  LocalProvider p(dir.path());
  ASSERT_TRUE(p.Attach("v", "n1", "a").ok());
  std::ofstream(p.MountPath("v", "n1") + "/file") << "hello";
  ASSERT_TRUE(p.Detach("v", "n1").ok());
  ASSERT_TRUE(p.Attach("v", "n2", "b").ok());
  std::ifstream in(p.MountPath("v", "n2") + "/file");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "hello");
}

TEST(LocalProviderTest, RejectsBadNames) {
  TempDir dir;
  LocalProvider p(dir.path());
  EXPECT_EQ(p.Attach("../x", "n1", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.Attach("..", "n1", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.Attach("", "n1", "a").code(), StatusCode::kInvalidArgument);
}

TEST(LocalProviderTest, ConcurrentAttachesExactlyOneWins) {
  TempDir dir;
  for (int round = 0; round < 20; ++round) {
    std::string vol = "v" + std::to_string(round);
    std::atomic<int> wins{0}, conflicts{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        LocalProvider p(dir.path());  // separate instances, as separate agents would be
        Status st = p.Attach(vol, "n" + std::to_string(i), "inst");
        if (st.ok()) ++wins;
        if (st.code() == StatusCode::kConflict) ++conflicts;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(conflicts.load(), 7);
  }
}

TEST(LocalProviderTest, ConcurrentAttachesFromProcessesExactlyOneWins) {
  TempDir dir;
  std::vector<pid_t> pids;
  for (int i = 0; i < 6; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      LocalProvider p(dir.path());
      _exit(p.Attach("shared", "n" + std::to_string(i), "inst").ok() ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int wins = 0;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    wins += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  EXPECT_EQ(wins, 1);
}

std::string WriteScript(const std::string& dir, const std::string& name, const std::string& body) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  chmod(path.c_str(), 0755);
  return path;
}

ExecProviderConfig BaseConfig(const TempDir& dir) {
  ExecProviderConfig c;
  c.attach = WriteScript(dir.path(), "attach", "echo \"$1 $2 $3\" >> " + dir.path() + "/calls");
  c.detach = WriteScript(dir.path(), "detach",
                         "echo \"detach $1 $2 $HAFAB_FORCE\" >> " + dir.path() + "/calls");
  c.describe = WriteScript(dir.path(), "describe", "[ \"$1\" = none ] && exit 2; echo n1 kvd-0");
  c.retries = 2;
  c.retry_delay = std::chrono::milliseconds(1);
  c.timeout = std::chrono::seconds(5);
  return c;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ExecProviderTest, PassesArgumentsAndParsesDescribe) {
  TempDir dir;
  ExecProvider p(BaseConfig(dir));
  ASSERT_TRUE(p.Attach("vol", "n1", "kvd-0").ok());
  ASSERT_TRUE(p.Detach("vol", "n1").ok());
  ASSERT_TRUE(p.ForceDetach("vol", "n2").ok());
  EXPECT_EQ(ReadAll(dir.path() + "/calls"), "vol n1 kvd-0\ndetach vol n1 \ndetach vol n2 1\n");
  auto d = p.Describe("vol");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->node, "n1");
  EXPECT_EQ(d->instance, "kvd-0");
  EXPECT_EQ(p.Describe("none").status().code(), StatusCode::kNotFound);
}

TEST(ExecProviderTest, ConflictCarriesScriptOutput) {
  TempDir dir;
  auto c = BaseConfig(dir);
  c.attach = WriteScript(dir.path(), "attach3", "echo attached to n9; exit 3");
  ExecProvider p(c);
  Status st = p.Attach("vol", "n1", "kvd-0");
  EXPECT_EQ(st.code(), StatusCode::kConflict);
  EXPECT_NE(st.message().find("attached to n9"), std::string::npos) << st.message();
}

TEST(ExecProviderTest, RetriesThenReportsExitAndOutput) {
  TempDir dir;
  auto c = BaseConfig(dir);
  c.attach = WriteScript(dir.path(), "attachfail",
                         "echo try >> " + dir.path() + "/tries; echo boom >&2; exit 7");
  ExecProvider p(c);
  Status st = p.Attach("vol", "n1", "kvd-0");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("exited 7"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("boom"), std::string::npos) << st.message();
  EXPECT_EQ(ReadAll(dir.path() + "/tries"), "try\ntry\ntry\n");
}

TEST(ExecProviderTest, RetrySucceedsAfterTransientFailure) {
  TempDir dir;
  auto c = BaseConfig(dir);
  std::string marker = dir.path() + "/marker";
  c.attach = WriteScript(dir.path(), "flaky",
                         "if [ -f " + marker + " ]; then exit 0; fi; touch " + marker + "; exit 1");
  ExecProvider p(c);
  EXPECT_TRUE(p.Attach("vol", "n1", "kvd-0").ok());
}

TEST(ExecProviderTest, DeadlineKillsScript) {
  TempDir dir;
  auto c = BaseConfig(dir);
  c.detach = WriteScript(dir.path(), "hang", "sleep 30");
  c.timeout = std::chrono::milliseconds(200);
  c.retries = 0;
  ExecProvider p(c);
  auto start = std::chrono::steady_clock::now();
  Status st = p.Detach("vol", "n1");
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ExecProviderTest, ConfigFile) {
  TempDir dir;
  std::string path = dir.path() + "/p.json";
  std::ofstream(path) << R"({"attach": "/a", "detach": "/d", "describe": "/s",
                            "timeout": "2s", "retries": 5, "mount_root": "/mnt/x"})";
  auto c = LoadExecProviderConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->timeout, std::chrono::seconds(2));
  EXPECT_EQ(c->retries, 5);
  ExecProvider p(*c);
  EXPECT_EQ(p.MountPath("v", "n1"), "/mnt/x/v");
  std::ofstream(path) << R"({"attach": "/a", "detach": "/d", "describe": "/s", "bogus": 1})";
  EXPECT_EQ(LoadExecProviderConfig(path).status().code(), StatusCode::kInvalidArgument);
  std::ofstream(path) << R"({"attach": "/a"})";
  EXPECT_EQ(LoadExecProviderConfig(path).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hafab::provider
