// SqliteStore: the embedded Store backend — one SQLite file in WAL mode, owned by one
// process (the controller), with etcd's revision, watch and lease semantics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "store/store.h"

namespace hafab::store {

namespace sqlite_internal {
struct Core;
}  // namespace sqlite_internal

struct SqliteStoreOptions {
  // Revisions of watch history kept; a watch may start at most this far back.
  int64_t history_revisions = 10000;
  // How long a call waits for a lock held by another connection before Unavailable.
  Duration busy_timeout = std::chrono::seconds(5);
};

// Layout of the file (schema version 1, kept in PRAGMA user_version):
//   meta(name, value)       "revision", "oldest_revision" (oldest one a watch may start
//                           from), "next_lease_id"
//   kv(key, value, create_revision, mod_revision, version, lease)
//   leases(id, ttl_ns)
//   events(revision, seq, type, key, value, create_revision, version, lease)
// Every Commit is one SQLite transaction writing kv, events and meta together, with
// synchronous=FULL: an OK answer has been fsynced to the write-ahead log.
//
// Time: lease deadlines follow the injected Clock and live in memory. Expired leases are
// collected at the start of every method and while a Watcher waits, and all of them go
// in one revision (one delete event per key). Watcher::Next's `timeout` is real time,
// because it blocks a thread; it also rechecks leases at least every 100ms so a FakeClock
// advanced by another thread is noticed.
//
// Ownership: the file is opened with locking_mode=EXCLUSIVE, so a second process (say, a
// second controller started by mistake) cannot open it while this one runs: its Open
// fails with Unavailable after `busy_timeout`.
class SqliteStore final : public Store {
 public:
  using Options = SqliteStoreOptions;

  // Opens or creates the store at `path` (":memory:" for a private in-memory store, for
  // tests). `clock` must outlive the store and its watchers.
  // Errors: Unavailable if the file cannot be opened or is locked by another process;
  // InvalidArgument if it was written by a newer schema version; Internal if corrupt.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path, Clock& clock,
                                                   Options opts = {});

  // Watchers still open afterwards answer Unavailable("store closed").
  ~SqliteStore() override;

  Result<KeyValue> Get(const std::string& key) override;
  Result<RangeResult> Range(const std::string& prefix) override;
  Result<TxnResult> Commit(const Txn& txn) override;
  Result<std::unique_ptr<Watcher>> Watch(const std::string& prefix, Revision start) override;
  Result<LeaseId> GrantLease(Duration ttl) override;
  Status KeepAlive(LeaseId lease) override;
  Status RevokeLease(LeaseId lease) override;

 private:
  explicit SqliteStore(std::shared_ptr<sqlite_internal::Core> core) : core_(std::move(core)) {}
  // Shared with the watchers, so that they can outlive the store.
  std::shared_ptr<sqlite_internal::Core> core_;
};

}  // namespace hafab::store
