// GroupCommitter: kvd's write path. Writes queue here from the io_context thread; one
// writer thread appends everything queued so far with a single write and fsync, then
// hands each result back on the io_context. Throughput grows with concurrent writers
// while every acknowledgement still follows its fsync.
#pragma once

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "kv_log.h"

namespace hafab::apps {

class GroupCommitter {
 public:
  // `log` must outlive this object; `io` must outlive it too (destroy this first).
  GroupCommitter(boost::asio::io_context& io, KvLog& log);
  // Writes what is still queued, then joins the writer thread. Callbacks of those last
  // writes are posted to `io` and run only if it runs again.
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues one record for the next index, in `epoch` (default: the log's last record's).
  // `done` runs on `io` with OK and the record's position once it is durable, or the error
  // of the batch it was part of. Thread-safe.
  void Append(std::string key, std::string value, std::optional<uint64_t> epoch,
              std::function<void(Status, KvPosition)> done);
  // Queues records that carry their positions (KvLog::AppendRecords); `done` runs on `io`
  // once they are durable, or with the error of their batch. Thread-safe.
  void AppendRecords(std::vector<KvRecord> records, std::function<void(Status)> done);

 private:
  // Either one new record (positioned when written) or records already positioned.
  struct Pending {
    std::string key;
    std::string value;
    std::optional<uint64_t> epoch;
    std::function<void(Status, KvPosition)> done;
    std::vector<KvRecord> positioned;
    std::function<void(Status)> positioned_done;
  };

  void Enqueue(Pending pending);
  void WriterLoop();

  boost::asio::io_context& io_;
  KvLog& log_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace hafab::apps
