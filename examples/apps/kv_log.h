// KvLog: the append-only, fsynced record log behind kvd. One file of records, each with
// the position (epoch, index) that replication compares (docs/replication.md):
//   [magic "hkv2" u32][key length u32][value length u32][crc32 u32][epoch u64][index u64]
//   [key][value]
// host byte order; the checksum covers the lengths, the position and the payload. Indexes
// are consecutive from 1; epochs never decrease. A log written before records carried a
// position ("hkv1": the same without epoch and index) still replays: its records get
// epoch 0 and the next index. A record with an empty key is a marker (the first record of
// each run of a primary, its value an id of that run: kv_replica.h), not a key.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/status.h"
#include "core/thread_annotations.h"

namespace hafab::apps {

// Where a record is in the replicated history. Compares by epoch, then index.
struct KvPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;
  auto operator<=>(const KvPosition&) const = default;
};

struct KvRecord {
  KvPosition position;
  std::string key;  // "" for a marker
  std::string value;
};

class KvLog {
 public:
  // What Open found in an existing log.
  struct Replay {
    std::map<std::string, std::string> entries;  // last value of each key
    std::map<uint64_t, KvRecord> markers;        // the markers, by index
    size_t records = 0;                          // markers included
    size_t legacy_records = 0;                   // of them, in the format without positions
    size_t torn_bytes = 0;  // bytes of an incomplete last record that were truncated away
    // Records of an older epoch after a newer one's (a fenced primary that appended after it
    // was resumed): taken out of the log into `stale_file`, never acknowledged.
    size_t stale_records = 0;
    std::string stale_file;
    KvPosition last;  // of the last record, {0, 0} for an empty log
  };

  ~KvLog();
  KvLog(const KvLog&) = delete;
  KvLog& operator=(const KvLog&) = delete;

  // Opens (creating if needed) `path`, replays it and truncates a torn last record, the
  // trace of a crash in the middle of an append. Creating the file fsyncs its directory.
  // Errors: Internal if the file cannot be opened, read or truncated (message names the
  // path and the OS error); Internal if a record before the last one is corrupt (a torn
  // write can only be the last record, so that is damage we must not silently discard) or
  // if a record's index does not follow the one before it. The exception: records of an
  // older epoch than the one before them, at an index already taken — the late append of a
  // primary that was stopped (SIGSTOP, a frozen VM) and resumed after the next primary took
  // the volume — are moved into `<path>.stale-epoch-E-<time>` and the log rewritten without
  // them (Replay::stale_records, stale_file).
  static Result<std::unique_ptr<KvLog>> Open(const std::string& path, Replay* replay);

  // Appends one record at the next index, in the epoch of the last record, and fsyncs it;
  // when it returns OK the record survives a crash of the process or of the machine.
  // Errors as AppendRecords.
  Status Append(const std::string& key, const std::string& value);
  // Appends several records at the next indexes with one write and one fsync (group
  // commit), in `epoch` (default: the last record's). All of them are durable when it
  // returns OK (with the position of the last), none is kept on error. Errors as
  // AppendRecords.
  Result<KvPosition> AppendBatch(const std::vector<std::pair<std::string, std::string>>& records,
                                 std::optional<uint64_t> epoch = std::nullopt);
  // Appends records that carry their positions (a secondary's copy of its primary's), with
  // one write and one fsync. On error the file is cut back to its previous length.
  // Errors: InvalidArgument for a key or value above 4 GiB, an index that is not the next
  // one or an epoch below the last record's; Internal (names the path and the OS error)
  // when write or fsync fail.
  // REQUIRES: one appending thread at a time, and no TruncateAfter meanwhile.
  Status AppendRecords(const std::vector<KvRecord>& records);

  // The position of the last durable record ({0, 0} when empty). Thread-safe.
  KvPosition last() const;
  // The epoch of the record at `index` (0 for index 0, the empty prefix); nullopt past the
  // end. Thread-safe.
  std::optional<uint64_t> EpochAt(uint64_t index) const;
  // The index of the last record whose epoch is at most `epoch` (0 if none): where a log
  // that ends in `epoch` stops sharing this one's history. Thread-safe.
  uint64_t EndOfEpoch(uint64_t epoch) const;
  // The encoded records from index `first` on, up to index `last` and about `max_bytes`
  // (at least one record), all with their positions (also those written without one).
  // Thread-safe. Errors: InvalidArgument if `first` is 0 or past the
  // end; Internal naming the path if the read fails.
  Result<std::string> ReadRange(uint64_t first, uint64_t last, size_t max_bytes) const;
  // Moves the records after `index` into a new file `aside_path` (fsynced, never
  // overwriting one) and cuts the log back to `index`. Errors: InvalidArgument if `index`
  // is past the end; Internal naming the file and the OS error (the log is then unchanged
  // if the tail could not be written aside).
  // REQUIRES: no append in flight.
  Status TruncateAfter(uint64_t index, const std::string& aside_path);

  const std::string& path() const { return path_; }

  // Rewrites the log at `path` to hold one record per key of `entries`, the state Open
  // replayed: written to `path`.compact, fsynced, renamed over `path`, directory fsynced.
  // A crash leaves either the old log or the new one. A KvLog still open on `path` goes on
  // writing the old file: open it again. The new records are in epoch 0 from index 1: for
  // a log that is not replicated (compaction forgets the history positions compare).
  // Errors: Internal naming the file and the OS error; the old log is then untouched.
  static Status Compact(const std::string& path, const std::map<std::string, std::string>& entries);

 private:
  struct Indexed {
    uint64_t epoch;
    uint64_t offset;
  };
  KvLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  Status WriteAndSync(const std::string& bytes);
  // Writes the `stale` ranges of `data` (the log's bytes) to a file of their own and `path`
  // without them; the file's name.
  static Result<std::string> SetStaleAside(const std::string& path, const std::string& data,
                                           const std::vector<std::pair<size_t, size_t>>& stale,
                                           uint64_t epoch);

  std::string path_;
  int fd_;
  mutable std::mutex mu_;
  // Record index i is index_[i - 1]; only durable records.
  std::vector<Indexed> index_ GUARDED_BY(mu_);
  uint64_t size_ GUARDED_BY(mu_) = 0;
};

// The bytes of one record.
std::string EncodeKvRecord(const KvRecord& record);
// The bytes of one record in the format kvd wrote before records carried a position, for
// tests that check such a log still replays (and that fake a torn write).
std::string EncodeKvRecord(const std::string& key, const std::string& value);
// Decodes records as ReadRange returns them. Errors: InvalidArgument if the bytes are not
// whole records with valid checksums, or an index does not follow the one before.
Result<std::vector<KvRecord>> DecodeKvRecords(std::string_view bytes);

}  // namespace hafab::apps
