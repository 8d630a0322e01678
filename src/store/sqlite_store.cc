#include "store/sqlite_store.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"
#include "store/sqlite_db.h"

namespace hafab::store {
namespace sqlite_internal {
namespace {

constexpr int64_t kSchemaVersion = 1;

// Watchers recheck lease expiry at least this often while they wait, so that a FakeClock
// advanced by another thread (tests, the simulator) is noticed without other traffic.
constexpr Duration kMaxWatchSlice = std::chrono::milliseconds(100);

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE kv(
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX kv_by_lease ON kv(lease) WHERE lease != 0;
CREATE TABLE leases(id INTEGER PRIMARY KEY, ttl_ns INTEGER NOT NULL);
CREATE TABLE events(
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  PRIMARY KEY(revision, seq)) WITHOUT ROWID;
INSERT INTO meta(name, value) VALUES('revision', 0), ('oldest_revision', 1),
                                    ('next_lease_id', 1);
PRAGMA user_version = 1;
)sql";

constexpr int kEventPut = 0;
constexpr int kEventDelete = 1;

// The smallest key greater than every key that starts with `prefix`, or nullopt when there
// is none (empty prefix, or a prefix of 0xff bytes only).
std::optional<std::string> PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last != 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::nullopt;
}

// A WHERE clause on `key` for a prefix; binds at `first` and `first + 1`.
struct PrefixClause {
  std::string sql;
  std::string begin;
  std::optional<std::string> end;

  PrefixClause(const std::string& prefix, int first) : begin(prefix), end(PrefixEnd(prefix)) {
    sql = "key >= ?" + std::to_string(first);
    if (end) sql += " AND key < ?" + std::to_string(first + 1);
  }
  void Bind(sqlite::Statement& stmt, int first) const {
    stmt.BindBlob(first, begin);
    if (end) stmt.BindBlob(first + 1, *end);
  }
};

bool CompareNumbers(int64_t actual, Compare::Op op, int64_t expected) {
  switch (op) {
    case Compare::Op::kEqual:
      return actual == expected;
    case Compare::Op::kNotEqual:
      return actual != expected;
    case Compare::Op::kLess:
      return actual < expected;
    case Compare::Op::kGreater:
      return actual > expected;
  }
  return false;
}

bool CompareValues(const std::string& actual, Compare::Op op, const std::string& expected) {
  int c = actual.compare(expected);  // byte-wise, like memcmp
  return CompareNumbers(c, op, 0);
}

// Reads a key's row; nullopt if missing.
// Rejects what etcd rejects: a key put twice in one branch, or put and deleted in it.
Status ValidateBranch(const std::vector<Op>& ops) {
  std::set<std::string> puts;
  for (const Op& op : ops) {
    if (op.type == Op::Type::kPut && !puts.insert(op.key).second) {
      return Status::InvalidArgument("key " + op.key + " is put twice in one transaction");
    }
  }
  for (const Op& op : ops) {
    if (op.type == Op::Type::kPut) continue;
    auto it = puts.lower_bound(op.key);
    bool hit = it != puts.end() &&
               (op.type == Op::Type::kDelete ? *it == op.key : it->starts_with(op.key));
    if (hit) {
      return Status::InvalidArgument("key " + *it + " is both put and deleted in one transaction");
    }
  }
  return Status::Ok();
}

Result<std::optional<KeyValue>> ReadKey(sqlite::Db& db, const std::string& key) {
  HAFAB_ASSIGN_OR_RETURN(auto stmt,
                         db.Prepare("SELECT value, create_revision, mod_revision, version, lease "
                                    "FROM kv WHERE key = ?1"));
  stmt->BindBlob(1, key);
  HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
  if (!row) return std::optional<KeyValue>();
  KeyValue kv;
  kv.key = key;
  kv.value = stmt->ColumnBlob(0);
  kv.create_revision = stmt->ColumnInt(1);
  kv.mod_revision = stmt->ColumnInt(2);
  kv.version = stmt->ColumnInt(3);
  kv.lease = stmt->ColumnInt(4);
  return std::optional<KeyValue>(std::move(kv));
}

Result<std::vector<std::string>> KeysWithPrefix(sqlite::Db& db, const std::string& prefix) {
  PrefixClause where(prefix, 1);
  HAFAB_ASSIGN_OR_RETURN(auto stmt,
                         db.Prepare("SELECT key FROM kv WHERE " + where.sql + " ORDER BY key"));
  where.Bind(*stmt, 1);
  std::vector<std::string> keys;
  while (true) {
    HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    keys.push_back(stmt->ColumnBlob(0));
  }
  return keys;
}

Status SetMeta(sqlite::Db& db, const char* name, int64_t value) {
  HAFAB_ASSIGN_OR_RETURN(auto stmt, db.Prepare("UPDATE meta SET value = ?2 WHERE name = ?1"));
  stmt->BindText(1, name).BindInt(2, value);
  return stmt->Run();
}

Result<int64_t> GetMeta(sqlite::Db& db, const char* name) {
  HAFAB_ASSIGN_OR_RETURN(auto stmt, db.Prepare("SELECT value FROM meta WHERE name = ?1"));
  stmt->BindText(1, name);
  HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
  if (!row) return Status::Internal(std::string("store file has no meta value ") + name);
  return stmt->ColumnInt(0);
}

}  // namespace

struct LeaseState {
  Duration ttl;
  TimePoint deadline;
};

// One write transaction that becomes at most one revision. Rolls back unless committed.
class Writer {
 public:
  Writer(sqlite::Db& db, Revision current) : db_(db), revision_(current + 1) {}
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() {
    if (open_) (void)db_.Exec("ROLLBACK");
  }

  Status Begin() {
    HAFAB_RETURN_IF_ERROR(db_.Exec("BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }

  // The revision this transaction writes, if it changes anything.
  Revision revision() const { return revision_; }
  bool changed() const { return seq_ > 0; }

  Status Put(const std::string& key, const std::string& value, LeaseId lease) {
    HAFAB_ASSIGN_OR_RETURN(std::optional<KeyValue> old, ReadKey(db_, key));
    KeyValue kv;
    kv.key = key;
    kv.value = value;
    kv.create_revision = old ? old->create_revision : revision_;
    kv.mod_revision = revision_;
    kv.version = old ? old->version + 1 : 1;
    kv.lease = lease;
    HAFAB_ASSIGN_OR_RETURN(auto stmt,
                           db_.Prepare("INSERT OR REPLACE INTO kv(key, value, create_revision, "
                                       "mod_revision, version, lease) VALUES(?1,?2,?3,?4,?5,?6)"));
    stmt->BindBlob(1, kv.key).BindBlob(2, kv.value).BindInt(3, kv.create_revision);
    stmt->BindInt(4, kv.mod_revision).BindInt(5, kv.version).BindInt(6, kv.lease);
    HAFAB_RETURN_IF_ERROR(stmt->Run());
    return AddEvent(kEventPut, kv);
  }

  // Deletes `key` if it exists.
  Status Delete(const std::string& key) {
    HAFAB_ASSIGN_OR_RETURN(auto stmt, db_.Prepare("DELETE FROM kv WHERE key = ?1 RETURNING key"));
    stmt->BindBlob(1, key);
    HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) return Status::Ok();
    HAFAB_RETURN_IF_ERROR(stmt->Run());
    stmt.reset();
    KeyValue kv;
    kv.key = key;
    kv.mod_revision = revision_;
    return AddEvent(kEventDelete, kv);
  }

  Status DeletePrefix(const std::string& prefix) {
    HAFAB_ASSIGN_OR_RETURN(std::vector<std::string> keys, KeysWithPrefix(db_, prefix));
    for (const std::string& key : keys) HAFAB_RETURN_IF_ERROR(Delete(key));
    return Status::Ok();
  }

  // Deletes the leases and every key attached to them, keys in key order.
  Status DeleteLeases(const std::vector<LeaseId>& leases) {
    std::vector<std::string> keys;
    for (LeaseId id : leases) {
      HAFAB_ASSIGN_OR_RETURN(auto stmt, db_.Prepare("SELECT key FROM kv WHERE lease = ?1"));
      stmt->BindInt(1, id);
      while (true) {
        HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
        if (!row) break;
        keys.push_back(stmt->ColumnBlob(0));
      }
      HAFAB_ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM leases WHERE id = ?1"));
      del->BindInt(1, id);
      HAFAB_RETURN_IF_ERROR(del->Run());
    }
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) HAFAB_RETURN_IF_ERROR(Delete(key));
    return Status::Ok();
  }

  // Commits; if anything changed, the revision advances and history older than
  // `history_revisions` is compacted. Returns the oldest revision still in history.
  Result<Revision> Commit(Revision oldest, int64_t history_revisions) {
    if (changed()) {
      HAFAB_RETURN_IF_ERROR(SetMeta(db_, "revision", revision_));
      Revision new_oldest = std::max(oldest, revision_ - history_revisions + 1);
      if (new_oldest > oldest) {
        HAFAB_ASSIGN_OR_RETURN(auto stmt, db_.Prepare("DELETE FROM events WHERE revision < ?1"));
        stmt->BindInt(1, new_oldest);
        HAFAB_RETURN_IF_ERROR(stmt->Run());
        stmt.reset();
        HAFAB_RETURN_IF_ERROR(SetMeta(db_, "oldest_revision", new_oldest));
        oldest = new_oldest;
      }
    }
    HAFAB_RETURN_IF_ERROR(db_.Exec("COMMIT"));
    open_ = false;
    return oldest;
  }

 private:
  Status AddEvent(int type, const KeyValue& kv) {
    HAFAB_ASSIGN_OR_RETURN(auto stmt,
                           db_.Prepare("INSERT INTO events(revision, seq, type, key, value, "
                                       "create_revision, version, lease) "
                                       "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"));
    stmt->BindInt(1, revision_).BindInt(2, seq_++).BindInt(3, type).BindBlob(4, kv.key);
    stmt->BindBlob(5, kv.value).BindInt(6, kv.create_revision).BindInt(7, kv.version);
    stmt->BindInt(8, kv.lease);
    return stmt->Run();
  }

  sqlite::Db& db_;
  Revision revision_;
  int64_t seq_ = 0;
  bool open_ = false;
};

// State shared by the store and its watchers; every field behind `mu`.
struct Core {
  Core(Clock& c, SqliteStore::Options o) : clock(c), opts(o) {}

  Clock& clock;
  const SqliteStore::Options opts;
  std::mutex mu;
  // Notified after every commit that adds a revision, on close and on watcher Cancel.
  std::condition_variable changed;
  std::unique_ptr<sqlite::Db> db GUARDED_BY(mu);  // null once the store is closed
  Revision revision GUARDED_BY(mu) = 0;
  Revision oldest_revision GUARDED_BY(mu) = 1;
  LeaseId next_lease_id GUARDED_BY(mu) = 1;
  std::map<LeaseId, LeaseState> leases GUARDED_BY(mu);
  std::set<std::pair<TimePoint, LeaseId>> deadlines GUARDED_BY(mu);

  Status Load() REQUIRES_LOCK(mu) {
    HAFAB_ASSIGN_OR_RETURN(revision, GetMeta(*db, "revision"));
    HAFAB_ASSIGN_OR_RETURN(oldest_revision, GetMeta(*db, "oldest_revision"));
    HAFAB_ASSIGN_OR_RETURN(next_lease_id, GetMeta(*db, "next_lease_id"));
    HAFAB_ASSIGN_OR_RETURN(auto stmt, db->Prepare("SELECT id, ttl_ns FROM leases"));
    // Lease deadlines are not in the file, only the leases and their TTLs: after a restart
    // every lease gets one full TTL from now, so that a restarted controller gives every
    // holder the time to renew before anything it holds disappears.
    TimePoint now = clock.Now();
    while (true) {
      HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      LeaseId id = stmt->ColumnInt(0);
      Duration ttl = std::chrono::nanoseconds(stmt->ColumnInt(1));
      SetDeadline(id, ttl, now + ttl);
    }
    return Status::Ok();
  }

  Status CheckOpen() REQUIRES_LOCK(mu) {
    if (!db) return Status::Unavailable("store closed");
    return Status::Ok();
  }

  void SetDeadline(LeaseId id, Duration ttl, TimePoint deadline) REQUIRES_LOCK(mu) {
    auto it = leases.find(id);
    if (it != leases.end()) deadlines.erase({it->second.deadline, id});
    leases[id] = LeaseState{ttl, deadline};
    deadlines.insert({deadline, id});
  }

  // Finishes a write: advances the in-memory revision and wakes the watchers.
  Status Finish(Writer& writer) REQUIRES_LOCK(mu) {
    HAFAB_ASSIGN_OR_RETURN(Revision oldest, writer.Commit(oldest_revision, opts.history_revisions));
    oldest_revision = oldest;
    if (writer.changed()) {
      revision = writer.revision();
      changed.notify_all();
    }
    return Status::Ok();
  }

  // Deletes `ids` and their keys in one revision, then forgets their deadlines.
  Status DeleteLeases(const std::vector<LeaseId>& ids) REQUIRES_LOCK(mu) {
    Writer writer(*db, revision);
    HAFAB_RETURN_IF_ERROR(writer.Begin());
    HAFAB_RETURN_IF_ERROR(writer.DeleteLeases(ids));
    HAFAB_RETURN_IF_ERROR(Finish(writer));
    for (LeaseId id : ids) {
      auto it = leases.find(id);
      deadlines.erase({it->second.deadline, id});
      leases.erase(it);
    }
    return Status::Ok();
  }

  // Called at the start of every method: removes the leases whose deadline has passed.
  Status ExpireLeases() REQUIRES_LOCK(mu) {
    HAFAB_RETURN_IF_ERROR(CheckOpen());
    TimePoint now = clock.Now();
    std::vector<LeaseId> expired;
    for (auto it = deadlines.begin(); it != deadlines.end() && it->first <= now; ++it) {
      expired.push_back(it->second);
    }
    if (expired.empty()) return Status::Ok();
    return DeleteLeases(expired).WithContext("expire leases");
  }

  Status Apply(Writer& writer, const std::vector<Op>& ops) REQUIRES_LOCK(mu) {
    HAFAB_RETURN_IF_ERROR(ValidateBranch(ops));
    for (const Op& op : ops) {
      switch (op.type) {
        case Op::Type::kPut:
          if (op.lease != 0 && !leases.contains(op.lease)) {
            return Status::InvalidArgument("put " + op.key + ": lease " + std::to_string(op.lease) +
                                           " not found");
          }
          HAFAB_RETURN_IF_ERROR(writer.Put(op.key, op.value, op.lease));
          break;
        case Op::Type::kDelete:
          HAFAB_RETURN_IF_ERROR(writer.Delete(op.key));
          break;
        case Op::Type::kDeletePrefix:
          HAFAB_RETURN_IF_ERROR(writer.DeletePrefix(op.key));
          break;
      }
    }
    return Status::Ok();
  }

  Result<bool> Holds(const Compare& c) REQUIRES_LOCK(mu) {
    HAFAB_ASSIGN_OR_RETURN(std::optional<KeyValue> kv, ReadKey(*db, c.key));
    switch (c.target) {
      case Compare::Target::kValue:
        // As in etcd: a value compare on a missing key fails, whatever the op.
        return kv.has_value() && CompareValues(kv->value, c.op, c.value);
      case Compare::Target::kVersion:
        return CompareNumbers(kv ? kv->version : 0, c.op, c.number);
      case Compare::Target::kCreateRevision:
        return CompareNumbers(kv ? kv->create_revision : 0, c.op, c.number);
      case Compare::Target::kModRevision:
        return CompareNumbers(kv ? kv->mod_revision : 0, c.op, c.number);
    }
    return false;
  }
};

class SqliteWatcher final : public Watcher {
 public:
  SqliteWatcher(std::shared_ptr<Core> core, std::string prefix, Revision next)
      : core_(std::move(core)), prefix_(std::move(prefix)), next_(next) {}

  Result<WatchBatch> Next(Duration timeout) override {
    Clock& real = RealClock();
    TimePoint give_up = real.Now() + timeout;
    PrefixClause where(prefix_, 2);
    std::string sql =
        "SELECT revision, type, key, value, create_revision, version, lease FROM events "
        "WHERE revision >= ?1 AND " +
        where.sql + " ORDER BY revision, seq";
    std::unique_lock<std::mutex> lock(core_->mu);
    while (true) {
      if (cancelled_) return Status::Unavailable("watch cancelled");
      HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
      if (next_ < core_->oldest_revision) {
        return Status::Conflict("revision " + std::to_string(next_) + " compacted; oldest is " +
                                std::to_string(core_->oldest_revision));
      }
      WatchBatch batch;
      batch.revision = core_->revision;
      {
        HAFAB_ASSIGN_OR_RETURN(auto stmt, core_->db->Prepare(sql));
        stmt->BindInt(1, next_);
        where.Bind(*stmt, 2);
        while (true) {
          HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
          if (!row) break;
          Event event;
          event.type =
              stmt->ColumnInt(1) == kEventDelete ? Event::Type::kDelete : Event::Type::kPut;
          event.kv.key = stmt->ColumnBlob(2);
          event.kv.mod_revision = stmt->ColumnInt(0);
          if (event.type == Event::Type::kPut) {
            event.kv.value = stmt->ColumnBlob(3);
            event.kv.create_revision = stmt->ColumnInt(4);
            event.kv.version = stmt->ColumnInt(5);
            event.kv.lease = stmt->ColumnInt(6);
          }
          batch.events.push_back(std::move(event));
        }
      }
      // Everything up to the current revision has been looked at, matching or not.
      next_ = std::max(next_, core_->revision + 1);
      if (!batch.events.empty()) return batch;
      TimePoint now = real.Now();
      if (now >= give_up) return batch;
      Duration slice = std::min<Duration>(give_up - now, kMaxWatchSlice);
      if (!core_->deadlines.empty()) {
        Duration to_expiry = core_->deadlines.begin()->first - core_->clock.Now();
        slice = std::max<Duration>(Duration::zero(), std::min(slice, to_expiry));
      }
      core_->changed.wait_for(lock, slice);
    }
  }

  void Cancel() override {
    std::lock_guard<std::mutex> lock(core_->mu);
    cancelled_ = true;
    core_->changed.notify_all();
  }

 private:
  std::shared_ptr<Core> core_;
  const std::string prefix_;
  Revision next_;  // only Next() touches it
  bool cancelled_ GUARDED_BY(core_->mu) = false;
};

}  // namespace sqlite_internal

using sqlite_internal::Core;

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, Clock& clock,
                                                       Options opts) {
  if (opts.history_revisions < 1) {
    return Status::InvalidArgument("history_revisions must be at least 1");
  }
  auto core = std::make_shared<Core>(clock, opts);
  std::lock_guard<std::mutex> lock(core->mu);
  auto context = [&](const Status& st) { return st.WithContext("open store " + path); };
  {
    auto db = sqlite::Db::Open(path, opts.busy_timeout);
    if (!db.ok()) return db.status();
    core->db = std::move(db).value();
  }
  sqlite::Db& db = *core->db;
  // Exclusive before WAL: one process owns the file, and WAL needs no shared memory then.
  Status st = db.Exec("PRAGMA locking_mode=EXCLUSIVE");
  if (!st.ok()) return context(st);
  {
    auto mode = db.Prepare("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return context(mode.status());
    auto row = (*mode)->Step();
    if (!row.ok()) return context(row.status());
    std::string got = *row ? (*mode)->ColumnBlob(0) : "";
    if (got != "wal" && path != ":memory:" && !path.empty()) {
      return Status::Unavailable("open store " + path + ": cannot use WAL mode (got '" + got +
                                 "')");
    }
  }
  // FULL: the WAL is fsynced at every commit, so an OK commit survives power loss.
  st = db.Exec("PRAGMA synchronous=FULL");
  if (!st.ok()) return context(st);
  int64_t version = 0;
  {
    auto stmt = db.Prepare("PRAGMA user_version");
    if (!stmt.ok()) return context(stmt.status());
    auto row = (*stmt)->Step();
    if (!row.ok()) return context(row.status());
    version = *row ? (*stmt)->ColumnInt(0) : 0;
  }
  if (version == 0) {
    st = db.Exec(std::string("BEGIN IMMEDIATE;") + sqlite_internal::kSchema + "COMMIT;");
    if (!st.ok()) {
      (void)db.Exec("ROLLBACK");
      return context(st.WithContext("create schema"));
    }
  } else if (version > sqlite_internal::kSchemaVersion) {
    return Status::InvalidArgument("open store " + path + ": schema version " +
                                   std::to_string(version) + " is newer than this binary's " +
                                   std::to_string(sqlite_internal::kSchemaVersion));
  }
  st = core->Load();
  if (!st.ok()) return context(st);
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(core)));
}

SqliteStore::~SqliteStore() {
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->db.reset();
  core_->leases.clear();
  core_->deadlines.clear();
  core_->changed.notify_all();
}

Result<KeyValue> SqliteStore::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  HAFAB_ASSIGN_OR_RETURN(std::optional<KeyValue> kv, sqlite_internal::ReadKey(*core_->db, key));
  if (!kv) return Status::NotFound("key " + key + " not found");
  return std::move(*kv);
}

Result<RangeResult> SqliteStore::Range(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  sqlite_internal::PrefixClause where(prefix, 1);
  HAFAB_ASSIGN_OR_RETURN(auto stmt,
                         core_->db->Prepare("SELECT key, value, create_revision, mod_revision, "
                                            "version, lease FROM kv WHERE " +
                                            where.sql + " ORDER BY key"));
  where.Bind(*stmt, 1);
  RangeResult result;
  result.revision = core_->revision;
  while (true) {
    HAFAB_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    KeyValue kv;
    kv.key = stmt->ColumnBlob(0);
    kv.value = stmt->ColumnBlob(1);
    kv.create_revision = stmt->ColumnInt(2);
    kv.mod_revision = stmt->ColumnInt(3);
    kv.version = stmt->ColumnInt(4);
    kv.lease = stmt->ColumnInt(5);
    result.kvs.push_back(std::move(kv));
  }
  return result;
}

Result<TxnResult> SqliteStore::Commit(const Txn& txn) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  sqlite_internal::Writer writer(*core_->db, core_->revision);
  HAFAB_RETURN_IF_ERROR(writer.Begin());
  TxnResult result;
  result.succeeded = true;
  for (const Compare& c : txn.compares) {
    HAFAB_ASSIGN_OR_RETURN(bool holds, core_->Holds(c));
    if (!holds) {
      result.succeeded = false;
      break;
    }
  }
  HAFAB_RETURN_IF_ERROR(core_->Apply(writer, result.succeeded ? txn.success : txn.failure));
  HAFAB_RETURN_IF_ERROR(core_->Finish(writer));
  result.revision = core_->revision;
  return result;
}

Result<std::unique_ptr<Watcher>> SqliteStore::Watch(const std::string& prefix, Revision start) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  if (start < 0) return Status::InvalidArgument("watch start revision must be >= 0");
  if (start > 0 && start < core_->oldest_revision) {
    return Status::Conflict("revision " + std::to_string(start) + " compacted; oldest is " +
                            std::to_string(core_->oldest_revision));
  }
  Revision next = start == 0 ? core_->revision + 1 : start;
  return std::unique_ptr<Watcher>(new sqlite_internal::SqliteWatcher(core_, prefix, next));
}

Result<LeaseId> SqliteStore::GrantLease(Duration ttl) {
  if (ttl <= Duration::zero()) return Status::InvalidArgument("lease ttl must be positive");
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  sqlite::Db& db = *core_->db;
  LeaseId id = core_->next_lease_id;
  HAFAB_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto write = [&]() -> Status {
    HAFAB_ASSIGN_OR_RETURN(auto stmt, db.Prepare("INSERT INTO leases(id, ttl_ns) VALUES(?1, ?2)"));
    stmt->BindInt(1, id).BindInt(2, std::chrono::nanoseconds(ttl).count());
    HAFAB_RETURN_IF_ERROR(stmt->Run());
    stmt.reset();
    HAFAB_RETURN_IF_ERROR(sqlite_internal::SetMeta(db, "next_lease_id", id + 1));
    return db.Exec("COMMIT");
  };
  Status st = write();
  if (!st.ok()) {
    (void)db.Exec("ROLLBACK");
    return st.WithContext("grant lease");
  }
  core_->next_lease_id = id + 1;
  core_->SetDeadline(id, ttl, core_->clock.Now() + ttl);
  return id;
}

Status SqliteStore::KeepAlive(LeaseId lease) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  auto it = core_->leases.find(lease);
  if (it == core_->leases.end()) {
    return Status::NotFound("lease " + std::to_string(lease) + " not found");
  }
  Duration ttl = it->second.ttl;
  core_->SetDeadline(lease, ttl, core_->clock.Now() + ttl);
  return Status::Ok();
}

Status SqliteStore::RevokeLease(LeaseId lease) {
  std::lock_guard<std::mutex> lock(core_->mu);
  HAFAB_RETURN_IF_ERROR(core_->ExpireLeases());
  if (!core_->leases.contains(lease)) {
    return Status::NotFound("lease " + std::to_string(lease) + " not found");
  }
  return core_->DeleteLeases({lease}).WithContext("revoke lease");
}

}  // namespace hafab::store
