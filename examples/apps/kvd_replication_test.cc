// kvd in replicated mode: three real kvd processes on loopback, configured as the fabric
// would (HAFAB_REPLICA_CONFIG at start, PUT /hafab/v1/replica on changes).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "app_process.h"
#include "http/http.h"
#include "kv_log.h"
#include "testing/ports.h"
#include "testing/wait.h"

namespace hafab::apps {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

constexpr int kReplicas = 3;

class KvdReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/kvd_replication_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    for (int i = 0; i < kReplicas; ++i) ports_.push_back(testing::FreePort());
  }
  void TearDown() override {
    for (auto& r : replicas_) r.reset();
    std::filesystem::remove_all(dir_);
  }

  static std::string Name(int i) { return "kv-" + std::to_string(i); }
  std::string Address(int i) const { return "127.0.0.1:" + std::to_string(ports_[i]); }
  std::string DataDir(int i) const { return dir_ + "/" + Name(i); }

  // The configuration of replica `self`: roles[i] is replica i's ("primary", ...).
  std::string Config(int self, uint64_t epoch, const std::vector<std::string>& roles,
                     int quorum = 2) const {
    nlohmann::json j = {{"instance", Name(self)},
                        {"role", roles[self]},
                        {"epoch", epoch},
                        {"quorum", quorum},
                        {"replicas", nlohmann::json::array()}};
    for (int i = 0; i < kReplicas; ++i) {
      j["replicas"].push_back({{"instance", Name(i)}, {"address", Address(i)}, {"role", roles[i]}});
      if (roles[i] == "primary") j["primary"] = {{"instance", Name(i)}, {"address", Address(i)}};
    }
    return j.dump();
  }

  // Starts (or restarts) replica i with `config` in its environment.
  ::testing::AssertionResult StartReplica(int i, const std::string& config) {
    auto& r = replicas_[i];
    if (!r) {
      r = std::make_unique<AppProcess>(
          KVD_PATH,
          std::map<std::string, std::string>{{"HAFAB_INSTANCE", Name(i)},
                                             {"HAFAB_VOLUME_DIR", DataDir(i)},
                                             {"KVD_ACK_TIMEOUT_MS", "1000"}},
          dir_ + "/" + Name(i) + ".stderr");
      r->SetPort(ports_[i]);
    }
    r->SetEnv("HAFAB_REPLICA_CONFIG", config);
    return r->Start();
  }

  // kv-0 primary, kv-1 and kv-2 secondaries at epoch 1; waits until kv-0 takes writes.
  void StartCluster() {
    const std::vector<std::string> roles = {"primary", "secondary", "secondary"};
    for (int i = 0; i < kReplicas; ++i) ASSERT_TRUE(StartReplica(i, Config(i, 1, roles)));
    ASSERT_TRUE(WaitFor([&] { return Status(0).value("role", "") == "primary"; }))
        << Status(0).dump() << replicas_[0]->Log();
  }

  void Stop(int i) {
    replicas_[i]->Kill(SIGKILL);
    ASSERT_TRUE(replicas_[i]->Wait().has_value());
  }

  nlohmann::json Status(int i) {
    auto r = http::Fetch("GET", replicas_[i]->Url("/hafab/v1/replica"), "", {}, 2s);
    if (!r.ok() || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  Result<http::Response> Configure(int i, const std::string& config) {
    return http::Fetch("PUT", replicas_[i]->Url("/hafab/v1/replica"), config, {}, 5s);
  }
  Result<http::Response> Put(int i, const std::string& key, const std::string& value) {
    return http::Fetch("PUT", replicas_[i]->Url("/kv/" + key), value, {}, 5s);
  }
  int PutStatus(int i, const std::string& key, const std::string& value) {
    auto r = Put(i, key, value);
    return r.ok() ? r->status : -1;
  }
  // The value of `key` on replica i, "<404>" when absent.
  std::string Get(int i, const std::string& key) {
    auto r = http::Fetch("GET", replicas_[i]->Url("/kv/" + key), "", {}, 2s);
    if (!r.ok()) return "<" + r.status().ToString() + ">";
    return r->status == 200 ? r->body : "<" + std::to_string(r->status) + ">";
  }

  // Writes `count` keys with 4 concurrent clients to replica i; returns what was acked.
  std::map<std::string, std::string> WriteMany(int i, int count, const std::string& prefix) {
    std::mutex mu;
    std::map<std::string, std::string> acked;
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&, w] {
        for (int n = w; n < count; n += 4) {
          std::string key = prefix + std::to_string(n);
          std::string value = "v" + std::to_string(n) + std::string(n % 40, '.');
          if (PutStatus(i, key, value) == 200) {
            std::lock_guard lock(mu);
            acked[key] = value;
          }
        }
      });
    }
    for (auto& t : writers) t.join();
    return acked;
  }

  std::string dir_;
  std::vector<uint16_t> ports_;
  std::unique_ptr<AppProcess> replicas_[kReplicas];
};

TEST_F(KvdReplicationTest, AcknowledgesWithAQuorumAndNothingWithoutOne) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_EQ(PutStatus(0, "a", "1"), 200);
  // One secondary down: the other and the primary are a quorum.
  ASSERT_NO_FATAL_FAILURE(Stop(2));
  ASSERT_EQ(PutStatus(0, "b", "2"), 200);

  // Both down: the write is refused after the bounded wait, and never visible.
  ASSERT_NO_FATAL_FAILURE(Stop(1));
  auto start = std::chrono::steady_clock::now();
  auto refused = Put(0, "c", "3");
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(refused->body.find("not acknowledged: fewer than 2 replicas held it durably within "
                               "1000 ms"),
            std::string::npos)
      << refused->body;
  EXPECT_GE(waited, 1000ms);
  EXPECT_LT(waited, 3000ms);
  EXPECT_EQ(Get(0, "c"), "<404>");

  // One back: writes are acknowledged again, and nothing acknowledged was lost.
  ASSERT_TRUE(StartReplica(1, Config(1, 1, {"primary", "secondary", "secondary"})));
  ASSERT_TRUE(WaitFor([&] { return PutStatus(0, "d", "4") == 200; })) << replicas_[0]->Log();
  for (auto [key, value] : std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}, {"d", "4"}}) {
    EXPECT_EQ(Get(0, key), value);
    EXPECT_TRUE(WaitFor([&] { return Get(1, key) == value; })) << key;
  }
}

TEST_F(KvdReplicationTest, SecondaryRefusesWritesNamingThePrimaryAndServesReads) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto refused = Put(1, "k", "v");
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status, 421);
  EXPECT_EQ(refused->Header("x-hafab-primary"), "kv-0");
  EXPECT_NE(refused->body.find("not the primary: write to kv-0 at " + Address(0)),
            std::string::npos)
      << refused->body;
  ASSERT_EQ(PutStatus(0, "k", "v"), 200);
  EXPECT_TRUE(WaitFor([&] { return Get(1, "k") == "v"; }));
  ASSERT_TRUE(WaitFor([&] { return Status(1).value("state", "") == "streaming"; }))
      << Status(1).dump();
  auto status = Status(1);
  EXPECT_EQ(status["role"], "secondary");
  EXPECT_EQ(status["epoch"], 1);
  EXPECT_EQ(status["primary"], "kv-0");
  // The marker of epoch 1, then k.
  EXPECT_EQ(status["position"], (nlohmann::json{{"epoch", 1}, {"index", 2}}));
  EXPECT_EQ(Status(0)["position"], (nlohmann::json{{"epoch", 1}, {"index", 2}}));
}

TEST_F(KvdReplicationTest, RefusesAnOlderEpochAndExplainsABadConfiguration) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const std::vector<std::string> roles = {"primary", "secondary", "secondary"};
  auto older = Configure(1, Config(1, 0, roles));
  ASSERT_TRUE(older.ok());
  EXPECT_EQ(older->status, 409);
  EXPECT_NE(older->body.find("configuration epoch 0 is older than the applied epoch 1"),
            std::string::npos)
      << older->body;
  auto same = Configure(1, Config(1, 1, roles));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->status, 200);
  EXPECT_EQ(nlohmann::json::parse(same->body)["role"], "secondary");
  std::string bad_role = Config(1, 2, roles);
  bad_role.replace(bad_role.find("\"secondary\""), 11, "\"leader\"");
  for (auto [body, names] : std::vector<std::pair<std::string, std::string>>{
           {"{\"instance\": ", "configuration: not valid JSON"},
           {bad_role, "replicas[1].role: 'leader' is not one of primary, secondary, building"},
           {Config(1, 2, roles, 5), "quorum: must be an integer from 1 to the 3"},
           {Config(2, 2, roles), "instance: this replica is kv-1, not kv-2"}}) {
    auto r = Configure(1, body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_NE(r->body.find(names), std::string::npos) << r->body;
  }
  EXPECT_EQ(Status(1)["epoch"], 1);
}

TEST_F(KvdReplicationTest, APromotedSecondaryHasEveryAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto acked = WriteMany(0, 60, "before-");
  ASSERT_EQ(acked.size(), 60u);
  ASSERT_NO_FATAL_FAILURE(Stop(0));
  const std::vector<std::string> roles = {"secondary", "primary", "secondary"};
  for (int i : {2, 1}) {
    auto r = Configure(i, Config(i, 2, roles));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
  }
  ASSERT_TRUE(WaitFor([&] {
    auto s = Status(1);
    return s.value("role", "") == "primary" && s.value("epoch", 0) == 2;
  })) << Status(1).dump();
  for (const auto& [key, value] : acked) EXPECT_EQ(Get(1, key), value) << key;
  ASSERT_EQ(PutStatus(1, "after", "x"), 200);
  EXPECT_TRUE(WaitFor([&] { return Get(2, "after") == "x"; }));
  auto refused = Put(2, "k", "v");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->Header("x-hafab-primary"), "kv-1");
  // Its answers name the epoch it serves now, not the one it started with.
  EXPECT_EQ(refused->Header("x-hafab-epoch"), "2");
}

// The old primary wrote records nobody else has (its secondaries were gone, so they were
// never acknowledged); after the failover it follows the new primary: that tail is moved
// aside into kvd.log.diverged-epoch-1 and its state becomes the new primary's.
TEST_F(KvdReplicationTest, AnOldPrimaryRejoinsAndMovesItsUnacknowledgedTailAside) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto acked = WriteMany(0, 20, "k");
  ASSERT_EQ(acked.size(), 20u);
  ASSERT_NO_FATAL_FAILURE(Stop(1));
  ASSERT_NO_FATAL_FAILURE(Stop(2));
  std::vector<std::thread> isolated;
  for (std::string key : {"t1", "t2", "t3"}) {
    isolated.emplace_back([this, key] { EXPECT_EQ(PutStatus(0, key, "lost"), 503); });
  }
  for (auto& t : isolated) t.join();
  const uint64_t old_last = Status(0)["position"]["index"];

  const std::vector<std::string> roles = {"secondary", "primary", "secondary"};
  ASSERT_TRUE(StartReplica(2, Config(2, 2, roles)));
  ASSERT_TRUE(StartReplica(1, Config(1, 2, roles)));
  ASSERT_TRUE(WaitFor([&] { return Status(1).value("role", "") == "primary"; }))
      << Status(1).dump();
  ASSERT_EQ(PutStatus(1, "n1", "new"), 200);

  auto r = Configure(0, Config(0, 2, roles));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(WaitFor([&] {
    auto s = Status(0);
    return s.value("state", "") == "streaming" && s["position"] == Status(1)["position"];
  })) << Status(0).dump()
      << Status(1).dump() << replicas_[0]->Log();

  const std::string aside = DataDir(0) + "/kvd.log.diverged-epoch-1";
  ASSERT_TRUE(std::filesystem::exists(aside)) << replicas_[0]->Log();
  auto tail = DecodeKvRecords(ReadFile(aside));
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ(tail->back().position, (KvPosition{1, old_last}));
  for (const auto& record : *tail) EXPECT_EQ(record.value, "lost");

  acked["n1"] = "new";
  for (std::string key : {"t1", "t2", "t3"}) acked[key] = "<404>";
  for (const auto& [key, value] : acked) {
    EXPECT_EQ(Get(1, key), value) << key;
    EXPECT_EQ(Get(0, key), value) << key;
  }
  EXPECT_EQ(Put(0, "k", "v")->Header("x-hafab-primary"), "kv-1");
  EXPECT_EQ(Configure(0, Config(0, 1, {"primary", "secondary", "secondary"}))->status, 409);
}

// A primary sends records before its own fsync: a crash can take records from its log that
// its secondaries hold (never acknowledged: the primary acknowledges only what it holds
// durably). Restarted as primary of the same epoch, it gives their positions to other
// records: the secondaries must move them aside, also one that was away during that run
// and comes back after the next restart, when the primary's log is longer than its own.
// The lost tail is simulated by cutting the primary's log back while it is down.
TEST_F(KvdReplicationTest, APrimaryThatLostItsTailMakesItsSecondariesMoveItAside) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_EQ(WriteMany(0, 20, "k").size(), 20u);
  for (int i : {1, 2}) {
    ASSERT_TRUE(WaitFor([&] { return Status(i)["position"] == Status(0)["position"]; }))
        << Status(i).dump();
  }
  ASSERT_NO_FATAL_FAILURE(Stop(0));
  ASSERT_NO_FATAL_FAILURE(Stop(2));
  const std::string log = DataDir(0) + "/kvd.log";
  auto records = DecodeKvRecords(ReadFile(log));
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  const std::vector<KvRecord> lost(records->end() - 3, records->end());
  {
    auto opened = KvLog::Open(log, nullptr);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ASSERT_TRUE((*opened)->TruncateAfter(lost.front().position.index - 1, dir_ + "/cut").ok());
  }
  auto moved_lost_aside = [&](int i) {
    ASSERT_TRUE(WaitFor([&] { return Status(i)["position"] == Status(0)["position"]; }))
        << Status(i).dump() << replicas_[i]->Log();
    auto aside = DecodeKvRecords(ReadFile(DataDir(i) + "/kvd.log.diverged-epoch-1"));
    ASSERT_TRUE(aside.ok()) << aside.status().ToString() << replicas_[i]->Log();
    ASSERT_EQ(aside->size(), lost.size());
    for (size_t n = 0; n < lost.size(); ++n) {
      EXPECT_EQ((*aside)[n].position, lost[n].position);
      EXPECT_EQ((*aside)[n].key, lost[n].key);
    }
    // Its state is the primary's: the restarted primary's marker took the first lost position.
    for (const auto& record : lost) EXPECT_EQ(Get(i, record.key), "<404>") << record.key;
  };

  // kv-0 restarts as primary of epoch 1, without kv-2: kv-1 moves the lost tail aside.
  const std::vector<std::string> roles = {"primary", "secondary", "secondary"};
  ASSERT_TRUE(StartReplica(0, Config(0, 1, roles)));
  ASSERT_TRUE(WaitFor([&] { return Status(0).value("role", "") == "primary"; }))
      << Status(0).dump() << replicas_[0]->Log();
  auto acked = WriteMany(0, 10, "second-");
  ASSERT_EQ(acked.size(), 10u);
  ASSERT_NO_FATAL_FAILURE(moved_lost_aside(1));
  // It restarts once more, then kv-2 comes back: its log is shorter than kv-0's, and its
  // last records are still the lost ones.
  ASSERT_NO_FATAL_FAILURE(Stop(0));
  ASSERT_TRUE(StartReplica(0, Config(0, 1, roles)));
  ASSERT_TRUE(WaitFor([&] { return Status(0).value("role", "") == "primary"; }))
      << Status(0).dump() << replicas_[0]->Log();
  ASSERT_TRUE(StartReplica(2, Config(2, 1, roles)));
  ASSERT_EQ(PutStatus(0, "after", "x"), 200);
  ASSERT_NO_FATAL_FAILURE(moved_lost_aside(2));
  acked["after"] = "x";
  for (int i : {1, 2}) {
    for (const auto& [key, value] : acked)
      EXPECT_TRUE(WaitFor([&] { return Get(i, key) == value; })) << key;
  }
}

TEST_F(KvdReplicationTest, ABuildingReplicaCopiesThePrimaryFromAnEmptyDirectory) {
  const std::vector<std::string> roles = {"primary", "secondary", "building"};
  for (int i : {0, 1}) ASSERT_TRUE(StartReplica(i, Config(i, 1, roles)));
  auto acked = WriteMany(0, 200, "key-");
  ASSERT_EQ(acked.size(), 200u);
  ASSERT_TRUE(StartReplica(2, Config(2, 1, roles)));
  ASSERT_TRUE(WaitFor([&] { return Status(2).value("state", "") == "streaming"; }))
      << Status(2).dump();
  EXPECT_EQ(Status(2)["role"], "building");
  EXPECT_EQ(Status(2)["position"], Status(0)["position"]);
  for (const auto& [key, value] : acked) EXPECT_EQ(Get(2, key), value) << key;
  // The fabric makes it a secondary with a new configuration of the same epoch.
  const std::vector<std::string> promoted = {"primary", "secondary", "secondary"};
  for (int i = 0; i < kReplicas; ++i) ASSERT_EQ(Configure(i, Config(i, 1, promoted))->status, 200);
  EXPECT_EQ(Status(2)["role"], "secondary");
  ASSERT_NO_FATAL_FAILURE(Stop(1));
  EXPECT_EQ(PutStatus(0, "counted", "yes"), 200);  // kv-2 now counts in the quorum
}

TEST_F(KvdReplicationTest, ALogWrittenBeforePositionsReplaysAndReplicates) {
  std::filesystem::create_directories(DataDir(0));
  {
    std::ofstream out(DataDir(0) + "/kvd.log", std::ios::binary);
    for (int i = 0; i < 5; ++i) out << EncodeKvRecord("old-" + std::to_string(i), "v");
  }
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  EXPECT_NE(replicas_[0]->Log().find("5 of them in the format without positions"),
            std::string::npos)
      << replicas_[0]->Log();
  // Five records in epoch 0, then the marker of epoch 1.
  EXPECT_EQ(Status(0)["position"], (nlohmann::json{{"epoch", 1}, {"index", 6}}));
  for (int i = 0; i < 5; ++i) {
    std::string key = "old-" + std::to_string(i);
    EXPECT_EQ(Get(0, key), "v");
    EXPECT_TRUE(WaitFor([&] { return Get(2, key) == "v"; })) << key;
  }
}

}  // namespace
}  // namespace hafab::apps
