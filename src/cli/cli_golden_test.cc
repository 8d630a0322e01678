// Golden tests of what people read: the status table, the operations view, YAML output, and
// the error message and exit code of each verb when something is wrong.
// HAFAB_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/status_view.h"
#include "cli/yaml_output.h"

namespace hafab::cli {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(HAFAB_GOLDEN_DIR) + "/" + name + ".golden";
  if (std::getenv("HAFAB_UPDATE_GOLDEN")) {
    std::ofstream(path) << actual;
    return;
  }
  EXPECT_EQ(actual, Read(path)) << "golden file " << path
                                << " differs (HAFAB_UPDATE_GOLDEN=1 to rewrite it)";
}

// Runs the hafab binary; returns "exit: N\n" followed by everything it printed.
std::string RunHafab(const std::vector<std::string>& args) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    unsetenv("HAFAB_API");
    unsetenv("HAFAB_TOKEN");
    std::vector<std::string> all = {"hafab"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(HAFAB_BIN, argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return "exit: " + std::to_string(WEXITSTATUS(status)) + "\n" + out;
}

TEST(CliGoldenTest, StatusTable) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/status.json"));
  ExpectGolden("status_table", RenderStatusTable(j));
}

TEST(CliGoldenTest, StatusTableSaysWhenStoreCommitsFailed) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/status.json"));
  EXPECT_EQ(RenderStatusTable(j).find("store:"), std::string::npos);
  j["store"] = {
      {"failed_commits", 3}, {"last_error", "Unavailable: etcd down"}, {"reloading", true}};
  EXPECT_NE(RenderStatusTable(j).find("\nstore: 3 failed commits since the controller started "
                                      "(last: Unavailable: etcd down); reading the state back\n"),
            std::string::npos)
      << RenderStatusTable(j);
}

TEST(CliGoldenTest, OpsView) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/ops.json"));
  ExpectGolden("ops_view", RenderOps(j));
}

TEST(CliGoldenTest, YamlOutput) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/ops.json"));
  ExpectGolden("ops_yaml", ToYaml(j));
}

// A state directory with no cluster.
const std::vector<std::string> kNoCluster = {"--state-dir", "/nonexistent/hafab-state"};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(CliGoldenTest, VerbErrors) {
  struct Case {
    std::string name;
    std::vector<std::string> args;
  };
  // A state directory whose controller address answers nothing (port 1), with a token.
  char tmpl[] = "/tmp/hafab-cli-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/admin.token") << "t0ken\n";
  std::ofstream(dir + "/api.url") << "http://127.0.0.1:1\n";
  const std::vector<std::string> dead = {"--state-dir", dir};
  std::vector<Case> cases = {
      {"status_no_cluster", With({"status"}, kNoCluster)},
      {"status_unreachable", With({"status"}, dead)},
      {"get_unknown_kind", {"get", "pods"}},
      {"get_unreachable", With({"get", "nodes", "-o", "json"}, dead)},
      {"events_unreachable", With({"events"}, dead)},
      {"ops_unreachable", With({"ops"}, dead)},
      {"apply_missing_file", {"apply", "-f", "/nonexistent/m.yaml"}},
      {"failover_no_role", {"failover"}},
      {"failover_unreachable", With({"failover", "kvd", "--to", "n2"}, dead)},
      {"scale_negative", {"scale", "echo", "-1"}},
      {"scale_unreachable", With({"scale", "echo", "3"}, dead)},
      {"drain_unreachable", With({"drain", "n1"}, dead)},
      {"upgrade_nothing", {"upgrade", "echo"}},
      {"upgrade_bad_set", {"upgrade", "echo", "--set", "colour=blue"}},
      {"upgrade_unreachable", With({"upgrade", "echo", "--set", "version=2"}, dead)},
      {"sla_bad_window", {"sla", "echo", "--window", "soon"}},
      {"sla_unreachable", With({"sla", "echo"}, dead)},
      {"kill_no_cluster", With({"kill", "n1"}, kNoCluster)},
      {"kill_bad_signal", {"kill", "n1", "--signal", "HUP"}},
      {"logs_no_cluster", With({"logs", "kvd"}, kNoCluster)},
      {"up_missing_file", {"up", "/nonexistent/m.yaml"}},
      {"validate_missing_file", {"validate", "/nonexistent/m.yaml"}},
      {"unknown_verb", {"frobnicate"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string out = RunHafab(c.args);
    // The temp dir's name changes from run to run.
    for (size_t p; (p = out.find(dir)) != std::string::npos;) out.replace(p, dir.size(), "STATE");
    ExpectGolden("verb_" + c.name, out);
  }
  std::string rm = "rm -rf " + dir;
  ASSERT_EQ(std::system(rm.c_str()), 0);
}

}  // namespace
}  // namespace hafab::cli
