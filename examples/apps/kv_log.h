// KvLog: the append-only, fsynced record log behind kvd. One file; each record is
// [magic u32][key length u32][value length u32][crc32 u32][key][value], host byte order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/status.h"

namespace hafab::apps {

class KvLog {
 public:
  // What Open found in an existing log.
  struct Replay {
    std::map<std::string, std::string> entries;  // last value of each key
    size_t records = 0;
    size_t torn_bytes = 0;  // bytes of an incomplete last record that were truncated away
  };

  ~KvLog();
  KvLog(const KvLog&) = delete;
  KvLog& operator=(const KvLog&) = delete;

  // Opens (creating if needed) `path`, replays it and truncates a torn last record, the
  // trace of a crash in the middle of an append. Creating the file fsyncs its directory.
  // Errors: Internal if the file cannot be opened, read or truncated (message names the
  // path and the OS error); Internal if a record before the last one is corrupt (a torn
  // write can only be the last record, so that is damage we must not silently discard).
  static Result<std::unique_ptr<KvLog>> Open(const std::string& path, Replay* replay);

  // Appends one record and fsyncs it; when it returns OK the record survives a crash
  // of the process or of the machine. On error the file is cut back to its previous
  // length. Errors: InvalidArgument for a key or value above 4 GiB; Internal (names the
  // path and the OS error) when write or fsync fail.
  Status Append(const std::string& key, const std::string& value);
  // Appends several records with one write and one fsync (group commit): all of them are
  // durable when it returns OK, none is kept on error. Errors as Append.
  Status AppendBatch(const std::vector<std::pair<std::string, std::string>>& records);

  const std::string& path() const { return path_; }

  // Rewrites the log at `path` to hold one record per key of `entries`, the state Open
  // replayed: written to `path`.compact, fsynced, renamed over `path`, directory fsynced.
  // A crash leaves either the old log or the new one. A KvLog still open on `path` goes on
  // writing the old file: open it again. Errors: Internal naming the file and the OS
  // error; the old log is then untouched.
  static Status Compact(const std::string& path, const std::map<std::string, std::string>& entries);

 private:
  KvLog(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}

  std::string path_;
  int fd_;
  uint64_t size_;
};

// The bytes of one record, for tests that fake a torn write.
std::string EncodeKvRecord(const std::string& key, const std::string& value);

}  // namespace hafab::apps
