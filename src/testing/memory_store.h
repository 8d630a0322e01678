// MemoryStore: a private SqliteStore in memory for tests, that counts commits and fails them
// (and reads) on demand (FaultStore, fault_store.h, injects the other faults).
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "store/sqlite_store.h"
#include "store/store.h"

namespace hafab::testing {

class MemoryStore final : public store::Store {
 public:
  // A private SqliteStore in memory, counted, with commit failures on demand.
  explicit MemoryStore(Clock& clock) {
    auto s = store::SqliteStore::Open(":memory:", clock);
    HAFAB_CHECK(s.ok(), s.status().ToString());
    inner_ = std::move(s).value();
  }
  Result<store::KeyValue> Get(const std::string& key) override {
    if (fail_reads_) return Status::Unavailable("injected read failure");
    return inner_->Get(key);
  }
  Result<store::RangeResult> Range(const std::string& prefix) override {
    if (fail_reads_) return Status::Unavailable("injected read failure");
    return inner_->Range(prefix);
  }
  Result<store::TxnResult> Commit(const store::Txn& txn) override {
    if (fail_commits_ > 0) {
      --fail_commits_;
      return Status::Unavailable("injected commit failure");
    }
    ++commits_;
    return inner_->Commit(txn);
  }
  Result<std::unique_ptr<store::Watcher>> Watch(const std::string& p, store::Revision r) override {
    return inner_->Watch(p, r);
  }
  Result<store::LeaseId> GrantLease(Duration ttl) override { return inner_->GrantLease(ttl); }
  Status KeepAlive(store::LeaseId l) override { return inner_->KeepAlive(l); }
  Status RevokeLease(store::LeaseId l) override { return inner_->RevokeLease(l); }

  int commits() const { return commits_; }
  void FailNextCommits(int n) { fail_commits_ = n; }
  // Reads fail too while set (with FailNextCommits: the store is out).
  void FailReads(bool fail) { fail_reads_ = fail; }

 private:
  std::unique_ptr<store::SqliteStore> inner_;
  int commits_ = 0;
  int fail_commits_ = 0;
  bool fail_reads_ = false;
};

}  // namespace hafab::testing
