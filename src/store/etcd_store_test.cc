// EtcdStore against real etcd members on loopback: the Store conformance suite on one
// member, quorum and failover tests on three, and the pieces that need no etcd (URL
// parsing, base64, the store URL factory).
#include "store/etcd_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/etcd_test_cluster.h"
#include "store/open.h"
#include "store/store_conformance.h"
#include "testing/fake_clock.h"
#include "testing/wait.h"

namespace hafab::store {
namespace {

using nlohmann::json;
using testing::EtcdTestCluster;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::StoreConformanceTest;
using testing::StoreHarness;

bool HaveEtcd() { return !EtcdTestCluster::FindBinary().empty(); }

#define SKIP_WITHOUT_ETCD()                                       \
  if (!HaveEtcd())                                                \
  GTEST_SKIP() << "no etcd binary: install Debian's etcd-server " \
                  "(scripts/setup.sh) or set HAFAB_ETCD_BINARY"

// --- No etcd needed --------------------------------------------------------------------------

TEST(EtcdUrl, ParsesEndpointListWithDefaultPortAndIpv6) {
  auto eps = ParseEtcdUrl("etcd://h1:2379,h2,10.0.0.3:12379,[::1]:2380/");
  ASSERT_TRUE(eps.ok()) << eps.status().ToString();
  ASSERT_EQ(eps->size(), 4u);
  EXPECT_EQ((*eps)[0], (EtcdEndpoint{"h1", 2379}));
  EXPECT_EQ((*eps)[1], (EtcdEndpoint{"h2", 2379}));
  EXPECT_EQ((*eps)[2], (EtcdEndpoint{"10.0.0.3", 12379}));
  EXPECT_EQ((*eps)[3], (EtcdEndpoint{"::1", 2380}));
  EXPECT_EQ((*eps)[3].Name(), "[::1]:2380");
}

TEST(EtcdUrl, RejectsBadUrlsNamingThePart) {
  for (auto [url, why] :
       {std::pair{"http://h1:2379", "etcd://"}, std::pair{"etcd://", "no endpoint"},
        std::pair{"etcd://h1:,h2", "empty port"}, std::pair{"etcd://h1:70000", "70000"},
        std::pair{"etcd://h1:2x", "2x"}, std::pair{"etcd://h1,,h2", "empty endpoint"},
        std::pair{"etcd://h1/path", "'/'"}, std::pair{"etcd://h1:1,h1:1", "listed twice"},
        std::pair{"etcd://[::1", "unclosed"}}) {
    auto eps = ParseEtcdUrl(url);
    ASSERT_FALSE(eps.ok()) << url;
    EXPECT_EQ(eps.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(eps.status().message(), HasSubstr(why)) << url;
    EXPECT_THAT(eps.status().message(), HasSubstr(url)) << "the error names the URL";
  }
}

TEST(EtcdBase64, RoundTripsEveryLengthAndByte) {
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode(std::string(1, '\0')), "AA==");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    std::string bytes = all.substr(0, n);
    auto back = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, bytes) << n;
  }
  EXPECT_FALSE(Base64Decode("Zm9v!").ok());
  EXPECT_FALSE(Base64Decode("Z").ok());
}

TEST(EtcdPrefix, RangeEndIncrementsTheLastByteBelowFf) {
  EXPECT_EQ(PrefixRangeEnd("a/"), "a0");
  EXPECT_EQ(PrefixRangeEnd("p\xff"), "q");
  EXPECT_EQ(PrefixRangeEnd("p\xfe"), "p\xff");
  EXPECT_EQ(PrefixRangeEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(PrefixRangeEnd(""), std::string(1, '\0'));
}

TEST(StoreOpen, SqliteUrlsAndPlainPaths) {
  hafab::testing::FakeClock clock;
  std::string dir = ::testing::TempDir() + "/hafab-open-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  for (std::string url : {"sqlite:" + dir + "/a.db", dir + "/b.db", std::string("sqlite::memory:"),
                          std::string(":memory:")}) {
    auto st = Open(url, clock);
    ASSERT_TRUE(st.ok()) << url << ": " << st.status().ToString();
    EXPECT_TRUE((*st)->Put("k", "v").ok()) << url;
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/a.db"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/b.db"));
  std::filesystem::remove_all(dir);
}

TEST(StoreOpen, RejectsUnknownSchemesAndEmptyUrls) {
  hafab::testing::FakeClock clock;
  for (const char* url : {"", "zk://h1:2181", "sqlite:", "etcd://h1:x"}) {
    auto st = Open(url, clock);
    ASSERT_FALSE(st.ok()) << url;
    EXPECT_EQ(st.status().code(), StatusCode::kInvalidArgument) << url;
  }
  EXPECT_THAT(Open("zk://h1:2181", clock).status().message(),
              HasSubstr("sqlite:PATH, a file path, or etcd://"));
}

TEST(EtcdStoreOpen, NothingListeningIsUnavailableNamingEveryEndpointWithinTheDeadline) {
  // Two ports nobody listens on (bound and closed, not listening).
  EtcdStore::Options options;
  options.request_timeout = std::chrono::milliseconds(400);
  Clock& clock = RealClock();
  TimePoint start = clock.Now();
  auto st = EtcdStore::Open("etcd://127.0.0.1:1,127.0.0.1:2", options);
  Duration took = clock.Now() - start;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(st.status().message(), HasSubstr("127.0.0.1:1 ("));
  EXPECT_THAT(st.status().message(), HasSubstr("127.0.0.1:2 ("));
  EXPECT_LT(took, std::chrono::milliseconds(400) + std::chrono::milliseconds(300));
}

// --- The conformance suite on one member --------------------------------------------------------

// Starts a cluster that lives until the process exits (the caller registers its delete
// with atexit); nullptr, with a test failure, when it does not start.
EtcdTestCluster* StartShared(const EtcdTestCluster::Options& options) {
  auto started = EtcdTestCluster::Start(options);
  if (!started.ok()) {
    ADD_FAILURE() << "starting etcd: " << started.status().ToString();
    return nullptr;
  }
  return started->release();
}

// One member for the whole binary (ctest runs each test in its own process: one start each).
EtcdTestCluster* SharedMember() {
  static EtcdTestCluster* cluster = [] {
    EtcdTestCluster::Options options;
    options.members = 1;
    options.heartbeat_ms = 10;  // one voter: no election to flap; starts in ~0.3 s
    options.election_ms = 100;
    std::atexit([] { delete SharedMember(); });
    return StartShared(options);
  }();
  return cluster;
}

// Empties the member: revokes every lease and deletes every key (its revision goes on).
Status Wipe(const EtcdTestCluster& cluster) {
  EtcdClient client(cluster.Endpoints(), {});
  auto leases = client.Call("/v3/lease/leases", json::object(), EtcdClient::Retry::kIdempotent);
  if (!leases.ok()) return leases.status();
  for (const json& lease : leases->value("leases", json::array())) {
    auto revoked = client.Call("/v3/lease/revoke", {{"ID", lease.value("ID", std::string("0"))}},
                               EtcdClient::Retry::kIdempotent);
    if (!revoked.ok() && revoked.status().code() != StatusCode::kNotFound) return revoked.status();
  }
  json all = {{"key", Base64Encode(std::string(1, '\0'))},
              {"range_end", Base64Encode(std::string(1, '\0'))}};
  auto deleted = client.Call("/v3/kv/deleterange", all, EtcdClient::Retry::kIdempotent);
  return deleted.ok() ? Status::Ok() : deleted.status();
}

// Three members for the whole binary, only for the opt-in ThreeMembers harness.
EtcdTestCluster* SharedThreeMembers() {
  static EtcdTestCluster* cluster = [] {
    EtcdTestCluster::Options options;
    options.members = 3;
    std::atexit([] { delete SharedThreeMembers(); });
    return StartShared(options);
  }();
  return cluster;
}

StoreHarness EtcdHarness(std::string name, EtcdTestCluster* (*cluster_of)()) {
  StoreHarness h;
  h.name = std::move(name);
  h.make_fresh = [cluster_of]() -> std::unique_ptr<Store> {
    EtcdTestCluster* cluster = cluster_of();
    if (cluster == nullptr) return nullptr;
    Status wiped = Wipe(*cluster);
    if (!wiped.ok()) {
      ADD_FAILURE() << "emptying etcd: " << wiped.ToString();
      return nullptr;
    }
    auto st = EtcdStore::Open(cluster->Url());
    if (!st.ok()) {
      ADD_FAILURE() << "opening " << cluster->Url() << ": " << st.status().ToString();
      return nullptr;
    }
    return std::move(st).value();
  };
  // etcd's leases run on real time.
  h.advance_time = [](Duration d) { std::this_thread::sleep_for(d); };
  h.min_lease_ttl = std::chrono::seconds(1);
  h.settle_timeout = std::chrono::seconds(10);
  h.quiet_period = std::chrono::milliseconds(100);
  return h;
}

// SingleMember always; ThreeMembers too when HAFAB_ETCD_CONFORMANCE_3=1 (each test process
// then starts three members, which makes the suite about twice as long).
std::vector<StoreHarness> EtcdHarnesses() {
  if (!HaveEtcd()) return {};  // EtcdPresence.Binary says why
  std::vector<StoreHarness> harnesses = {EtcdHarness("SingleMember", &SharedMember)};
  const char* three = std::getenv("HAFAB_ETCD_CONFORMANCE_3");
  if (three != nullptr && std::string(three) == "1") {
    harnesses.push_back(EtcdHarness("ThreeMembers", &SharedThreeMembers));
  }
  return harnesses;
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreConformanceTest);
INSTANTIATE_TEST_SUITE_P(Etcd, StoreConformanceTest, ::testing::ValuesIn(EtcdHarnesses()),
                         testing::StoreHarnessName);

TEST(EtcdPresence, Binary) {
  SKIP_WITHOUT_ETCD();
  EXPECT_NE(SharedMember(), nullptr);
}

// --- etcd specifics on one member -------------------------------------------------------------

class EtcdSingleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_ETCD();
    cluster_ = SharedMember();
    ASSERT_NE(cluster_, nullptr);
    ASSERT_TRUE(Wipe(*cluster_).ok());
    auto st = EtcdStore::Open(cluster_->Url());
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    store_ = std::move(st).value();
  }
  EtcdTestCluster* cluster_ = nullptr;
  std::unique_ptr<EtcdStore> store_;
};

TEST_F(EtcdSingleTest, DuplicateKeyErrorNamesTheKeyAndBranch) {
  Txn txn;
  txn.failure = {Op::Put("dup/k", "1"), Op::DeletePrefix("dup/")};
  txn.compares = {Compare::Exists("nothing")};
  auto r = store_->Commit(txn);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("\"dup/k\" is both put and deleted in the failure"));
}

TEST_F(EtcdSingleTest, SubSecondLeaseTtlIsRoundedUpToASecond) {
  auto lease = store_->GrantLease(std::chrono::milliseconds(250));
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EtcdClient client(cluster_->Endpoints(), {});
  auto ttl = client.Call("/v3/lease/timetolive", {{"ID", std::to_string(*lease)}},
                         EtcdClient::Retry::kIdempotent);
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  EXPECT_EQ(ttl->value("grantedTTL", std::string()), "1") << ttl->dump();
}

TEST_F(EtcdSingleTest, LeaseWithinTheFloorIsNotRaised) {
  ASSERT_TRUE(store_->GrantLease(std::chrono::seconds(1)).ok());
  EXPECT_EQ(store_->RaisedLeaseTtl(), Duration::zero());
}

// etcd raises a TTL under 1.5 x its election timeout (here 2 s: 3 s); the store says so.
TEST(EtcdLeaseFloor, RaisedTtlIsReported) {
  SKIP_WITHOUT_ETCD();
  EtcdTestCluster::Options options;
  options.heartbeat_ms = 200;
  options.election_ms = 2000;
  auto cluster = EtcdTestCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  auto store = EtcdStore::Open((*cluster)->Url());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->GrantLease(std::chrono::seconds(1)).ok());
  EXPECT_EQ((*store)->RaisedLeaseTtl(), std::chrono::seconds(3));
}

TEST_F(EtcdSingleTest, WatchFromACompactedRevisionIsAConflict) {
  Revision first = *store_->Put("c/a", "1");
  Revision latest = *store_->Put("c/a", "2");
  EtcdClient client(cluster_->Endpoints(), {});
  ASSERT_TRUE(client
                  .Call("/v3/kv/compaction", {{"revision", std::to_string(latest)}},
                        EtcdClient::Retry::kIdempotent)
                  .ok());
  auto w = store_->Watch("c/", first);
  Status status = w.ok() ? Status::Ok() : w.status();
  if (w.ok()) {
    auto batch = (*w)->Next(std::chrono::seconds(5));
    status =
        batch.ok()
            ? Status::Internal("got a batch of " + std::to_string(batch->events.size()) + " events")
            : batch.status();
  }
  EXPECT_EQ(status.code(), StatusCode::kConflict) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("compacted; oldest is " + std::to_string(latest)));
}

TEST_F(EtcdSingleTest, ClosingTheStoreEndsItsWatchers) {
  auto w = store_->Watch("closing/", 0);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::atomic<bool> returned{false};
  Status result;
  std::thread waiter([&] {
    auto batch = (*w)->Next(std::chrono::seconds(60));
    result = batch.ok() ? Status::Internal("Next returned a batch") : batch.status();
    returned = true;
  });
  store_.reset();
  EXPECT_TRUE(hafab::testing::WaitFor([&] { return returned.load(); }, std::chrono::seconds(5)))
      << "Next still blocked after the store closed";
  waiter.join();
  EXPECT_EQ(result.code(), StatusCode::kUnavailable);
  EXPECT_THAT(result.message(), HasSubstr("store closed"));
}

TEST_F(EtcdSingleTest, StatsCountCallsAndNameTheEndpoint) {
  ASSERT_TRUE(store_->Put("s", "1").ok());
  EtcdClientStats stats = store_->Stats();
  EXPECT_GE(stats.calls, 2);  // the status check of Open, the put
  EXPECT_EQ(stats.endpoint, cluster_->Endpoint(0).Name());
  EXPECT_EQ(stats.failovers, 0);
}

// --- Three members: quorum and failover ---------------------------------------------------------

class EtcdClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_ETCD();
    EtcdTestCluster::Options options;
    options.members = 3;
    auto started = EtcdTestCluster::Start(options);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    cluster_ = std::move(started).value();
  }

  // A store whose preferred endpoint is `first` (-1: the cluster's order).
  std::unique_ptr<EtcdStore> OpenStore(Duration request_timeout, int first = -1) {
    EtcdStore::Options options;
    options.request_timeout = request_timeout;
    auto st =
        EtcdStore::Open(first < 0 ? cluster_->Url() : cluster_->UrlStartingWith(first), options);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return st.ok() ? std::move(st).value() : nullptr;
  }

  // A member that is not the leader. Killing a follower needs no election, so writes go on
  // at once; killing the leader makes etcd hold the writes a follower accepted meanwhile for
  // its own request timeout (EachMemberKilledInTurn covers that).
  int Follower() {
    int leader = -1;
    TimePoint give_up = RealClock().Now() + std::chrono::seconds(10);
    while ((leader = cluster_->Leader()) < 0 && RealClock().Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval
    }
    EXPECT_GE(leader, 0) << "no leader";
    return (leader + 1) % cluster_->size();
  }

  std::unique_ptr<EtcdTestCluster> cluster_;
};

Txn FiveKeys(const std::string& prefix, const std::string& value) {
  Txn txn;
  for (int i = 0; i < 5; ++i) txn.success.push_back(Op::Put(prefix + std::to_string(i), value));
  return txn;
}

TEST_F(EtcdClusterTest, WithOneMemberStoppedWritesCommit) {
  // Stop the member the client uses, so the commit also has to move on.
  int follower = Follower();
  auto store = OpenStore(std::chrono::seconds(10), follower);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("q/before", "1").ok());
  int used = cluster_->MemberOf(store->Stats().endpoint);
  ASSERT_EQ(used, follower);
  cluster_->Kill(used);
  auto r = store->Commit(FiveKeys("q/k", "x"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->succeeded);
  auto range = store->Range("q/k");
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(range->kvs.size(), 5u);
  EXPECT_NE(store->Stats().endpoint, cluster_->Endpoint(used).Name());
  EXPECT_GE(store->Stats().failovers, 1);
}

TEST_F(EtcdClusterTest, WithTwoStoppedCommitFailsClearlyAndNothingPartialAppearsAfterRecovery) {
  const Duration timeout = std::chrono::seconds(2);
  auto store = OpenStore(timeout);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("q/before", "1").ok());
  cluster_->Kill(1);
  cluster_->Kill(2);
  Clock& clock = RealClock();
  TimePoint start = clock.Now();
  auto r = store->Commit(FiveKeys("q/k", "x"));
  Duration took = clock.Now() - start;
  ASSERT_FALSE(r.ok()) << "a commit without a quorum must not succeed";
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(r.status().message(), HasSubstr(cluster_->Endpoint(i).Name()))
        << "the error names every endpoint";
  }
  EXPECT_LT(took, timeout + std::chrono::milliseconds(500)) << "within its deadline";
  std::printf("commit without a quorum, after %.0f ms: %s\n", ToMillis(took),
              r.status().ToString().c_str());
  // Reads need a quorum too (they are linearizable): also Unavailable, not stale data.
  EXPECT_EQ(store->Get("q/before").status().code(), StatusCode::kUnavailable);

  ASSERT_TRUE(cluster_->Restart(1).ok());
  ASSERT_TRUE(cluster_->Restart(2).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster_->WaitHealthy(i, std::chrono::seconds(20)).ok());
  auto after = OpenStore(std::chrono::seconds(10));
  ASSERT_NE(after, nullptr);
  auto range = after->Range("q/k");
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  // The answer was lost, so the transaction may have applied (if the old leader had logged
  // it and won again) — but all of it or none of it, in one revision.
  if (!range->kvs.empty()) {
    ASSERT_EQ(range->kvs.size(), 5u) << "a partial transaction is visible";
    for (const KeyValue& kv : range->kvs) EXPECT_EQ(kv.mod_revision, range->kvs[0].mod_revision);
  }
  EXPECT_TRUE(after->Put("q/after", "1").ok());
  EXPECT_TRUE(after->Get("q/before").ok());
}

TEST_F(EtcdClusterTest, ClientAndWatchFailOverWhenTheirEndpointDies) {
  int follower = Follower();
  auto store = OpenStore(std::chrono::seconds(10), follower);
  ASSERT_NE(store, nullptr);
  Revision start = *store->Put("f/0", "0");
  auto w = store->Watch("f/", start);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto first = (*w)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->events.size(), 1u);
  // Both the calls and the watch stream use the preferred endpoint; kill it.
  int used = cluster_->MemberOf(store->Stats().endpoint);
  ASSERT_EQ(used, follower);
  cluster_->Kill(used);
  for (int i = 1; i <= 3; ++i) {
    auto put = store->Put("f/" + std::to_string(i), std::to_string(i));
    ASSERT_TRUE(put.ok()) << put.status().ToString();
  }
  EXPECT_NE(store->Stats().endpoint, cluster_->Endpoint(used).Name());
  // The watch resumes on a live member after the last event it delivered: no gap, no
  // duplicate.
  std::vector<std::string> seen;
  TimePoint give_up = RealClock().Now() + std::chrono::seconds(10);
  while (seen.size() < 3 && RealClock().Now() < give_up) {
    auto batch = (*w)->Next(std::chrono::seconds(1));
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    for (const Event& e : batch->events) seen.push_back(e.kv.key + "=" + e.kv.value);
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("f/1=1", "f/2=2", "f/3=3"));
  EXPECT_EQ(store->Stats().watch_resumes, 1);
  auto quiet = (*w)->Next(std::chrono::milliseconds(200));
  ASSERT_TRUE(quiet.ok());
  EXPECT_TRUE(quiet->events.empty());
}

TEST_F(EtcdClusterTest, WatchIsUnavailableWhenNoEndpointServesItForTheBudget) {
  // A client that knows only one member: when it dies there is nowhere to resume.
  EtcdStore::Options options;
  options.request_timeout = std::chrono::seconds(1);
  auto st = EtcdStore::Open("etcd://" + cluster_->Endpoint(1).Name(), options);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto w = (*st)->Watch("u/", 0);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  cluster_->Kill(1);
  Clock& clock = RealClock();
  TimePoint start = clock.Now();
  Status status;
  while (clock.Now() - start < std::chrono::seconds(10)) {
    auto batch = (*w)->Next(std::chrono::milliseconds(200));
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
    EXPECT_TRUE(batch->events.empty());
  }
  Duration took = clock.Now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(cluster_->Endpoint(1).Name()));
  EXPECT_GE(took, std::chrono::seconds(1)) << "gave up before its budget";
  EXPECT_LT(took, std::chrono::seconds(3)) << "kept trying well past its budget";
  auto again = (*w)->Next(std::chrono::milliseconds(1));
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable) << "a broken watcher stays broken";
}

TEST_F(EtcdClusterTest, WatchOnAMemberThatLostItsQuorumDoesNotStallSilently) {
  // The watch's member stays up but loses both peers: it has no leader, so it cannot know
  // what it misses. etcd cancels watches that asked for a leader (after ~4 election
  // timeouts); the watcher then finds no other endpoint and reports Unavailable.
  EtcdStore::Options options;
  options.request_timeout = std::chrono::seconds(1);
  auto st = EtcdStore::Open(cluster_->UrlStartingWith(0), options);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto w = (*st)->Watch("p/", 0);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  cluster_->Kill(1);
  cluster_->Kill(2);
  Clock& clock = RealClock();
  TimePoint start = clock.Now();
  Status status;
  while (clock.Now() - start < std::chrono::seconds(15)) {
    auto batch = (*w)->Next(std::chrono::milliseconds(200));
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
  }
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  std::printf("watch on a member without quorum: Unavailable after %.0f ms: %s\n",
              ToMillis(clock.Now() - start), status.ToString().c_str());
}

TEST_F(EtcdClusterTest, EachMemberKilledInTurnLosesNoAcknowledgedWrite) {
  // A commit that a follower accepted while the leader died waits for etcd's own request
  // timeout (5 s + 2 elections); a shorter budget lets the writer move on sooner.
  auto store = OpenStore(std::chrono::seconds(2));
  ASSERT_NE(store, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::atomic<int> unavailable{0};
  std::vector<int> acked_ids;  // written by the writer, read after join
  Duration longest_stall{};    // likewise: the longest time between two acknowledged writes
  std::thread writer([&] {
    TimePoint last_ack = RealClock().Now();
    for (int i = 0; !stop.load(); ++i) {
      Txn txn;
      txn.compares = {Compare::Missing("w/" + std::to_string(i))};
      txn.success = {Op::Put("w/" + std::to_string(i), "v")};
      auto r = store->Commit(txn);
      if (r.ok()) {
        TimePoint now = RealClock().Now();
        longest_stall = std::max(longest_stall, now - last_ack);
        last_ack = now;
        acked_ids.push_back(i);
        ++acked;
      } else if (r.status().code() == StatusCode::kUnavailable) {
        ++unavailable;  // answer lost: may or may not have applied
      } else {
        ADD_FAILURE() << r.status().ToString();
        return;
      }
    }
  });
  // Let some writes through, then kill every member once in turn, waiting for the
  // cluster to heal in between, with the writer running.
  TimePoint give_up = RealClock().Now() + std::chrono::seconds(30);
  auto wait_acked = [&](int n) {
    while (acked.load() < n && RealClock().Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval
    }
  };
  wait_acked(20);
  for (int m = 0; m < 3; ++m) {
    cluster_->Kill(m);
    int before = acked.load();
    wait_acked(before + 20);
    ASSERT_TRUE(cluster_->Restart(m).ok());
    ASSERT_TRUE(cluster_->WaitHealthy(m, std::chrono::seconds(20)).ok());
  }
  stop = true;
  writer.join();
  int n = acked.load();
  ASSERT_GE(n, 60) << "the writer made too little progress";
  auto range = store->Range("w/");
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  std::set<std::string> keys;
  for (const KeyValue& kv : range->kvs) keys.insert(kv.key);
  for (int i : acked_ids) {
    EXPECT_TRUE(keys.count("w/" + std::to_string(i))) << "acknowledged write w/" << i << " lost";
  }
  std::printf("member kills: %d writes acknowledged, %d answers lost, longest stall %.0f ms\n", n,
              unavailable.load(), ToMillis(longest_stall));
}

}  // namespace
}  // namespace hafab::store
