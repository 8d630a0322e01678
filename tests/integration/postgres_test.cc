// Integration: examples/postgres/postgres.yaml under `hafab up` — three PostgreSQL 15 replicas
// with quorum commit behind the gateway. A psql client commits one row per transaction through
// the gateway and records which commits were acknowledged; in every test each acknowledged
// row is there at the end and no client sees a read-only error.
//   - The primary's node is SIGKILLed: a new primary takes commits within 5 s, and the old
//     primary comes back as a streaming secondary (pg_rewind). Then a secondary's node is
//     killed: commits go on (quorum 2 of 3).
//   - The primary's node is cut off the network (each node in its own network namespace,
//     tests/faults/netns.h): another replica is promoted, and once the link is back the old
//     primary rejoins as a streaming secondary.
//   - A secondary's node is drained (removed for good): its replica is rebuilt on the spare
//     node with pg_basebackup, streams, and holds every acknowledged row.
// Skipped when PostgreSQL 15 is not installed (scripts/setup.sh installs it) or when not run
// as root (`user: postgres`); the partition also when the kernel refuses network namespaces.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "testing/ports.h"
#include "tests/e2e/process.h"
#include "tests/faults/netns.h"

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

// The set of integers psql printed, one a line.
std::set<int> Rows(const std::string& text) {
  std::set<int> rows;
  std::istringstream in(text);
  for (int i; in >> i;) rows.insert(i);
  return rows;
}

// Reads one line from `fd` (the rest stays in *buf) within `timeout`; false on end of file,
// an error or the timeout.
bool ReadLine(int fd, std::string* buf, std::string* line, Duration timeout) {
  const TimePoint deadline = RealClock().Now() + timeout;
  for (;;) {
    size_t nl = buf->find('\n');
    if (nl != std::string::npos) {
      *line = buf->substr(0, nl);
      buf->erase(0, nl + 1);
      return true;
    }
    const Duration left = deadline - RealClock().Now();
    if (left <= Duration::zero()) return false;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(ToMs(left)) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char chunk[256];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return false;
    buf->append(chunk, static_cast<size_t>(n));
  }
}

// Commits `INSERT INTO t VALUES (n)` for n = 1, 2, … through the gateway with psql (one
// long-lived session, started again when it is lost, or when a commit has no answer within
// 10 s: a primary cut off the network neither answers nor closes). A commit counts as
// acknowledged when psql got its COMMIT's answer; every error text psql printed is kept.
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
      std::string buf, line;
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
        while (ReadLine(out[0], &buf, &line, 10s)) {
          int got = 0;
          if (sscanf(line.c_str(), "ack %d", &got) == 1 && got == n) {
            std::lock_guard<std::mutex> l(mu_);
            acked_.insert(n);
            if (sent > last_ack_sent_) last_ack_sent_ = sent;
            last_ack_ = RealClock().Now();
            alive = true;
            break;
          }
          if (sscanf(line.c_str(), "fail %d", &got) == 1 && got == n) {
            alive = true;
            break;
          }
        }
      }
      kill(pid, SIGKILL);
      fclose(to);
      close(out[0]);
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
    if (HasFailure() && up_ > 0) {  // what the cluster said, while it still runs
      std::cerr << "--- hafab status\n"
                << Hafab({"status"}) << "--- hafab get replicas pg\n"
                << Hafab({"get", "replicas", "pg"}) << "--- hafab events\n"
                << Hafab({"events"});
    }
    e2e::StopGroup(up_, SIGTERM, 30s);
    for (pid_t p : e2e::ProcessesNaming(state_)) kill(p, SIGKILL);
    lab_.reset();  // after the cluster: its processes keep a namespace alive
    if (HasFailure()) std::cerr << e2e::TailLogs(state_);
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

  // The replica on `node` says it is a secondary streaming from the primary.
  bool Streams(const std::string& node) {
    for (const auto& r : Replicas()) {
      const json says = r["replica"].value("says", json());
      if (r.value("node", "") == node && says.is_object() &&
          says.value("role", "") == "secondary" && says.value("state", "") == "streaming")
        return true;
    }
    return false;
  }

  // The nodes whose replica says it is a secondary.
  std::vector<std::string> SecondaryNodes() {
    std::vector<std::string> nodes;
    for (const auto& r : Replicas()) {
      const json says = r["replica"].value("says", json());
      if (says.is_object() && says.value("role", "") == "secondary")
        nodes.push_back(r.value("node", ""));
    }
    return nodes;
  }

  // `hafab up` on examples/postgres/postgres.yaml as shipped, on free ports, `edit` applied to
  // the manifest, with `extra` arguments; as the README runs it: from the repository root, the
  // scripts on PATH. Returns once a table t was created through the gateway.
  void Up(const std::function<void(std::string&)>& edit = nullptr,
          const std::vector<std::string>& extra = {}) {
    std::string manifest =
        ReadFile(std::string(HAFAB_SOURCE_DIR) + "/examples/postgres/postgres.yaml");
    endpoint_ = testing::FreePort();
    const int port = testing::FreePort();  // replicas on port, port+1, … (below 32768)
    ReplaceOnce(manifest, "listen: 127.0.0.1:7400",
                "listen: 127.0.0.1:" + std::to_string(endpoint_));
    ReplaceOnce(manifest, "port: 7401", "port: " + std::to_string(port));
    if (edit) edit(manifest);
    std::ofstream(dir_ + "/postgres.yaml") << manifest;
    std::vector<std::string> args = {HAFAB_BINARY,     "up",   dir_ + "/postgres.yaml",
                                     "--state-dir",    state_, "--no-watch",
                                     "--revive-after", "3s"};
    args.insert(args.end(), extra.begin(), extra.end());
    const char* path = std::getenv("PATH");
    up_ = e2e::Spawn(args, dir_ + "/up.log",
                     {{"PATH", std::string(HAFAB_SOURCE_DIR) +
                                   "/examples/postgres:" + (path ? path : "/usr/bin:/bin")}},
                     HAFAB_SOURCE_DIR);
    // IF NOT EXISTS: a failover while the cluster starts can end the connection of a CREATE
    // that committed (a client cannot tell), and the next try must not fail for ever.
    std::string psql;
    ASSERT_TRUE(WaitFor(
        "a table created through the gateway",
        [&] { return Psql("CREATE TABLE IF NOT EXISTS t (i int PRIMARY KEY)", &psql); }, 120s))
        << "psql's last answer: " << psql << "\n"
        << ReadFile(dir_ + "/up.log");
  }

  // Every commit `writer` saw acknowledged is in t (read through the gateway), and no client
  // error was a read-only one.
  void ExpectNoLostCommit(Writer& writer, const std::string& errors) {
    writer.Stop();
    std::string rows;
    ASSERT_TRUE(Psql("SELECT i FROM t", &rows));
    const std::set<int> have = Rows(rows);
    int lost = 0;
    for (int i : writer.AckedRows()) lost += have.count(i) == 0;
    EXPECT_EQ(lost, 0) << "of " << writer.Acked() << " acknowledged commits";
    const std::string client_errors = ReadFile(errors);
    EXPECT_EQ(client_errors.find("read-only"), std::string::npos) << client_errors;
  }

  std::string dir_, state_;
  int endpoint_ = 0;
  pid_t up_ = 0;
  std::unique_ptr<faults::NetnsLab> lab_;
};

TEST_F(PostgresTest, PrimaryAndSecondaryLossLoseNoAcknowledgedCommit) {
  ASSERT_NO_FATAL_FAILURE(Up());
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
      "the old primary back as a streaming secondary", [&] { return Streams(primary_node); }, 90s))
      << Hafab({"get", "replicas", "pg"});

  // A secondary's node dies: the primary still has one synchronous standby, commits go on.
  std::string secondary_node;
  for (const std::string& node : SecondaryNodes()) {
    if (node != primary_node) secondary_node = node;
  }
  ASSERT_FALSE(secondary_node.empty());
  Hafab({"kill", secondary_node});
  const size_t before = writer.Acked();
  EXPECT_TRUE(WaitFor(
      "10 commits after a secondary's loss", [&] { return writer.Acked() >= before + 10; }, 10s));

  ExpectNoLostCommit(writer, errors);
}

TEST_F(PostgresTest, PartitionOfThePrimaryLosesNoAcknowledgedCommit) {
  // Each node in a network namespace of its own, on its own address; the controller and the
  // gateway stay here and reach them through a bridge.
  lab_ = std::make_unique<faults::NetnsLab>();
  Status made = lab_->Create(4);
  if (!made.ok()) GTEST_SKIP() << "no network namespaces here: " << made.message();
  ASSERT_NO_FATAL_FAILURE(Up(
      [&](std::string& m) {
        ReplaceOnce(m, "cluster: postgres\n",
                    "cluster: postgres\nsettings:\n  api_listen: " + lab_->host_address() + ":0\n");
        for (int i = 1; i <= 4; ++i) {
          const std::string n = std::to_string(i);
          ReplaceOnce(m, "update_domain: ud" + n + ", address: 127.0.0.1}",
                      "update_domain: ud" + n + ", address: " + lab_->NodeAddress("n" + n) + "}");
        }
      },
      {"--agent-wrapper", lab_->AgentWrapper()}));

  const std::string errors = dir_ + "/client.err";
  Writer writer(endpoint_, errors);
  ASSERT_TRUE(WaitFor(
      "20 acknowledged commits", [&] { return writer.Acked() >= 20; }, 60s));

  // The primary's node is cut off: its PostgreSQL runs on but reaches no standby (its commits
  // wait) and nobody reaches it; another replica is promoted.
  const std::string primary_node = PrimaryNode();
  ASSERT_FALSE(primary_node.empty());
  ASSERT_TRUE(lab_->Cut(primary_node).ok());
  const TimePoint cut = RealClock().Now();
  ASSERT_TRUE(WaitFor(
      "a commit sent after the partition acknowledged",
      [&] { return writer.LastAckedSend() > cut; }, 60s))
      << Hafab({"get", "replicas", "pg"});
  EXPECT_NE(PrimaryNode(), primary_node);

  // The link back: the old primary rejoins as a secondary of the new one (rewound).
  ASSERT_TRUE(lab_->Heal(primary_node).ok());
  ASSERT_TRUE(WaitFor(
      "the old primary back as a streaming secondary", [&] { return Streams(primary_node); }, 120s))
      << Hafab({"get", "replicas", "pg"});
  const size_t before = writer.Acked();
  EXPECT_TRUE(WaitFor(
      "10 commits after the heal", [&] { return writer.Acked() >= before + 10; }, 10s));
  ExpectNoLostCommit(writer, errors);
}

TEST_F(PostgresTest, ADrainedSecondaryIsRebuiltOnTheSpareNode) {
  ASSERT_NO_FATAL_FAILURE(Up());
  const std::string errors = dir_ + "/client.err";
  Writer writer(endpoint_, errors);
  ASSERT_TRUE(WaitFor(
      "20 acknowledged commits", [&] { return writer.Acked() >= 20; }, 60s));

  // A secondary's node removed for good: its replica is rebuilt (pg_basebackup from the
  // primary) on the node that has none.
  std::vector<std::string> secondaries;
  ASSERT_TRUE(WaitFor(
      "both secondaries streaming",
      [&] {
        secondaries = SecondaryNodes();
        return secondaries.size() == 2 && Streams(secondaries[0]) && Streams(secondaries[1]);
      },
      60s))
      << Hafab({"get", "replicas", "pg"});
  std::set<std::string> used = {PrimaryNode(), secondaries[0], secondaries[1]};
  std::string spare;
  for (const char* n : {"n1", "n2", "n3", "n4"}) {
    if (used.count(n) == 0) spare = n;
  }
  ASSERT_FALSE(spare.empty());
  const std::string drain_out = Hafab({"drain", secondaries[0]});
  ASSERT_TRUE(WaitFor(
      "a streaming secondary rebuilt on " + spare, [&] { return Streams(spare); }, 180s))
      << drain_out << Hafab({"get", "replicas", "pg"});
  const size_t before = writer.Acked();
  EXPECT_TRUE(WaitFor(
      "10 commits after the rebuild", [&] { return writer.Acked() >= before + 10; }, 10s));
  writer.Stop();

  // The rebuilt replica holds every acknowledged row (once it replayed what it received).
  int port = 0;
  for (const auto& r : Replicas()) {
    if (r.value("node", "") == spare) port = r.value("port", 0);
  }
  ASSERT_NE(port, 0);
  const std::set<int> acked = writer.AckedRows();
  std::string rows;
  EXPECT_TRUE(WaitFor(
      "every acknowledged row on the rebuilt replica",
      [&] {
        e2e::RunCapture(
            {"/usr/bin/env", "PGPASSWORD=postgres", "PGCONNECT_TIMEOUT=2",
             std::string(kPgBin) + "/psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
             std::to_string(port), "-U", "postgres", "-c", "SELECT i FROM t", "postgres"},
            "", &rows);
        const std::set<int> have = Rows(rows);
        return std::includes(have.begin(), have.end(), acked.begin(), acked.end());
      },
      30s))
      << Rows(rows).size() << " rows there, " << acked.size() << " acknowledged";
  ExpectNoLostCommit(writer, errors);
}

}  // namespace
}  // namespace hafab
