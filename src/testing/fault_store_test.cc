#include "testing/fault_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "store/sqlite_store.h"
#include "store/store_conformance.h"
#include "testing/fake_clock.h"

namespace hafab::testing {
namespace {

using store::SqliteStore;
using store::testing::StoreConformanceTest;

// With no faults set, a FaultStore must be invisible: the whole conformance suite passes
// through it.
store::testing::StoreHarness PassThroughHarness() {
  auto clock = std::make_shared<FakeClock>();
  store::testing::StoreHarness h;
  h.name = "FaultStoreWithoutFaults";
  h.make_fresh = [clock]() -> std::unique_ptr<store::Store> {
    auto inner = SqliteStore::Open(":memory:", *clock);
    HAFAB_CHECK(inner.ok(), inner.status().ToString());
    return std::make_unique<FaultStore>(std::move(inner).value(), Random(1));
  };
  h.advance_time = [clock](Duration d) { clock->Advance(d); };
  return h;
}

INSTANTIATE_TEST_SUITE_P(FaultStore, StoreConformanceTest, ::testing::Values(PassThroughHarness()),
                         store::testing::StoreHarnessName);

class FaultStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = SqliteStore::Open(":memory:", clock_);
    ASSERT_TRUE(opened.ok());
    inner_ = std::move(opened).value();
  }

  FakeClock clock_;
  std::unique_ptr<SqliteStore> inner_;
};

TEST_F(FaultStoreTest, FailBeforeAppliesNothing) {
  FaultStore store(*inner_, Random(7));
  store.SetFaults({.fail_before = 1.0});
  auto r = store.Put("k", "v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(inner_->Get("k").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Get("k").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.GrantLease(std::chrono::seconds(1)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.counts().failed_before, 3);
}

TEST_F(FaultStoreTest, FailAfterAppliesButLosesTheAnswer) {
  FaultStore store(*inner_, Random(7));
  store.SetFaults({.fail_after = 1.0});
  auto r = store.Put("k", "v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  auto kv = inner_->Get("k");
  ASSERT_TRUE(kv.ok()) << "the commit took effect although its answer was lost";
  EXPECT_EQ(kv->value, "v");
  EXPECT_TRUE(store.Get("k").ok()) << "reads are not affected by fail_after";
  EXPECT_EQ(store.counts().failed_after, 1);
}

TEST_F(FaultStoreTest, DownFailsEverythingUntilUp) {
  FaultStore store(*inner_, Random(7));
  auto w = store.Watch("", 0);
  ASSERT_TRUE(w.ok());
  store.SetDown(true);
  EXPECT_EQ(store.Put("k", "v").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.Range("").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*w)->Next(std::chrono::milliseconds(0)).status().code(), StatusCode::kUnavailable);
  store.SetDown(false);
  EXPECT_TRUE(store.Put("k", "v").ok());
  EXPECT_EQ((*w)->Next(std::chrono::milliseconds(0)).status().code(), StatusCode::kUnavailable)
      << "a broken watch stays broken; the caller re-watches";
  auto again = store.Watch("", 1);
  ASSERT_TRUE(again.ok());
  auto batch = (*again)->Next(std::chrono::seconds(5));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->events.size(), 1u);
}

TEST_F(FaultStoreTest, BreakWatchBreaksForGood) {
  FaultStore store(*inner_, Random(7));
  auto w = store.Watch("", 0);
  ASSERT_TRUE(w.ok());
  store.SetFaults({.break_watch = 1.0});
  EXPECT_EQ((*w)->Next(std::chrono::milliseconds(0)).status().code(), StatusCode::kUnavailable);
  store.SetFaults({});
  EXPECT_EQ((*w)->Next(std::chrono::milliseconds(0)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.counts().broken_watches, 1);
}

// Which of `n` commits fail, as a string of '.' (ok), 'b' (before) and 'a' (after).
std::string Pattern(uint64_t seed, int n) {
  FakeClock clock;
  auto inner = SqliteStore::Open(":memory:", clock);
  HAFAB_CHECK(inner.ok(), inner.status().ToString());
  FaultStore store(**inner, Random(seed));
  store.SetFaults({.fail_before = 0.2, .fail_after = 0.1});
  std::string pattern;
  for (int i = 0; i < n; ++i) {
    auto before = store.counts();
    auto r = store.Put("k", std::to_string(i));
    auto after = store.counts();
    if (r.ok()) {
      pattern += '.';
    } else {
      pattern += after.failed_before > before.failed_before ? 'b' : 'a';
    }
  }
  return pattern;
}

TEST(FaultStoreRandomTest, SameSeedSameFaultsAndRatesAsSet) {
  std::string p1 = Pattern(42, 2000);
  EXPECT_EQ(p1, Pattern(42, 2000)) << "a seed reproduces the faults";
  EXPECT_NE(p1, Pattern(43, 2000));
  auto before = std::count(p1.begin(), p1.end(), 'b');
  auto after = std::count(p1.begin(), p1.end(), 'a');
  // 2000 draws: before ~ 400 (p=0.2), after ~ 160 (p=0.1 of the 1600 that got through).
  EXPECT_NEAR(before, 400, 80);
  EXPECT_NEAR(after, 160, 50);
}

}  // namespace
}  // namespace hafab::testing
