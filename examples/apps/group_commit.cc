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

void GroupCommitter::Append(std::string key, std::string value, std::function<void(Status)> done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(key), std::move(value), std::move(done)});
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
    std::vector<std::pair<std::string, std::string>> records;
    records.reserve(batch.size());
    for (auto& p : batch) records.emplace_back(std::move(p.key), std::move(p.value));
    Status status = log_.AppendBatch(records);
    boost::asio::post(io_, [batch = std::move(batch), status]() mutable {
      for (auto& p : batch) p.done(status);
    });
  }
}

}  // namespace hafab::apps
