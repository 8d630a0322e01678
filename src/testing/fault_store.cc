#include "testing/fault_store.h"

#include <utility>

namespace hafab::testing {
namespace {

Status Injected(const char* when) {
  return Status::Unavailable(std::string("injected store fault (") + when + ")");
}

}  // namespace

class FaultStore::FaultWatcher final : public store::Watcher {
 public:
  FaultWatcher(FaultStore& owner, std::unique_ptr<store::Watcher> inner)
      : owner_(owner), inner_(std::move(inner)) {}

  Result<store::WatchBatch> Next(Duration timeout) override {
    if (broken_ || owner_.BreakWatch()) {
      broken_ = true;
      return Status::Unavailable("injected store fault (watch broken)");
    }
    return inner_->Next(timeout);
  }

  void Cancel() override { inner_->Cancel(); }

 private:
  FaultStore& owner_;
  std::unique_ptr<store::Watcher> inner_;
  bool broken_ = false;  // Next() is not called concurrently with itself
};

void FaultStore::SetFaults(const Faults& faults) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_ = faults;
}

void FaultStore::SetDown(bool down) {
  std::lock_guard<std::mutex> lock(mu_);
  down_ = down;
}

FaultStore::Counts FaultStore::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

bool FaultStore::FailBefore() {
  std::lock_guard<std::mutex> lock(mu_);
  if (down_ || (faults_.fail_before > 0 && random_.OneIn(faults_.fail_before))) {
    ++counts_.failed_before;
    return true;
  }
  return false;
}

bool FaultStore::FailAfter() {
  std::lock_guard<std::mutex> lock(mu_);
  if (faults_.fail_after > 0 && random_.OneIn(faults_.fail_after)) {
    ++counts_.failed_after;
    return true;
  }
  return false;
}

bool FaultStore::BreakWatch() {
  std::lock_guard<std::mutex> lock(mu_);
  if (down_ || (faults_.break_watch > 0 && random_.OneIn(faults_.break_watch))) {
    ++counts_.broken_watches;
    return true;
  }
  return false;
}

Result<store::KeyValue> FaultStore::Get(const std::string& key) {
  if (FailBefore()) return Injected("before get");
  return inner_.Get(key);
}

Result<store::RangeResult> FaultStore::Range(const std::string& prefix) {
  if (FailBefore()) return Injected("before range");
  return inner_.Range(prefix);
}

Result<store::TxnResult> FaultStore::Commit(const store::Txn& txn) {
  if (FailBefore()) return Injected("before commit");
  auto result = inner_.Commit(txn);
  if (result.ok() && FailAfter()) return Injected("commit applied, answer lost");
  return result;
}

Result<std::unique_ptr<store::Watcher>> FaultStore::Watch(const std::string& prefix,
                                                          store::Revision start) {
  if (FailBefore()) return Injected("before watch");
  HAFAB_ASSIGN_OR_RETURN(std::unique_ptr<store::Watcher> inner, inner_.Watch(prefix, start));
  return std::unique_ptr<store::Watcher>(new FaultWatcher(*this, std::move(inner)));
}

Result<store::LeaseId> FaultStore::GrantLease(Duration ttl) {
  if (FailBefore()) return Injected("before grant lease");
  auto result = inner_.GrantLease(ttl);
  if (result.ok() && FailAfter()) return Injected("lease granted, answer lost");
  return result;
}

Status FaultStore::KeepAlive(store::LeaseId lease) {
  if (FailBefore()) return Injected("before keepalive");
  Status st = inner_.KeepAlive(lease);
  if (st.ok() && FailAfter()) return Injected("keepalive applied, answer lost");
  return st;
}

Status FaultStore::RevokeLease(store::LeaseId lease) {
  if (FailBefore()) return Injected("before revoke");
  Status st = inner_.RevokeLease(lease);
  if (st.ok() && FailAfter()) return Injected("revoke applied, answer lost");
  return st;
}

}  // namespace hafab::testing
