#include "store/store_conformance.h"

#include <gmock/gmock.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace hafab::store::testing {

std::string StoreHarnessName(const ::testing::TestParamInfo<StoreHarness>& info) {
  return info.param.name;
}

void PrintTo(const StoreHarness& harness, std::ostream* os) { *os << harness.name; }

namespace {

using ::testing::ElementsAre;
using Target = Compare::Target;
using CmpOp = Compare::Op;

template <typename T>
T Ok(Result<T> r, const char* what) {
  if (!r.ok()) {
    ADD_FAILURE() << what << " failed: " << r.status().ToString();
    return T{};
  }
  return std::move(r).value();
}

Compare Cmp(std::string key, Target target, CmpOp op, int64_t number) {
  Compare c;
  c.key = std::move(key);
  c.target = target;
  c.op = op;
  c.number = number;
  return c;
}

Compare CmpValue(std::string key, CmpOp op, std::string value) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::kValue;
  c.op = op;
  c.value = std::move(value);
  return c;
}

// "put a=1" / "delete a": events in a form gmock prints readably.
std::string Describe(const Event& e) {
  if (e.type == Event::Type::kDelete) return "delete " + e.kv.key;
  return "put " + e.kv.key + "=" + e.kv.value;
}

std::vector<std::string> Describe(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(Describe(e));
  return out;
}

}  // namespace

void StoreConformanceTest::SetUp() {
  store_ = GetParam().make_fresh();
  ASSERT_NE(store_, nullptr) << "harness " << GetParam().name << " made no store";
}

void StoreConformanceTest::TearDown() { store_.reset(); }

Revision StoreConformanceTest::Put(const std::string& key, const std::string& value,
                                   LeaseId lease) {
  return Ok(store().Put(key, value, lease), "Put");
}

KeyValue StoreConformanceTest::Get(const std::string& key) { return Ok(store().Get(key), "Get"); }

TxnResult StoreConformanceTest::Commit(const Txn& txn) { return Ok(store().Commit(txn), "Commit"); }

bool StoreConformanceTest::Exists(const std::string& key) {
  auto r = store().Get(key);
  if (!r.ok() && r.status().code() != StatusCode::kNotFound) {
    ADD_FAILURE() << "Get " << key << ": " << r.status().ToString();
  }
  return r.ok();
}

std::vector<std::string> StoreConformanceTest::RangeKeys(const std::string& prefix) {
  std::vector<std::string> keys;
  for (const KeyValue& kv : Ok(store().Range(prefix), "Range").kvs) keys.push_back(kv.key);
  return keys;
}

Revision StoreConformanceTest::CurrentRevision() { return Ok(store().Range(""), "Range").revision; }

bool StoreConformanceTest::Holds(const Compare& c) {
  Txn txn;
  txn.compares.push_back(c);
  return Commit(txn).succeeded;
}

std::unique_ptr<Watcher> StoreConformanceTest::MustWatch(const std::string& prefix,
                                                         Revision start) {
  auto w = store().Watch(prefix, start);
  if (!w.ok()) {
    ADD_FAILURE() << "Watch " << prefix << " from " << start << ": " << w.status().ToString();
    return nullptr;
  }
  return std::move(w).value();
}

bool StoreConformanceTest::Eventually(const std::function<bool()>& condition) {
  Clock& real = RealClock();
  TimePoint give_up = real.Now() + harness().settle_timeout;
  while (true) {
    if (condition()) return true;
    if (real.Now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval
  }
}

std::vector<Event> StoreConformanceTest::Collect(Watcher& w, size_t n) {
  Clock& real = RealClock();
  TimePoint give_up = real.Now() + harness().settle_timeout;
  std::vector<Event> events;
  while (events.size() < n) {
    Duration left = give_up - real.Now();
    if (left <= Duration::zero()) break;
    auto batch = w.Next(left);
    if (!batch.ok()) {
      ADD_FAILURE() << "Next: " << batch.status().ToString();
      break;
    }
    for (Event& e : batch->events) events.push_back(std::move(e));
  }
  return events;
}

void StoreConformanceTest::ExpectQuiet(Watcher& w) {
  auto batch = w.Next(harness().quiet_period);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_THAT(Describe(batch->events), ElementsAre());
}

// --- Get, Put, revisions, versions ---------------------------------------------------

TEST_P(StoreConformanceTest, GetMissingKeyIsNotFound) {
  auto r = store().Get("no/such/key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
}

TEST_P(StoreConformanceTest, FreshStoreIsEmpty) { EXPECT_THAT(RangeKeys(""), ElementsAre()); }

TEST_P(StoreConformanceTest, PutThenGetReturnsValueAndRevisions) {
  Revision rev = Put("cfg/a", "hello");
  KeyValue kv = Get("cfg/a");
  EXPECT_EQ(kv.key, "cfg/a");
  EXPECT_EQ(kv.value, "hello");
  EXPECT_GT(rev, 0);
  EXPECT_EQ(kv.create_revision, rev);
  EXPECT_EQ(kv.mod_revision, rev);
  EXPECT_EQ(kv.version, 1);
  EXPECT_EQ(kv.lease, 0);
}

TEST_P(StoreConformanceTest, BinaryAndEmptyValuesRoundTrip) {
  std::string value("a\0b\xff\n", 5);
  Put("bin", value);
  EXPECT_EQ(Get("bin").value, value);
  Put("empty", "");
  ASSERT_TRUE(Exists("empty")) << "an empty value is a value, not a missing key";
  EXPECT_EQ(Get("empty").value, "");
}

TEST_P(StoreConformanceTest, EachChangingCommitAddsOneRevision) {
  Revision r1 = Put("a", "1");
  Revision r2 = Put("b", "2");
  Revision r3 = Put("a", "3");
  EXPECT_EQ(r2, r1 + 1);
  EXPECT_EQ(r3, r2 + 1);
  EXPECT_EQ(CurrentRevision(), r3);
}

TEST_P(StoreConformanceTest, OneTransactionIsOneRevision) {
  Revision before = Put("x", "0");
  Txn txn;
  txn.success = {Op::Put("t/1", "a"), Op::Put("t/2", "b"), Op::Put("t/3", "c"), Op::Delete("x")};
  TxnResult r = Commit(txn);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, before + 1);
  for (const char* key : {"t/1", "t/2", "t/3"}) {
    KeyValue kv = Get(key);
    EXPECT_EQ(kv.mod_revision, r.revision) << key;
    EXPECT_EQ(kv.create_revision, r.revision) << key;
  }
  EXPECT_FALSE(Exists("x"));
  EXPECT_EQ(CurrentRevision(), r.revision);
}

TEST_P(StoreConformanceTest, CommitThatChangesNothingKeepsTheRevision) {
  Revision rev = Put("a", "1");
  EXPECT_EQ(Commit(Txn{}).revision, rev) << "empty transaction";
  EXPECT_EQ(Ok(store().Delete("missing"), "Delete"), rev) << "delete of a missing key";
  Txn deletes_nothing;
  deletes_nothing.success = {Op::DeletePrefix("nothing/")};
  EXPECT_EQ(Commit(deletes_nothing).revision, rev) << "delete-prefix matching nothing";
  Txn failed;
  failed.compares = {Compare::Missing("a")};
  failed.success = {Op::Put("b", "2")};
  TxnResult r = Commit(failed);
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.revision, rev) << "failed compare, no failure ops";
  EXPECT_EQ(CurrentRevision(), rev);
  EXPECT_EQ(Put("c", "3"), rev + 1);
}

TEST_P(StoreConformanceTest, VersionCountsPutsAndRestartsAfterDelete) {
  Put("v", "1");
  Put("v", "2");
  Revision r3 = Put("v", "3");
  KeyValue kv = Get("v");
  EXPECT_EQ(kv.version, 3);
  EXPECT_EQ(kv.mod_revision, r3);
  ASSERT_TRUE(store().Delete("v").ok());
  Revision again = Put("v", "4");
  kv = Get("v");
  EXPECT_EQ(kv.version, 1);
  EXPECT_EQ(kv.create_revision, again);
}

TEST_P(StoreConformanceTest, CreateRevisionStaysModRevisionMoves) {
  Revision created = Put("k", "1");
  Put("other", "x");
  Revision modified = Put("k", "2");
  KeyValue kv = Get("k");
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_EQ(kv.mod_revision, modified);
  EXPECT_GT(modified, created + 1);
}

// --- Compares -----------------------------------------------------------------------

TEST_P(StoreConformanceTest, CompareValueEachOp) {
  Put("k", "m");
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kEqual, "m")));
  EXPECT_FALSE(Holds(CmpValue("k", CmpOp::kEqual, "n")));
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kNotEqual, "n")));
  EXPECT_FALSE(Holds(CmpValue("k", CmpOp::kNotEqual, "m")));
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kLess, "n")));
  EXPECT_FALSE(Holds(CmpValue("k", CmpOp::kLess, "m")));
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kGreater, "l")));
  EXPECT_FALSE(Holds(CmpValue("k", CmpOp::kGreater, "m")));
  // Byte-wise: a prefix sorts first, and bytes compare unsigned.
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kGreater, "")));
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kLess, "m\x01")));
  EXPECT_TRUE(Holds(CmpValue("k", CmpOp::kLess, "\xff")));
}

TEST_P(StoreConformanceTest, CompareVersionEachOp) {
  Put("k", "1");
  Put("k", "2");  // version 2
  for (auto [op, below, at, above] : {std::tuple{CmpOp::kEqual, false, true, false},
                                      std::tuple{CmpOp::kNotEqual, true, false, true},
                                      std::tuple{CmpOp::kLess, false, false, true},
                                      std::tuple{CmpOp::kGreater, true, false, false}}) {
    EXPECT_EQ(Holds(Cmp("k", Target::kVersion, op, 1)), below) << static_cast<int>(op);
    EXPECT_EQ(Holds(Cmp("k", Target::kVersion, op, 2)), at) << static_cast<int>(op);
    EXPECT_EQ(Holds(Cmp("k", Target::kVersion, op, 3)), above) << static_cast<int>(op);
  }
}

TEST_P(StoreConformanceTest, CompareCreateRevisionEachOp) {
  Revision created = Put("k", "1");
  Put("k", "2");
  for (auto [op, below, at, above] : {std::tuple{CmpOp::kEqual, false, true, false},
                                      std::tuple{CmpOp::kNotEqual, true, false, true},
                                      std::tuple{CmpOp::kLess, false, false, true},
                                      std::tuple{CmpOp::kGreater, true, false, false}}) {
    EXPECT_EQ(Holds(Cmp("k", Target::kCreateRevision, op, created - 1)), below);
    EXPECT_EQ(Holds(Cmp("k", Target::kCreateRevision, op, created)), at);
    EXPECT_EQ(Holds(Cmp("k", Target::kCreateRevision, op, created + 1)), above);
  }
}

TEST_P(StoreConformanceTest, CompareModRevisionEachOp) {
  Put("k", "1");
  Revision modified = Put("k", "2");
  for (auto [op, below, at, above] : {std::tuple{CmpOp::kEqual, false, true, false},
                                      std::tuple{CmpOp::kNotEqual, true, false, true},
                                      std::tuple{CmpOp::kLess, false, false, true},
                                      std::tuple{CmpOp::kGreater, true, false, false}}) {
    EXPECT_EQ(Holds(Cmp("k", Target::kModRevision, op, modified - 1)), below);
    EXPECT_EQ(Holds(Cmp("k", Target::kModRevision, op, modified)), at);
    EXPECT_EQ(Holds(Cmp("k", Target::kModRevision, op, modified + 1)), above);
  }
}

TEST_P(StoreConformanceTest, CompareOnMissingKeySeesZerosAndNoValue) {
  EXPECT_TRUE(Holds(Cmp("gone", Target::kVersion, CmpOp::kEqual, 0)));
  EXPECT_TRUE(Holds(Cmp("gone", Target::kCreateRevision, CmpOp::kEqual, 0)));
  EXPECT_TRUE(Holds(Cmp("gone", Target::kModRevision, CmpOp::kLess, 1)));
  // As in etcd: a value compare on a missing key fails whatever the op.
  EXPECT_FALSE(Holds(CmpValue("gone", CmpOp::kEqual, "")));
  EXPECT_FALSE(Holds(CmpValue("gone", CmpOp::kNotEqual, "x")));
}

TEST_P(StoreConformanceTest, CompareShorthands) {
  Revision rev = Put("k", "v");
  EXPECT_TRUE(Holds(Compare::ValueEquals("k", "v")));
  EXPECT_FALSE(Holds(Compare::ValueEquals("k", "w")));
  EXPECT_TRUE(Holds(Compare::ModRevisionEquals("k", rev)));
  EXPECT_FALSE(Holds(Compare::ModRevisionEquals("k", rev - 1)));
  EXPECT_TRUE(Holds(Compare::Exists("k")));
  EXPECT_FALSE(Holds(Compare::Missing("k")));
  EXPECT_TRUE(Holds(Compare::Missing("other")));
  EXPECT_FALSE(Holds(Compare::Exists("other")));
}

TEST_P(StoreConformanceTest, EveryCompareMustHold) {
  Put("a", "1");
  Put("b", "2");
  Txn txn;
  txn.compares = {Compare::ValueEquals("a", "1"), Compare::ValueEquals("b", "wrong")};
  EXPECT_FALSE(Commit(txn).succeeded);
  txn.compares = {Compare::ValueEquals("a", "1"), Compare::ValueEquals("b", "2")};
  EXPECT_TRUE(Commit(txn).succeeded);
}

// --- Transactions --------------------------------------------------------------------

TEST_P(StoreConformanceTest, SuccessBranchAppliedWhenComparesHold) {
  Txn txn;
  txn.compares = {Compare::Missing("leader")};
  txn.success = {Op::Put("leader", "me")};
  txn.failure = {Op::Put("lost", "yes")};
  TxnResult r = Commit(txn);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(Get("leader").value, "me");
  EXPECT_FALSE(Exists("lost"));
  EXPECT_EQ(r.revision, Get("leader").mod_revision);
}

TEST_P(StoreConformanceTest, FailureBranchAppliedWhenACompareFails) {
  Put("leader", "other");
  Txn txn;
  txn.compares = {Compare::Missing("leader")};
  txn.success = {Op::Put("leader", "me")};
  txn.failure = {Op::Put("lost", "yes")};
  TxnResult r = Commit(txn);
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(Get("leader").value, "other");
  EXPECT_EQ(Get("lost").value, "yes");
  EXPECT_EQ(r.revision, Get("lost").mod_revision);
}

TEST_P(StoreConformanceTest, CompareAndSwapLosesToAConcurrentWriter) {
  Revision seen = Put("counter", "1");
  Put("counter", "2");  // someone else wrote after we read
  Txn txn;
  txn.compares = {Compare::ModRevisionEquals("counter", seen)};
  txn.success = {Op::Put("counter", "from-stale-read")};
  EXPECT_FALSE(Commit(txn).succeeded);
  EXPECT_EQ(Get("counter").value, "2");
}

TEST_P(StoreConformanceTest, TxnIsAllOrNothing) {
  Put("keep", "old");
  Put("doomed", "old");
  Revision before = CurrentRevision();
  Txn txn;
  txn.success = {Op::Put("keep", "new"), Op::Put("fresh", "x"), Op::Delete("doomed"),
                 Op::Put("leased", "y", /*lease=*/987654321)};
  auto r = store().Commit(txn);
  ASSERT_FALSE(r.ok()) << "an op naming an unknown lease must fail the transaction";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_EQ(Get("keep").value, "old");
  EXPECT_EQ(Get("keep").version, 1);
  EXPECT_FALSE(Exists("fresh"));
  EXPECT_FALSE(Exists("leased"));
  EXPECT_TRUE(Exists("doomed"));
  EXPECT_EQ(CurrentRevision(), before);
  EXPECT_EQ(Put("after", "z"), before + 1) << "a failed commit must not use up a revision";
}

TEST_P(StoreConformanceTest, TxnRejectsAKeyPutTwiceOrPutAndDeleted) {
  Put("a/1", "old");
  Revision before = CurrentRevision();
  std::vector<std::vector<Op>> bad = {
      {Op::Put("a/1", "x"), Op::Put("a/1", "y")},
      {Op::Put("a/1", "x"), Op::Delete("a/1")},
      {Op::Delete("a/1"), Op::Put("a/1", "x")},
      {Op::DeletePrefix("a/"), Op::Put("a/2", "x")},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    Txn txn;
    txn.success = bad[i];
    auto r = store().Commit(txn);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "case " << i;
  }
  Txn in_failure_branch;
  in_failure_branch.compares = {Compare::Missing("a/1")};
  in_failure_branch.failure = {Op::Put("b", "1"), Op::Put("b", "2")};
  EXPECT_EQ(store().Commit(in_failure_branch).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Get("a/1").value, "old");
  EXPECT_EQ(CurrentRevision(), before);
  // Distinct keys, and deletes that overlap each other, are fine.
  Txn fine;
  fine.success = {Op::Put("a/2", "x"), Op::Put("a/3", "y"), Op::DeletePrefix("a/1"),
                  Op::Delete("a/1")};
  EXPECT_TRUE(Commit(fine).succeeded);
  EXPECT_THAT(RangeKeys("a/"), ElementsAre("a/2", "a/3"));
}

// --- Delete, delete-prefix, range ------------------------------------------------------

TEST_P(StoreConformanceTest, DeleteRemovesTheKey) {
  Put("a", "1");
  Put("b", "2");
  auto rev = store().Delete("a");
  ASSERT_TRUE(rev.ok()) << rev.status().ToString();
  EXPECT_EQ(*rev, CurrentRevision());
  EXPECT_FALSE(Exists("a"));
  EXPECT_TRUE(Exists("b"));
}

TEST_P(StoreConformanceTest, DeletePrefixRemovesOnlyThatPrefix) {
  for (const char* key : {"a", "a/", "a/1", "a/2/x", "ab", "b/1", "a0"}) Put(key, "v");
  Revision before = CurrentRevision();
  Txn txn;
  txn.success = {Op::DeletePrefix("a/")};
  TxnResult r = Commit(txn);
  EXPECT_EQ(r.revision, before + 1);
  EXPECT_THAT(RangeKeys(""), ElementsAre("a", "a0", "ab", "b/1"));
}

TEST_P(StoreConformanceTest, RangeIsSortedByKey) {
  for (const char* key : {"n/c", "n/a", "n/b/2", "n/b/1", "n/B", "n/aa"}) Put(key, key);
  EXPECT_THAT(RangeKeys("n/"), ElementsAre("n/B", "n/a", "n/aa", "n/b/1", "n/b/2", "n/c"));
  auto r = store().Range("n/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, CurrentRevision());
  for (const KeyValue& kv : r->kvs) {
    EXPECT_EQ(kv.value, kv.key);
    EXPECT_EQ(kv, Get(kv.key)) << "Range and Get agree on " << kv.key;
  }
}

TEST_P(StoreConformanceTest, RangePrefixBoundaries) {
  for (const char* key : {"a", "a/", "a/x", "a/y/z", "ab", "a.", "a0", "b", "A/x"}) Put(key, "v");
  EXPECT_THAT(RangeKeys("a/"), ElementsAre("a/", "a/x", "a/y/z")) << "\"a/\" must not match \"ab\"";
  EXPECT_THAT(RangeKeys("a/x"), ElementsAre("a/x"));
  EXPECT_THAT(RangeKeys("a/q"), ElementsAre());
  EXPECT_THAT(RangeKeys("ab"), ElementsAre("ab"));
  EXPECT_THAT(RangeKeys("a"), ElementsAre("a", "a.", "a/", "a/x", "a/y/z", "a0", "ab"));
  EXPECT_THAT(RangeKeys(""), ElementsAre("A/x", "a", "a.", "a/", "a/x", "a/y/z", "a0", "ab", "b"));
}

TEST_P(StoreConformanceTest, RangePrefixWithHighBytes) {
  for (std::string key : {std::string("p\xff"), std::string("p\xff\x01"), std::string("p\xfe"),
                          std::string("q"), std::string("\xff\xff")}) {
    Put(key, "v");
  }
  EXPECT_THAT(RangeKeys("p\xff"), ElementsAre("p\xff", "p\xff\x01"));
  EXPECT_THAT(RangeKeys("p"), ElementsAre("p\xfe", "p\xff", "p\xff\x01"));
  EXPECT_THAT(RangeKeys("\xff"), ElementsAre("\xff\xff"));
}

// --- Watches -----------------------------------------------------------------------

TEST_P(StoreConformanceTest, WatchFromPastRevisionReplaysHistory) {
  Revision r1 = Put("w/a", "1");
  Revision r2 = Put("w/b", "2");
  Put("w/a", "3");
  ASSERT_TRUE(store().Delete("w/b").ok());
  auto w = MustWatch("w/", r2);
  ASSERT_NE(w, nullptr);
  std::vector<Event> events = Collect(*w, 3);
  EXPECT_THAT(Describe(events), ElementsAre("put w/b=2", "put w/a=3", "delete w/b"));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv.mod_revision, r2);
  EXPECT_EQ(events[0].kv.create_revision, r2);
  EXPECT_EQ(events[0].kv.version, 1);
  EXPECT_EQ(events[1].kv.mod_revision, r2 + 1);
  EXPECT_EQ(events[1].kv.create_revision, r1);
  EXPECT_EQ(events[1].kv.version, 2);
  EXPECT_EQ(events[2].kv.mod_revision, r2 + 2);
  ExpectQuiet(*w);
}

TEST_P(StoreConformanceTest, WatchFromNowSeesNewPutsAndDeletesInOrder) {
  Put("w/old", "before");
  auto w = MustWatch("w/", 0);
  ASSERT_NE(w, nullptr);
  Revision r1 = Put("w/a", "1");
  Put("w/b", "2");
  ASSERT_TRUE(store().Delete("w/a").ok());
  Put("w/b", "3");
  std::vector<Event> events = Collect(*w, 4);
  EXPECT_THAT(Describe(events), ElementsAre("put w/a=1", "put w/b=2", "delete w/a", "put w/b=3"));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.mod_revision, r1 + static_cast<Revision>(i));
  }
  ExpectQuiet(*w);
}

TEST_P(StoreConformanceTest, WatchSeesOnlyItsPrefix) {
  auto w = MustWatch("a/", 0);
  ASSERT_NE(w, nullptr);
  Put("a/x", "1");
  Put("ab", "2");
  Put("b/y", "3");
  Put("a", "4");
  Put("a/z", "5");
  EXPECT_THAT(Describe(Collect(*w, 2)), ElementsAre("put a/x=1", "put a/z=5"));
  ExpectQuiet(*w);
}

TEST_P(StoreConformanceTest, WatchSeesOneTransactionAsOneRevision) {
  Put("t/old1", "x");
  Put("t/old2", "x");
  auto w = MustWatch("t/", 0);
  ASSERT_NE(w, nullptr);
  Txn txn;
  txn.success = {Op::DeletePrefix("t/old"), Op::Put("t/new", "y")};
  TxnResult r = Commit(txn);
  std::vector<Event> events = Collect(*w, 3);
  EXPECT_THAT(Describe(events), ElementsAre("delete t/old1", "delete t/old2", "put t/new=y"));
  for (const Event& e : events) EXPECT_EQ(e.kv.mod_revision, r.revision) << Describe(e);
}

TEST_P(StoreConformanceTest, WatchNextTimesOutWithAnEmptyBatch) {
  auto w = MustWatch("idle/", 0);
  ASSERT_NE(w, nullptr);
  Put("busy/x", "1");  // not under the watched prefix
  ExpectQuiet(*w);
}

TEST_P(StoreConformanceTest, WatchersAreIndependent) {
  auto w1 = MustWatch("k/", 0);
  auto w2 = MustWatch("k/", 0);
  ASSERT_NE(w1, nullptr);
  ASSERT_NE(w2, nullptr);
  Put("k/1", "a");
  EXPECT_THAT(Describe(Collect(*w1, 1)), ElementsAre("put k/1=a"));
  Put("k/2", "b");
  EXPECT_THAT(Describe(Collect(*w1, 1)), ElementsAre("put k/2=b"));
  EXPECT_THAT(Describe(Collect(*w2, 2)), ElementsAre("put k/1=a", "put k/2=b"));
}

TEST_P(StoreConformanceTest, CancelWakesABlockedNextPromptly) {
  auto w = MustWatch("c/", 0);
  ASSERT_NE(w, nullptr);
  std::atomic<bool> returned{false};
  Status result;
  std::thread waiter([&] {
    auto batch = w->Next(std::chrono::seconds(60));
    result = batch.ok() ? Status::Internal("Next returned a batch") : batch.status();
    returned = true;
  });
  // Cancel may come before or while Next waits; both must end it.
  w->Cancel();
  bool woke = Eventually([&] { return returned.load(); });
  waiter.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(result.code(), StatusCode::kUnavailable) << result.ToString();
  auto again = w->Next(std::chrono::milliseconds(1));
  EXPECT_FALSE(again.ok()) << "a cancelled watcher stays cancelled";
}

// --- Leases ------------------------------------------------------------------------

TEST_P(StoreConformanceTest, GrantLeaseRejectsNonPositiveTtl) {
  auto r = store().GrantLease(Duration::zero());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, LeasedKeysVanishOnExpiry) {
  LeaseId lease = Ok(store().GrantLease(Ttl()), "GrantLease");
  ASSERT_NE(lease, 0);
  Put("node/1", "alive", lease);
  Put("node/2", "alive", lease);
  Put("node/keep", "no lease");
  EXPECT_EQ(Get("node/1").lease, lease);
  harness().advance_time(Ttl() + Ttl() / 2);
  EXPECT_TRUE(Eventually([&] { return !Exists("node/1") && !Exists("node/2"); }));
  EXPECT_TRUE(Exists("node/keep"));
  auto put = store().Put("node/3", "late", lease);
  EXPECT_EQ(put.status().code(), StatusCode::kInvalidArgument) << "the lease is gone";
}

TEST_P(StoreConformanceTest, LeasedKeysVanishOnRevoke) {
  LeaseId lease = Ok(store().GrantLease(Ttl() * 100), "GrantLease");
  Put("gw/1", "x", lease);
  Put("gw/2", "y");
  Revision before = CurrentRevision();
  ASSERT_TRUE(store().RevokeLease(lease).ok());
  EXPECT_FALSE(Exists("gw/1"));
  EXPECT_TRUE(Exists("gw/2"));
  EXPECT_EQ(CurrentRevision(), before + 1);
  EXPECT_EQ(store().KeepAlive(lease).code(), StatusCode::kNotFound);
  EXPECT_EQ(store().RevokeLease(lease).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RevokeOrKeepAliveOfUnknownLeaseIsNotFound) {
  EXPECT_EQ(store().RevokeLease(424242).code(), StatusCode::kNotFound);
  EXPECT_EQ(store().KeepAlive(424242).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, KeepAliveExtendsTheLease) {
  LeaseId lease = Ok(store().GrantLease(Ttl() * 2), "GrantLease");
  Put("hb", "x", lease);
  harness().advance_time(Ttl() * 6 / 5);  // 0.6 of the TTL
  ASSERT_TRUE(store().KeepAlive(lease).ok());
  harness().advance_time(Ttl() * 6 / 5);  // 1.2 of the TTL since the grant
  EXPECT_TRUE(Exists("hb")) << "a renewed lease must outlive its first TTL";
  ASSERT_TRUE(store().KeepAlive(lease).ok());
  harness().advance_time(Ttl() * 3);
  EXPECT_TRUE(Eventually([&] { return !Exists("hb"); }));
}

TEST_P(StoreConformanceTest, KeepAliveOfExpiredLeaseIsNotFound) {
  LeaseId lease = Ok(store().GrantLease(Ttl()), "GrantLease");
  harness().advance_time(Ttl() * 2);
  EXPECT_TRUE(Eventually([&] { return store().KeepAlive(lease).code() == StatusCode::kNotFound; }));
}

TEST_P(StoreConformanceTest, PutWithoutLeaseDetachesTheKey) {
  LeaseId lease = Ok(store().GrantLease(Ttl()), "GrantLease");
  Put("k", "leased", lease);
  Put("other", "leased", lease);
  Put("k", "mine now");
  EXPECT_EQ(Get("k").lease, 0);
  harness().advance_time(Ttl() * 2);
  EXPECT_TRUE(Eventually([&] { return !Exists("other"); }));
  EXPECT_TRUE(Exists("k"));
}

TEST_P(StoreConformanceTest, LeaseExpiryProducesDeleteEvents) {
  LeaseId lease = Ok(store().GrantLease(Ttl()), "GrantLease");
  auto w = MustWatch("agents/", 0);
  ASSERT_NE(w, nullptr);
  Put("agents/n2", "up", lease);
  Put("agents/n1", "up", lease);
  EXPECT_THAT(Describe(Collect(*w, 2)), ElementsAre("put agents/n2=up", "put agents/n1=up"));
  harness().advance_time(Ttl() * 2);
  // No other call: the watcher alone must notice the expiry.
  std::vector<Event> events = Collect(*w, 2);
  EXPECT_THAT(Describe(events), ElementsAre("delete agents/n1", "delete agents/n2"));
  if (events.size() == 2) {
    EXPECT_EQ(events[0].kv.mod_revision, events[1].kv.mod_revision)
        << "one lease's keys go in one revision";
  }
}

// --- Concurrency -----------------------------------------------------------------------

TEST_P(StoreConformanceTest, ConcurrentCompareAndSwapIncrementsLoseNothing) {
  Put("counter", "0");
  constexpr int kThreads = 4;
  constexpr int kIncrementsEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kIncrementsEach;) {
        auto kv = store().Get("counter");
        if (!kv.ok()) {
          ++errors;
          return;
        }
        Txn txn;
        txn.compares = {Compare::ModRevisionEquals("counter", kv->mod_revision)};
        txn.success = {Op::Put("counter", std::to_string(std::stoi(kv->value) + 1))};
        auto r = store().Commit(txn);
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (r->succeeded) ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(Get("counter").value, std::to_string(kThreads * kIncrementsEach));
  EXPECT_EQ(Get("counter").version, kThreads * kIncrementsEach + 1);
}

}  // namespace hafab::store::testing
