// A thin RAII layer over the SQLite C API for SqliteStore: one connection, a cache of
// prepared statements, and SQLite result codes turned into Status. Internal to src/store.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"
#include "core/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hafab::store::sqlite {

// Maps a SQLite result code to a Status: BUSY/LOCKED/FULL/IOERR -> Unavailable (the
// environment may recover), CORRUPT/NOTADB -> Internal, anything else -> Internal.
Status StatusFromCode(int code, std::string_view context, std::string_view detail);

// A prepared statement borrowed from Db's cache. Resets itself (and clears its bindings)
// when it goes out of scope, so the next user finds it fresh. Not thread-safe.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Blobs are copied.
  Statement& BindInt(int index, int64_t value);
  Statement& BindBlob(int index, std::string_view value);
  Statement& BindText(int index, std::string_view value);

  // Runs one step: true when a row is available, false when done.
  // Errors: StatusFromCode of the failure.
  Result<bool> Step();
  // Steps until done, ignoring rows.
  Status Run();

  // Columns are 0-based. REQUIRES: the last Step() returned true.
  int64_t ColumnInt(int index) const;
  std::string ColumnBlob(int index) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection. Not thread-safe: the owner serialises every call.
class Db {
 public:
  // Opens (creating if missing) the database at `path` (":memory:" for a private
  // in-memory one). Errors: Unavailable if the file cannot be opened.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, Duration busy_timeout);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more statements without parameters.
  Status Exec(std::string_view sql);

  // A statement for `sql`, prepared once and cached for the life of the connection.
  // REQUIRES: the previous Statement for the same `sql` is gone.
  Result<std::unique_ptr<Statement>> Prepare(const std::string& sql);

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace hafab::store::sqlite
