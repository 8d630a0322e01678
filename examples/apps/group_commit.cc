#include "group_commit.h"

#include <boost/asio/post.hpp>
#include <utility>
#include <vector>

namespace hafab::apps {

GroupCommitter::GroupCommitter(boost::asio::io_context& io, KvLog& log)
    : io_(io), log_(log), writer_([this] { WriterLoop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void GroupCommitter::Append(std::string key, std::string value, std::optional<uint64_t> epoch,
                            std::function<void(Status, KvPosition)> done) {
  Enqueue({.key = std::move(key),
           .value = std::move(value),
           .epoch = epoch,
           .done = std::move(done),
           .positioned = {},
           .positioned_done = nullptr});
}

void GroupCommitter::AppendRecords(std::vector<KvRecord> records,
                                   std::function<void(Status)> done) {
  Enqueue({.key = {},
           .value = {},
           .epoch = std::nullopt,
           .done = nullptr,
           .positioned = std::move(records),
           .positioned_done = std::move(done)});
}

void GroupCommitter::Enqueue(Pending pending) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(pending));
  }
  wake_.notify_one();
}

void GroupCommitter::WriterLoop() {
  for (;;) {
    std::deque<Pending> batch;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left
      batch.swap(queue_);
    }
    // Positions the new records after the log's last one, in queue order.
    KvPosition next = log_.last();
    std::vector<KvRecord> records;
    std::vector<KvPosition> positions;
    records.reserve(batch.size());
    for (auto& p : batch) {
      if (p.done) {
        next = {p.epoch.value_or(next.epoch), next.index + 1};
        positions.push_back(next);
        records.push_back({next, std::move(p.key), std::move(p.value)});
      } else {
        for (auto& r : p.positioned) {
          next = r.position;
          records.push_back(std::move(r));
        }
      }
    }
    Status status = log_.AppendRecords(records);
    boost::asio::post(
        io_, [batch = std::move(batch), positions = std::move(positions), status]() mutable {
          size_t i = 0;
          for (auto& p : batch) {
            if (p.done) {
              p.done(status, positions[i++]);
            } else {
              p.positioned_done(status);
            }
          }
        });
  }
}

}  // namespace hafab::apps
