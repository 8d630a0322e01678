// Integration: examples/postgres/postgres.yaml under `hafab up` — three PostgreSQL 15 replicas
// with quorum commit behind the gateway. A psql client commits one row per transaction through
// the gateway and records which commits were acknowledged; the primary's node is SIGKILLed: a
// new primary takes commits within 5 s, every acknowledged row is there, no client sees a
// read-only error, and the old primary comes back as a streaming secondary (pg_rewind). Then a
// secondary's node is killed: commits go on (quorum 2 of 3). Skipped when PostgreSQL 15 is
// not installed (scripts/setup.sh installs it) or when not run as root (`user: postgres`).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "testing/ports.h"
#include "tests/e2e/process.h"

namespace hafab {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::ReadFile;
using e2e::WaitFor;
using nlohmann::json;

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";

// Replaces the one occurrence of `from` in `text`.
void ReplaceOnce(std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the example has no \"" << from << "\"";
  text.replace(at, from.size(), to);
}

// Commits `INSERT INTO t VALUES (n)` for n = 1, 2, … through the gateway with psql (one
// long-lived session, started again when it is lost). A commit counts as acknowledged when
// psql got its COMMIT's answer; every error text psql printed is kept.
class Writer {
 public:
  explicit Writer(int port, std::string err_log) : port_(port), err_log_(std::move(err_log)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t Acked() {
    std::lock_guard<std::mutex> l(mu_);
    return acked_.size();
  }
  std::set<int> AckedRows() {
    std::lock_guard<std::mutex> l(mu_);
    return acked_;
  }
  // When the last acknowledgement came, and when the latest acknowledged commit was sent.
  TimePoint LastAck() {
    std::lock_guard<std::mutex> l(mu_);
    return last_ack_;
  }
  TimePoint LastAckedSend() {
    std::lock_guard<std::mutex> l(mu_);
    return last_ack_sent_;
  }

 private:
  void Run() {
    int n = 0;
    while (!stop_) {
      int in[2], out[2];
      if (pipe(in) != 0 || pipe(out) != 0) return;
      pid_t pid = fork();
      if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int err = open(err_log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(err, 2);
        for (int fd : {in[0], in[1], out[0], out[1], err}) close(fd);
        setenv("PGPASSWORD", "postgres", 1);
        setenv("PGCONNECT_TIMEOUT", "1", 1);
        const std::string psql = std::string(kPgBin) + "/psql";
        const std::string port = std::to_string(port_);
        execlp("stdbuf", "stdbuf", "-oL", psql.c_str(), "-X", "-q", "-h", "127.0.0.1", "-p",
               port.c_str(), "-U", "postgres", "postgres", nullptr);
        _exit(127);
      }
      close(in[0]);
      close(out[1]);
      FILE* to = fdopen(in[1], "w");
      FILE* from = fdopen(out[0], "r");
      char line[256];
      bool alive = true;
      while (alive && !stop_) {
        ++n;
        const TimePoint sent = RealClock().Now();
        fprintf(to,
                "INSERT INTO t VALUES (%d);\n\\if :ERROR\n\\echo fail %d\n\\else\n\\echo ack "
                "%d\n\\endif\n",
                n, n, n);
        fflush(to);
        alive = false;
        while (fgets(line, sizeof line, from) != nullptr) {
          int got = 0;
          if (sscanf(line, "ack %d", &got) == 1 && got == n) {
            std::lock_guard<std::mutex> l(mu_);
            acked_.insert(n);
            if (sent > last_ack_sent_) last_ack_sent_ = sent;
            last_ack_ = RealClock().Now();
            alive = true;
            break;
          }
          if (sscanf(line, "fail %d", &got) == 1 && got == n) {
            alive = true;
            break;
          }
        }
      }
      fclose(to);
      fclose(from);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      if (!stop_) std::this_thread::sleep_for(20ms);  // the gateway refused: try again
    }
  }

  int port_;
  std::string err_log_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::set<int> acked_;
  TimePoint last_ack_{};
  TimePoint last_ack_sent_{};
};

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access((std::string(kPgBin) + "/postgres").c_str(), X_OK) != 0 ||
        access((std::string(kPgBin) + "/psql").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "PostgreSQL 15 is not installed (" << kPgBin
                   << "): scripts/setup.sh installs postgresql-15";
    }
    if (geteuid() != 0 || getpwnam("postgres") == nullptr) {
      GTEST_SKIP() << "needs root and the postgres account (the example runs as user postgres)";
    }
    char tmpl[] = "/tmp/hafab-pg-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // The postgres account must reach its directories under the state directory: `up` makes
    // the state directory searchable (the manifest has a user:), its parent is the test's.
    chmod(dir_.c_str(), 0711);
    state_ = dir_ + "/state";
  }

  void TearDown() override {
    e2e::StopGroup(up_, SIGTERM, 30s);
    for (pid_t p : e2e::ProcessesNaming(state_)) kill(p, SIGKILL);
    std::error_code ec;
    if (!dir_.empty() && !std::getenv("HAFAB_KEEP_TEST_DIRS")) fs::remove_all(dir_, ec);
  }

  // `hafab ARGS --state-dir STATE`; its output.
  std::string Hafab(std::vector<std::string> args) {
    args.insert(args.begin(), HAFAB_BINARY);
    args.insert(args.end(), {"--state-dir", state_});
    std::string out;
    e2e::RunCapture(args, "", &out);
    return out;
  }

  // The replicas of role pg as `hafab get replicas pg -o json` lists them.
  json Replicas() {
    json j = json::parse(Hafab({"get", "replicas", "pg", "-o", "json"}), nullptr, false);
    return j.is_object() ? j.value("instances", json::array()) : json::array();
  }

  // The node of the role's primary (the controller's record: what a dead node's replica last
  // said stays until it says otherwise), "" if none.
  std::string PrimaryNode() {
    for (const auto& r : Replicas()) {
      if (r["replica"].value("role", "") == "primary") return r.value("node", "");
    }
    return "";
  }

  // psql through the gateway; true if it exited 0. Its output in *out.
  bool Psql(const std::string& sql, std::string* out = nullptr) {
    std::string text;
    int rc =
        e2e::RunCapture({"/usr/bin/env", "PGPASSWORD=postgres", "PGCONNECT_TIMEOUT=2",
                         std::string(kPgBin) + "/psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1",
                         "-p", std::to_string(endpoint_), "-U", "postgres", "-c", sql, "postgres"},
                        "", &text);
    if (out != nullptr) *out = text;
    return rc == 0;
  }

  std::string dir_, state_;
  int endpoint_ = 0;
  pid_t up_ = 0;
};

TEST_F(PostgresTest, PrimaryAndSecondaryLossLoseNoAcknowledgedCommit) {
  // The example as shipped, on free ports.
  std::string manifest =
      ReadFile(std::string(HAFAB_SOURCE_DIR) + "/examples/postgres/postgres.yaml");
  endpoint_ = testing::FreePort();
  const int port = testing::FreePort();  // replicas on port, port+1, port+2 (below 32768)
  ReplaceOnce(manifest, "listen: 127.0.0.1:7400", "listen: 127.0.0.1:" + std::to_string(endpoint_));
  ReplaceOnce(manifest, "port: 7401", "port: " + std::to_string(port));
  std::ofstream(dir_ + "/postgres.yaml") << manifest;

  // As the README runs it: from the repository root, the scripts on PATH.
  const char* path = std::getenv("PATH");
  up_ = e2e::Spawn({HAFAB_BINARY, "up", dir_ + "/postgres.yaml", "--state-dir", state_,
                    "--no-watch", "--revive-after", "3s"},
                   dir_ + "/up.log",
                   {{"PATH", std::string(HAFAB_SOURCE_DIR) +
                                 "/examples/postgres:" + (path ? path : "/usr/bin:/bin")}},
                   HAFAB_SOURCE_DIR);
  ASSERT_TRUE(WaitFor(
      "a table created through the gateway",
      [&] { return Psql("CREATE TABLE t (i int PRIMARY KEY)"); }, 120s))
      << ReadFile(dir_ + "/up.log");
  std::string sync;
  ASSERT_TRUE(Psql("SHOW synchronous_standby_names", &sync));
  EXPECT_EQ(sync, "ANY 1 (\"pg-1\", \"pg-2\")\n");

  const std::string errors = dir_ + "/client.err";
  Writer writer(endpoint_, errors);
  ASSERT_TRUE(WaitFor(
      "20 acknowledged commits", [&] { return writer.Acked() >= 20; }, 60s));

  // The primary's node dies: a new primary within 5 s.
  const std::string primary_node = PrimaryNode();
  ASSERT_FALSE(primary_node.empty());
  const std::string kill_out = Hafab({"kill", primary_node});
  const TimePoint killed = RealClock().Now();
  ASSERT_NE(kill_out.find("sent SIGKILL to node " + primary_node), std::string::npos) << kill_out;
  ASSERT_TRUE(WaitFor(
      "a commit sent after the primary's loss acknowledged",
      [&] { return writer.LastAckedSend() > killed; }, 30s));
  EXPECT_LT(writer.LastAck() - killed, 5s)
      << "first commit after " << ToMs(writer.LastAck() - killed) << " ms";
  EXPECT_NE(PrimaryNode(), primary_node);

  // The old primary comes back as a secondary (rewound) and streams from the new one.
  ASSERT_TRUE(WaitFor(
      "the old primary back as a streaming secondary",
      [&] {
        for (const auto& r : Replicas()) {
          const json says = r["replica"].value("says", json());
          if (r.value("node", "") == primary_node && says.is_object() &&
              says.value("role", "") == "secondary" && says.value("state", "") == "streaming")
            return true;
        }
        return false;
      },
      90s))
      << Hafab({"get", "replicas", "pg"});

  // A secondary's node dies: the primary still has one synchronous standby, commits go on.
  std::string secondary_node;
  for (const auto& r : Replicas()) {
    const json says = r["replica"].value("says", json());
    if (r.value("node", "") != primary_node && says.is_object() &&
        says.value("role", "") == "secondary")
      secondary_node = r.value("node", "");
  }
  ASSERT_FALSE(secondary_node.empty());
  Hafab({"kill", secondary_node});
  const size_t before = writer.Acked();
  EXPECT_TRUE(WaitFor(
      "10 commits after a secondary's loss", [&] { return writer.Acked() >= before + 10; }, 10s));

  writer.Stop();
  std::string rows;
  ASSERT_TRUE(Psql("SELECT i FROM t", &rows));
  std::set<int> have;
  std::istringstream in(rows);
  for (int i; in >> i;) have.insert(i);
  int lost = 0;
  for (int i : writer.AckedRows()) lost += have.count(i) == 0;
  EXPECT_EQ(lost, 0) << "of " << writer.Acked() << " acknowledged commits";
  const std::string client_errors = ReadFile(errors);
  EXPECT_EQ(client_errors.find("read-only"), std::string::npos) << client_errors;
}

}  // namespace
}  // namespace hafab
