// Store: the one seam for durable state. Shaped after etcd v3 (and Mesos' Storage):
// keys with revisions, multi-key transactions with compares, prefix reads, watches
// from a revision, and leases with a TTL that delete their keys when they expire.
// Backends: SqliteStore (embedded, one file, WAL) and EtcdStore (etcd v3 over HTTP/JSON).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace hafab::store {

// Revisions are store-wide, start at 1 for the first write, and grow by one per
// committed transaction that changes something (like etcd's).
using Revision = int64_t;
using LeaseId = int64_t;  // 0 = no lease

struct KeyValue {
  std::string key;
  std::string value;
  Revision create_revision = 0;
  Revision mod_revision = 0;
  int64_t version = 0;  // 1 at creation, +1 per put
  LeaseId lease = 0;
  bool operator==(const KeyValue&) const = default;
};

struct Compare {
  enum class Target { kValue, kVersion, kCreateRevision, kModRevision };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kValue;
  Op op = Op::kEqual;
  std::string value;   // for kValue; compared byte-wise (unsigned, like memcmp)
  int64_t number = 0;  // for the others; a missing key has version/revisions 0
  // As in etcd, a kValue compare on a missing key is false whatever the op (a missing
  // value is not ""): test existence with Missing()/Exists().

  static Compare ValueEquals(std::string key, std::string value);
  static Compare ModRevisionEquals(std::string key, Revision rev);
  static Compare Missing(std::string key);  // create_revision == 0
  static Compare Exists(std::string key);   // create_revision > 0
};

struct Op {
  enum class Type { kPut, kDelete, kDeletePrefix };
  Type type = Type::kPut;
  std::string key;  // the prefix for kDeletePrefix
  std::string value;
  LeaseId lease = 0;

  static Op Put(std::string key, std::string value, LeaseId lease = 0);
  static Op Delete(std::string key);
  static Op DeletePrefix(std::string prefix);
};

// If every compare holds, `success` is applied, else `failure`; atomically, all or nothing.
// Ops apply in order, all at one revision. As in etcd, within one branch a key may be put
// at most once and may not be both put and deleted (by kDelete or kDeletePrefix): such a
// transaction is rejected with InvalidArgument. A transaction that changes nothing (no
// ops, or deletes of missing keys) does not advance the revision.
struct Txn {
  std::vector<Compare> compares;
  std::vector<Op> success;
  std::vector<Op> failure;
};

struct TxnResult {
  bool succeeded = false;
  Revision revision = 0;  // the store's revision after the transaction
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  Revision revision = 0;      // the store's revision the read saw
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for kDelete: key and mod_revision (the deleting revision) only
};

struct WatchBatch {
  std::vector<Event> events;  // in revision order
  Revision revision = 0;      // the store's revision when the batch was made
};

class Watcher {
 public:
  virtual ~Watcher() = default;
  // Waits up to `timeout` for events after the last delivered one and returns them;
  // an empty batch on timeout. Not thread-safe with itself; Cancel() may be called from
  // any thread and makes a waiting Next() return Unavailable("watch cancelled") promptly.
  // Errors: Conflict if the start revision was compacted; Unavailable if the store closed
  // or the connection broke (the caller re-watches from its last revision + 1).
  // `timeout` is real time even when the store runs on a fake clock: it blocks a thread.
  virtual Result<WatchBatch> Next(Duration timeout) = 0;
  // Ends the watch: this and every later Next() return Unavailable("watch cancelled").
  virtual void Cancel() = 0;
};

// Every method is thread-safe. A returned OK means durable (fsynced, or majority-committed).
class Store {
 public:
  virtual ~Store() = default;

  // NotFound if the key does not exist.
  virtual Result<KeyValue> Get(const std::string& key) = 0;

  // Every key that starts with `prefix` ("" = all), sorted by key.
  virtual Result<RangeResult> Range(const std::string& prefix) = 0;

  // Applies `txn` atomically. InvalidArgument for an op naming a lease that does not exist
  // (or has expired), or a branch touching a key twice (see Txn); nothing is applied then.
  // Unavailable when the backend cannot commit now (nothing applied, as far as the backend
  // knows: a remote backend may lose the answer of a commit that did apply, so writers
  // make their transactions safe to retry, e.g. guarded by a compare).
  virtual Result<TxnResult> Commit(const Txn& txn) = 0;

  // Events for keys under `prefix` with revision >= `start` (0 = from now on).
  // Conflict("revision R compacted; oldest is S") if `start` is older than the history
  // kept; a backend may report it here or from the first Next(). The caller then
  // re-reads with Range and watches from that read's revision + 1.
  virtual Result<std::unique_ptr<Watcher>> Watch(const std::string& prefix, Revision start) = 0;

  // Grants a lease; keys put with it are deleted when it expires or is revoked.
  // InvalidArgument if ttl <= 0.
  virtual Result<LeaseId> GrantLease(Duration ttl) = 0;
  // Renews the lease for another ttl. NotFound if it expired or was revoked.
  virtual Status KeepAlive(LeaseId lease) = 0;
  // Deletes the lease and its keys. NotFound if it does not exist.
  virtual Status RevokeLease(LeaseId lease) = 0;

  // Convenience, built on Commit; they return the store's revision afterwards (unchanged
  // when Delete finds no key).
  Result<Revision> Put(const std::string& key, const std::string& value, LeaseId lease = 0);
  Result<Revision> Delete(const std::string& key);
};

}  // namespace hafab::store
