// The Store conformance suite: behaviour every backend must show, written once and run
// unchanged against each (SqliteStore, EtcdStore).
//
// A backend instantiates it with its harnesses:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(MakeHarnessA(), MakeHarnessB()),
//                            StoreHarnessName);
// and links the object library hafab_store_conformance.
//
// The tests never assume that effects are synchronous: watch events and lease expiry are
// awaited with a real-time deadline (`settle_timeout`), so a backend on real time (etcd,
// whose leases are whole seconds and expire asynchronously) passes, and a backend on a
// FakeClock passes at the first check, in microseconds.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "store/store.h"

namespace hafab::store::testing {

struct StoreHarness {
  // Shown in test names: letters, digits and '_' only.
  std::string name;
  // A new, empty store (revision 0, no keys, no leases) for each test.
  std::function<std::unique_ptr<Store>()> make_fresh;
  // Moves the store's time forward by at least `d` (advances a FakeClock, or sleeps).
  std::function<void(Duration)> advance_time;
  // The shortest lease TTL the backend honours; lease tests use multiples of it.
  Duration min_lease_ttl = std::chrono::seconds(1);
  // How long to wait for something asynchronous before failing.
  Duration settle_timeout = std::chrono::seconds(10);
  // How long "nothing more arrives" is observed for.
  Duration quiet_period = std::chrono::milliseconds(20);
};

// gtest prints a harness by its name.
void PrintTo(const StoreHarness& harness, std::ostream* os);

// For INSTANTIATE_TEST_SUITE_P: the harness's name.
std::string StoreHarnessName(const ::testing::TestParamInfo<StoreHarness>& info);

class StoreConformanceTest : public ::testing::TestWithParam<StoreHarness> {
 protected:
  void SetUp() override;
  void TearDown() override;

  const StoreHarness& harness() const { return GetParam(); }
  Store& store() { return *store_; }
  Duration Ttl() const { return harness().min_lease_ttl; }

  // Helpers: each records a test failure (and returns an empty value) on an error.
  Revision Put(const std::string& key, const std::string& value, LeaseId lease = 0);
  KeyValue Get(const std::string& key);
  TxnResult Commit(const Txn& txn);
  bool Exists(const std::string& key);
  std::vector<std::string> RangeKeys(const std::string& prefix);
  Revision CurrentRevision();
  // Whether `c` holds, as a transaction with only that compare reports it.
  bool Holds(const Compare& c);
  std::unique_ptr<Watcher> MustWatch(const std::string& prefix, Revision start);

  // Polls `condition` until it is true or `settle_timeout` (real time) passes.
  bool Eventually(const std::function<bool()>& condition);
  // Calls Next until `n` events arrived or `settle_timeout` passed.
  std::vector<Event> Collect(Watcher& w, size_t n);
  // Expects no event during `quiet_period`.
  void ExpectQuiet(Watcher& w);

  std::unique_ptr<Store> store_;
};

}  // namespace hafab::store::testing
