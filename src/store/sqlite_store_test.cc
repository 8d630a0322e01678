#include "store/sqlite_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "store/store_conformance.h"
#include "testing/fake_clock.h"

namespace hafab::store {
namespace {

using ::testing::HasSubstr;
using testing::StoreConformanceTest;
using testing::StoreHarness;

// A directory under TMPDIR, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hafab-store-XXXXXX").string();
    HAFAB_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

TempDir& SharedTempDir() {
  static TempDir* dir = new TempDir();  // removed by an atexit hook below
  static bool registered = [] {
    std::atexit([] { delete dir; });
    return true;
  }();
  (void)registered;
  return *dir;
}

StoreHarness SqliteHarness(std::string name, bool in_memory) {
  auto clock = std::make_shared<hafab::testing::FakeClock>();
  StoreHarness h;
  h.name = std::move(name);
  h.make_fresh = [clock, in_memory]() -> std::unique_ptr<Store> {
    // Process-wide: gtest evaluates the parameter generator once per TEST_P.
    static std::atomic<int> files{0};
    std::string path = in_memory
                           ? ":memory:"
                           : SharedTempDir().File("conformance-" + std::to_string(++files) + ".db");
    auto store = SqliteStore::Open(path, *clock);
    HAFAB_CHECK(store.ok(), store.status().ToString());
    return std::move(store).value();
  };
  h.advance_time = [clock](Duration d) { clock->Advance(d); };
  h.min_lease_ttl = std::chrono::seconds(1);
  return h;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(SqliteHarness("File", false),
                                           SqliteHarness("Memory", true)),
                         testing::StoreHarnessName);

// --- SQLite-specific behaviour --------------------------------------------------------

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> Open(SqliteStore::Options opts = {}) {
    auto store = SqliteStore::Open(path_, clock_, opts);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  TempDir dir_;
  std::string path_ = dir_.File("store.db");
  hafab::testing::FakeClock clock_;
};

TEST_F(SqliteStoreTest, ReopenKeepsKeysRevisionsAndHistory) {
  Revision rev;
  {
    auto store = Open();
    ASSERT_TRUE(store->Put("a", "1").ok());
    ASSERT_TRUE(store->Put("a", "2").ok());
    rev = store->Put("b", "3").value();
  }
  auto store = Open();
  auto kv = store->Get("a");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->value, "2");
  EXPECT_EQ(kv->version, 2);
  EXPECT_EQ(store->Range("")->revision, rev);
  EXPECT_EQ(store->Put("c", "4").value(), rev + 1);
  auto w = store->Watch("", 1);
  ASSERT_TRUE(w.ok());
  auto batch = (*w)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->events.size(), 4u) << "history survives a reopen";
}

TEST_F(SqliteStoreTest, FileIsInWalMode) {
  auto store = Open();
  ASSERT_TRUE(store->Put("a", "1").ok());
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(SqliteStoreTest, ReopenGivesEveryLeaseAFreshFullTtl) {
  LeaseId lease;
  {
    auto store = Open();
    lease = store->GrantLease(std::chrono::seconds(10)).value();
    ASSERT_TRUE(store->Put("node/1", "up", lease).ok());
    clock_.Advance(std::chrono::seconds(9));
  }
  // The controller was down for a long time; the holder still gets one full TTL.
  clock_.Advance(std::chrono::minutes(5));
  auto store = Open();
  clock_.Advance(std::chrono::seconds(9));
  EXPECT_TRUE(store->Get("node/1").ok());
  EXPECT_TRUE(store->KeepAlive(lease).ok());
  clock_.Advance(std::chrono::seconds(11));
  EXPECT_EQ(store->Get("node/1").status().code(), StatusCode::kNotFound);
  auto fresh = store->GrantLease(std::chrono::seconds(1));
  ASSERT_TRUE(fresh.ok());
  EXPECT_GT(*fresh, lease) << "lease ids are not reused";
}

TEST_F(SqliteStoreTest, WatchFromCompactedRevisionIsConflict) {
  SqliteStore::Options opts;
  opts.history_revisions = 5;
  auto store = Open(opts);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(store->Put("k", std::to_string(i)).ok());
  auto w = store->Watch("", 3);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kConflict);
  EXPECT_EQ(w.status().message(), "revision 3 compacted; oldest is 8");
  auto ok = store->Watch("", 8);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto batch = (*ok)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->events.size(), 5u);
}

TEST_F(SqliteStoreTest, WatcherLeftBehindByCompactionGetsConflict) {
  SqliteStore::Options opts;
  opts.history_revisions = 3;
  auto store = Open(opts);
  ASSERT_TRUE(store->Put("k", "0").ok());
  auto w = store->Watch("", 1);
  ASSERT_TRUE(w.ok());
  for (int i = 1; i < 10; ++i) ASSERT_TRUE(store->Put("k", std::to_string(i)).ok());
  auto batch = (*w)->Next(std::chrono::seconds(1));
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kConflict);
  EXPECT_THAT(batch.status().message(), HasSubstr("revision 1 compacted; oldest is 8"));
}

TEST_F(SqliteStoreTest, IdleWatcherIsNotLeftBehindByUnrelatedWrites) {
  SqliteStore::Options opts;
  opts.history_revisions = 3;
  auto store = Open(opts);
  auto w = store->Watch("mine/", 0);
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store->Put("other", std::to_string(i)).ok());
    auto batch = (*w)->Next(std::chrono::milliseconds(0));
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  }
  ASSERT_TRUE(store->Put("mine/x", "1").ok());
  auto batch = (*w)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->events.size(), 1u);
}

TEST_F(SqliteStoreTest, SecondOpenOfTheSameFileIsUnavailable) {
  auto first = Open();
  ASSERT_TRUE(first->Put("a", "1").ok());
  SqliteStore::Options opts;
  opts.busy_timeout = std::chrono::milliseconds(50);
  auto second = SqliteStore::Open(path_, clock_, opts);
  ASSERT_FALSE(second.ok()) << "two owners of one store file";
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
  first.reset();
  EXPECT_NE(Open(), nullptr) << "the lock goes with the owner";
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRejected) {
  { ASSERT_NE(Open(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::Open(path_, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
}

TEST_F(SqliteStoreTest, WatcherOutlivingTheStoreIsUnavailable) {
  auto store = Open();
  auto w = store->Watch("", 0);
  ASSERT_TRUE(w.ok());
  store.reset();
  auto batch = (*w)->Next(std::chrono::seconds(5));
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(batch.status().message(), "store closed");
}

TEST_F(SqliteStoreTest, BlockedWatcherSeesExpiryWhenTheClockMoves) {
  auto store = Open();
  LeaseId lease = store->GrantLease(std::chrono::seconds(2)).value();
  ASSERT_TRUE(store->Put("n/1", "up", lease).ok());
  auto w = store->Watch("n/", 0);
  ASSERT_TRUE(w.ok());
  // Next blocks; only the clock moves, from another thread, with no store call.
  std::thread mover([&] { clock_.Advance(std::chrono::seconds(3)); });
  auto batch = (*w)->Next(std::chrono::seconds(30));
  mover.join();
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_EQ(batch->events[0].type, Event::Type::kDelete);
  EXPECT_EQ(batch->events[0].kv.key, "n/1");
}

TEST_F(SqliteStoreTest, RejectsBadOptionsAndArguments) {
  SqliteStore::Options opts;
  opts.history_revisions = 0;
  EXPECT_EQ(SqliteStore::Open(path_, clock_, opts).status().code(), StatusCode::kInvalidArgument);
  auto store = Open();
  EXPECT_EQ(store->Watch("", -1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, UnopenablePathIsUnavailable) {
  auto store = SqliteStore::Open(dir_.File("no/such/dir/store.db"), clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
}

}  // namespace
}  // namespace hafab::store
