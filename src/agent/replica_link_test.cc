// The agent's ReplicaLink against a real HTTP replica on loopback and a real hook script.
#include "agent/replica_link.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json.h"
#include "http/http.h"
#include "testing/read_file.h"
#include "testing/run_io.h"
#include "testing/temp_dir.h"

namespace hafab::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using testing::RunUntil;

wire::ReplicaConfig Config(int64_t epoch, wire::ReplicaRole role) {
  wire::ReplicaConfig c;
  c.instance = "kv-1";
  c.role = role;
  c.epoch = epoch;
  c.quorum = 2;
  c.primary = wire::ReplicaMember{"kv-0", "127.0.0.1:1", wire::ReplicaRole::kPrimary};
  c.replicas = {{"kv-0", "127.0.0.1:1", wire::ReplicaRole::kPrimary},
                {"kv-1", "127.0.0.1:2", role},
                {"kv-2", "127.0.0.1:3", wire::ReplicaRole::kSecondary}};
  return c;
}

struct Reports {
  std::vector<Result<wire::ReplicaStatus>> got;
  ReplicaLink::ReportFn Fn() {
    return [this](const std::string& instance, pid_t pid, Result<wire::ReplicaStatus> s) {
      EXPECT_EQ(instance, "kv-1");
      EXPECT_EQ(pid, 42);
      got.push_back(std::move(s));
    };
  }
  size_t ok() const {
    size_t n = 0;
    for (const auto& r : got) n += r.ok();
    return n;
  }
};

// A replica over HTTP: takes configurations not older than the one it has (409 otherwise) and
// answers its status.
class HttpReplica {
 public:
  explicit HttpReplica(boost::asio::io_context& io)
      : server_(io, [this](http::Request&& req, http::Responder respond) {
          if (req.path != "/hafab/v1/replica") return respond(http::Response::Text(404, "no"));
          if (req.method == "PUT") {
            auto c = wire::ParseReplicaConfig(json::parse(req.body));
            EXPECT_TRUE(c.ok());
            if (c->epoch < status_.epoch) return respond(http::Response::Text(409, "older"));
            puts_.push_back(*c);
            if (!slow_) status_.role = c->role;
            status_.epoch = c->epoch;
          } else {
            ++gets_;
          }
          respond(http::Response::Json(200, Dump(wire::ToJson(status_))));
        }) {
    port_ = *server_.Listen("127.0.0.1", 0);
  }

  int port() const { return port_; }
  const std::vector<wire::ReplicaConfig>& puts() const { return puts_; }
  int gets() const { return gets_; }
  wire::ReplicaStatus& status() { return status_; }
  // Takes a configuration's epoch at once but its role only when status() says so (a promotion
  // waiting for its first record to reach a quorum).
  void set_slow(bool slow) { slow_ = slow; }

 private:
  http::Server server_;
  int port_ = 0;
  std::vector<wire::ReplicaConfig> puts_;
  int gets_ = 0;
  bool slow_ = false;
  wire::ReplicaStatus status_{wire::ReplicaRole::kSecondary, 0, {0, 0}, "streaming", "kv-0"};
};

TEST(ReplicaLinkTest, ConfiguresOverHttpThenAsksForTheStatusAndReconfiguresOnAChange) {
  boost::asio::io_context io;
  HttpReplica replica(io);
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 2s, reports.Fn());
  ReplicaTarget t{"kv-1", 42, replica.port(), Config(3, wire::ReplicaRole::kSecondary), "", {}};
  link.Sync({t});
  // The replica counts a call before its answer reaches the link: wait on the reports.
  ASSERT_TRUE(RunUntil(io, [&] { return reports.ok() >= 3; }));
  ASSERT_EQ(replica.puts().size(), 1u);  // accepted once, then only asked
  EXPECT_EQ(replica.puts()[0], t.config);
  EXPECT_GE(replica.gets(), 2);
  EXPECT_EQ(reports.got.back()->epoch, 3);

  replica.status().position = {3, 17};
  ASSERT_TRUE(RunUntil(io, [&] {
    return reports.got.back().ok() && reports.got.back()->position == wire::Position{3, 17};
  }));

  // A promotion: the new configuration goes at once, without waiting for the interval.
  t.config = Config(4, wire::ReplicaRole::kPrimary);
  link.Sync({t});
  ASSERT_TRUE(RunUntil(io, [&] { return replica.puts().size() == 2; }));
  EXPECT_EQ(replica.puts()[1].role, wire::ReplicaRole::kPrimary);
  ASSERT_TRUE(RunUntil(io, [&] {
    return reports.got.back().ok() && reports.got.back()->role == wire::ReplicaRole::kPrimary;
  }));
  EXPECT_EQ(reports.got.back()->epoch, 4);

  // Not listed any more: no more calls. One call sent before may still reach the replica,
  // however late (a loaded machine, TSan); a link still polling every 20 ms would make ~15.
  const int gets = replica.gets();
  link.Sync({});
  io.run_for(300ms);
  EXPECT_LE(replica.gets(), gets + 1);
}

// A replica that has taken a promotion but does not serve yet is asked again soon, not a
// whole interval later: the controller routes to it as soon as it says it is primary.
TEST(ReplicaLinkTest, AReplicaBecomingWhatItsConfigurationSaysIsAskedAgainSoon) {
  boost::asio::io_context io;
  HttpReplica replica(io);
  replica.set_slow(true);
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 10s, 2s, reports.Fn());
  link.Sync({{"kv-1", 42, replica.port(), Config(4, wire::ReplicaRole::kPrimary), "", {}}});
  ASSERT_TRUE(RunUntil(
      io, [&] { return replica.gets() >= 3; }, 2s));  // not 10 s apart
  replica.status().role = wire::ReplicaRole::kPrimary;
  ASSERT_TRUE(RunUntil(io, [&] {
    return reports.got.back().ok() && reports.got.back()->role == wire::ReplicaRole::kPrimary;
  }));
  const int gets = replica.gets();
  io.run_for(300ms);
  EXPECT_EQ(replica.gets(), gets);  // what it should be: back to the interval
}

TEST(ReplicaLinkTest, AnOlderConfigurationRefusedIsReportedAndTriedAgain) {
  boost::asio::io_context io;
  HttpReplica replica(io);
  replica.status().epoch = 9;
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 2s, reports.Fn());
  link.Sync({{"kv-1", 42, replica.port(), Config(3, wire::ReplicaRole::kSecondary), "", {}}});
  ASSERT_TRUE(RunUntil(io, [&] { return reports.got.size() >= 2; }));
  for (const auto& r : reports.got) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kConflict);
    EXPECT_NE(r.status().message().find("PUT /hafab/v1/replica (epoch 3): refused as older"),
              std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(replica.gets(), 0);  // it is never taken as configured
}

TEST(ReplicaLinkTest, ANoAnswerIsReported) {
  boost::asio::io_context io;
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 500ms, reports.Fn());
  link.Sync({{"kv-1", 42, 1, Config(3, wire::ReplicaRole::kSecondary), "", {}}});  // port 1: closed
  ASSERT_TRUE(RunUntil(io, [&] { return !reports.got.empty(); }));
  EXPECT_FALSE(reports.got[0].ok());
}

TEST(ReplicaLinkTest, TheHookGetsTheConfigurationInItsEnvironmentAndPrintsTheStatus) {
  testing::TempDir dir;
  const std::string hook = dir.path() + "/hook";
  const std::string calls = dir.path() + "/calls";
  {
    std::ofstream f(hook);
    f << "#!/bin/sh\n"
         "echo \"to the log, not the answer\" >&2\n"
         "echo \"$1 $HAFAB_REPLICA_ROLE $HAFAB_REPLICA_EPOCH $HAFAB_REPLICA_PRIMARY "
         "$APP_SETTING\" >> "
      << calls
      << "\n"
         "echo '{\"role\": \"'$HAFAB_REPLICA_ROLE'\", \"epoch\": '$HAFAB_REPLICA_EPOCH', "
         "\"position\": {\"epoch\": 2, \"index\": 5}, \"state\": \"streaming\"}'\n";
  }
  ASSERT_EQ(chmod(hook.c_str(), 0755), 0);
  boost::asio::io_context io;
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 2s, reports.Fn());
  ReplicaTarget t{"kv-1", 42, 1, Config(3, wire::ReplicaRole::kSecondary), hook, {}};
  t.hook_spec.env = {{"APP_SETTING", "x"}, {"PATH", "/usr/bin:/bin"}};
  t.hook_spec.log_path = dir.path() + "/hook.log";  // its stderr
  link.Sync({t});
  ASSERT_TRUE(RunUntil(io, [&] { return reports.ok() >= 2; }));
  const std::string text = testing::ReadWhole(calls);
  EXPECT_EQ(text.substr(0, text.find('\n')), "configure secondary 3 127.0.0.1:1 x");
  EXPECT_NE(text.find("status secondary 3 127.0.0.1:1 x"), std::string::npos) << text;
  EXPECT_EQ(reports.got[0]->position, (wire::Position{2, 5}));
  EXPECT_NE(testing::ReadWhole(dir.path() + "/hook.log").find("to the log"), std::string::npos);
}

// A new configuration (a promotion, a fence) does not wait for a status call in flight: the
// status hook is killed and the configuration goes at once.
TEST(ReplicaLinkTest, ANewConfigurationDoesNotWaitForAStatusCallInFlight) {
  testing::TempDir dir;
  const std::string hook = dir.path() + "/hook";
  const std::string status_pid = dir.path() + "/status.pid";
  {
    std::ofstream f(hook);
    f << "#!/bin/sh\n"
         "if [ \"$1\" = status ]; then echo $$ > "
      << status_pid << ".tmp && mv " << status_pid << ".tmp " << status_pid
      << " && exec sleep 30; fi\n"
         "echo '{\"role\": \"'$HAFAB_REPLICA_ROLE'\", \"epoch\": '$HAFAB_REPLICA_EPOCH', "
         "\"position\": {\"epoch\": 2, \"index\": 5}, \"state\": \"streaming\"}'\n";
  }
  ASSERT_EQ(chmod(hook.c_str(), 0755), 0);
  boost::asio::io_context io;
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 60s, reports.Fn());
  ReplicaTarget t{"kv-1", 42, 1, Config(3, wire::ReplicaRole::kSecondary), hook, {}};
  t.hook_spec.env = {{"PATH", "/usr/bin:/bin"}};
  link.Sync({t});
  // Configured, then asked for its status, which hangs.
  ASSERT_TRUE(
      RunUntil(io, [&] { return reports.ok() == 1 && !testing::ReadWhole(status_pid).empty(); }));
  const pid_t hung = std::stoi(testing::ReadWhole(status_pid));

  t.config = Config(4, wire::ReplicaRole::kPrimary);
  link.Sync({t});
  ASSERT_TRUE(RunUntil(
      io, [&] { return reports.ok() == 2; }, 10s));  // not after the status's 30 s
  EXPECT_EQ(reports.got.back()->role, wire::ReplicaRole::kPrimary);
  EXPECT_EQ(reports.got.back()->epoch, 4);
  EXPECT_EQ(reports.got.size(), 2u);  // the status given up is not reported
  EXPECT_NE(kill(hung, 0), 0);        // killed (and reaped)
}

TEST(ReplicaLinkTest, AHookThatHangsIsKilledAtTheTimeout) {
  testing::TempDir dir;
  const std::string hook = dir.path() + "/hook";
  {
    std::ofstream f(hook);
    f << "#!/bin/sh\nexec sleep 30\n";
  }
  ASSERT_EQ(chmod(hook.c_str(), 0755), 0);
  boost::asio::io_context io;
  Reports reports;
  ReplicaLink link(io, "127.0.0.1", 20ms, 200ms, reports.Fn());
  ReplicaTarget t{"kv-1", 42, 1, Config(3, wire::ReplicaRole::kSecondary), hook, {}};
  t.hook_spec.env = {{"PATH", "/usr/bin:/bin"}};
  link.Sync({t});
  ASSERT_TRUE(RunUntil(
      io, [&] { return !reports.got.empty(); }, 5s));
  ASSERT_FALSE(reports.got[0].ok());
  EXPECT_NE(reports.got[0].status().message().find("no answer within 200 ms"), std::string::npos)
      << reports.got[0].status().message();
}

}  // namespace
}  // namespace hafab::agent
