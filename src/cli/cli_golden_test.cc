// Golden tests of what people read: the status table, the operations view, YAML output, and
// the error message and exit code of each verb when something is wrong.
// HAFAB_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/stand_in.h"
#include "cli/status_view.h"
#include "cli/table_watch.h"
#include "cli/yaml_output.h"
#include "testing/wait.h"

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

using nlohmann::json;
using namespace std::chrono_literals;

json Fixture(const std::string& name) {
  return json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/" + name + ".json"));
}

// Starts the hafab binary with its stdout and stderr on a pipe; returns its pid and the pipe.
pid_t StartHafab(const std::vector<std::string>& args, int* out_fd) {
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
  *out_fd = fds[0];
  return pid;
}

// Runs the hafab binary; returns "exit: N\n" followed by everything it printed.
std::string RunHafab(const std::vector<std::string>& args) {
  int fd = -1;
  pid_t pid = StartHafab(args, &fd);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  return "exit: " + std::to_string(WEXITSTATUS(status)) + "\n" + out;
}

TEST(CliGoldenTest, StatusTable) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/status.json"));
  j["roles"] = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/roles.json"))["roles"];
  ExpectGolden("status_table", RenderStatusTable(j));
}

// A replicated role that cannot take writes says which operation holds it and what it waits for.
TEST(CliGoldenTest, StatusTableSaysWhyAReplicatedRoleIsNotWritable) {
  auto j = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/status.json"));
  j["roles"] = nlohmann::json::parse(Read(std::string(HAFAB_GOLDEN_DIR) + "/roles.json"))["roles"];
  j["roles"][2]["primary"] = "";
  j["roles"][2]["operation"] = "op-31";
  j["roles"][2]["quorum"]["following"] = 0;
  j["roles"][2]["quorum"]["writable"] = false;
  j["operations"].push_back(
      {{"id", "op-31"},
       {"kind", "reconfigure"},
       {"role", "kv"},
       {"state", "running"},
       {"step", "collect"},
       {"steps",
        {{{"name", "fence"}, {"note", ""}},
         {{"name", "collect"},
          {"note", "quorum lost: 1 of the 2 replicas needed took epoch 3"}}}}});
  EXPECT_NE(RenderStatusTable(j).find("\nreplicated kv: primary (none) at epoch 2, 0 of 3 replicas "
                                      "following, quorum 2: NOT WRITABLE (operation op-31, step "
                                      "collect: quorum lost: 1 of the 2 replicas needed took "
                                      "epoch 3)\n"),
            std::string::npos)
      << RenderStatusTable(j);
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

// A state directory that names the controller at `url`, with a token; removed at the end.
class StateDir {
 public:
  explicit StateDir(const std::string& url) {
    char tmpl[] = "/tmp/hafab-cli-XXXXXX";
    path_ = mkdtemp(tmpl);
    std::ofstream(path_ + "/admin.token") << "t0ken\n";
    std::ofstream(path_ + "/api.url") << url << "\n";
  }
  ~StateDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Case {
  std::string name;
  std::vector<std::string> args;
};

// Runs each case against the state directory `dir`; compares with verb_NAME.golden.
void ExpectVerbGolden(const std::vector<Case>& cases, const std::string& dir) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string out = RunHafab(c.args);
    // The temp dir's name changes from run to run.
    for (size_t p; (p = out.find(dir)) != std::string::npos;) out.replace(p, dir.size(), "STATE");
    ExpectGolden("verb_" + c.name, out);
  }
}

TEST(CliGoldenTest, VerbErrors) {
  // A state directory whose controller address answers nothing (port 1).
  StateDir state("http://127.0.0.1:1");
  const std::string& dir = state.path();
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
  ExpectVerbGolden(cases, dir);
}

// The listings of `hafab get`: curated columns, and more with -o wide.
TEST(CliGoldenTest, GetListings) {
  for (const auto& [kind, fixture] :
       std::vector<std::pair<std::string, std::string>>{{"roles", "roles"},
                                                        {"nodes", "nodes"},
                                                        {"volumes", "volumes"},
                                                        {"instances", "status"},
                                                        {"replicas", "status"}}) {
    SCOPED_TRACE(kind);
    json j = Fixture(fixture);
    ExpectGolden("get_" + kind, FormatTable(ListingRows(kind, j, false)));
    ExpectGolden("get_" + kind + "_wide", FormatTable(ListingRows(kind, j, true)));
  }
}

// A stand-in controller answering GET /v1/status, /v1/nodes and /v1/events from the fixtures.
http::Response FixtureAnswer(const http::Request& req, const json& status) {
  if (req.path == "/v1/events") return http::Response::Json(200, R"({"events":[],"last":5})");
  if (req.path == "/v1/status") return http::Response::Json(200, status.dump());
  if (req.path == "/v1/nodes") return http::Response::Json(200, Fixture("nodes").dump());
  return http::Response::Json(404, R"({"error":"path: no such API"})");
}

// `hafab get` against a controller: what people read, and -o json as the controller said it.
TEST(CliGoldenTest, GetVerbs) {
  json status = Fixture("status");
  status["roles"] = Fixture("roles")["roles"];
  StandIn controller([&](const http::Request& req) { return FixtureAnswer(req, status); });
  StateDir state(controller.url());
  const std::vector<std::string> at = {"--state-dir", state.path()};
  ExpectVerbGolden({{"get_nodes", With({"get", "nodes"}, at)},
                    {"get_instances_of_role", With({"get", "instances", "kvd"}, at)},
                    {"get_replicas_of_role", With({"get", "replicas", "kv"}, at)},
                    {"get_instances_no_such_role", With({"get", "instances", "nosuch"}, at)},
                    {"get_role_not_instances", With({"get", "nodes", "kvd"}, at)},
                    {"get_watch_json", With({"get", "nodes", "-w", "-o", "json"}, at)}},
                   state.path());
  EXPECT_EQ(RunHafab(With({"get", "nodes", "-o", "json"}, at)),
            "exit: 0\n" + Fixture("nodes").dump(2) + "\n");
}

// Collects what a process writes to `fd` from a thread.
class Output {
 public:
  explicit Output(int fd) : fd_(fd), thread_([this] { Read(); }) {}
  ~Output() {
    thread_.join();
    close(fd_);
  }
  std::string text() const {
    std::lock_guard<std::mutex> l(mu_);
    return text_;
  }

 private:
  void Read() {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof buf)) > 0) {
      std::lock_guard<std::mutex> l(mu_);
      text_.append(buf, static_cast<size_t>(n));
    }
  }
  int fd_;
  mutable std::mutex mu_;
  std::string text_;
  std::thread thread_;
};

// `hafab get instances --watch`: the table, nothing while only ages move, then one line per
// changed, new and gone instance; Ctrl-C ends it.
TEST(CliGoldenTest, GetWatchPrintsTheTableThenEachChange) {
  std::mutex mu;
  json status = Fixture("status");
  // The active-passive and load-balanced rows only (the replicated role's are the listings').
  status["instances"].erase(status["instances"].begin() + 3, status["instances"].end());
  int status_requests = 0;
  bool ageing = true;
  StandIn controller([&](const http::Request& req) {
    std::lock_guard<std::mutex> l(mu);
    if (req.path == "/v1/status" && ageing) {
      ++status_requests;
      for (auto& i : status["instances"]) i["age_ms"] = i["age_ms"].get<int64_t>() + 1000;
    }
    return FixtureAnswer(req, status);
  });
  StateDir state(controller.url());
  int fd = -1;
  pid_t pid = StartHafab({"get", "instances", "--watch", "--state-dir", state.path()}, &fd);
  // Ends the watch if the test stops early (before Output waits for the end of its output).
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    }
  };
  const std::string table =
      "NAME    ROLE  KIND      NODE  STATE    READY    RESTARTS  AGE\n"
      "echo-0  echo  instance  n1    running  ready    0         43s\n"
      "kvd-0   kvd   primary   n2    running  busy     2         2h\n"
      "kvd-1   kvd   standby   n1    stopped  unknown  0         5m\n";
  {
    Output out(fd);
    Reaper reaper{pid};
    ASSERT_TRUE(testing::WaitFor([&] { return out.text() == table; }, 10s)) << out.text();
    // Ages move on every answer; no row is printed again for that.
    ASSERT_TRUE(testing::WaitFor([&] {
      std::lock_guard<std::mutex> l(mu);
      return status_requests >= 3;
    }));
    {
      std::lock_guard<std::mutex> l(mu);
      ageing = false;
      json& inst = status["instances"];
      inst[2]["state"] = "running";
      inst[2]["readiness"] = "ready";
      json echo1 = inst[0];
      echo1["instance"] = "echo-1";
      echo1["age_ms"] = 1000;
      inst.erase(inst.begin());
      inst.push_back(echo1);
    }
    const std::string changes =
        "kvd-1   kvd   standby   n1    running  ready    0         5m\n"
        "echo-1  echo  instance  n1    running  ready    0         1s\n"
        "echo-0  echo  instance  n1    running  ready    0         43s  (gone)\n";
    EXPECT_TRUE(testing::WaitFor([&] { return out.text() == table + changes; }, 10s)) << out.text();
    kill(pid, SIGINT);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    reaper.pid = 0;
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << st;
  }
}

}  // namespace
}  // namespace hafab::cli
