#include "provider/background_provider.h"

#include <spdlog/spdlog.h>

namespace hafab::provider {

namespace {
// An uncollected ForceDetach result is stale after this: the next call starts another.
constexpr Duration kResultKept = std::chrono::minutes(1);
// A Describe result older than this is not an answer: the attachment may have moved since.
constexpr Duration kDescribeFresh = std::chrono::milliseconds(500);
}  // namespace

BackgroundProvider::BackgroundProvider(std::unique_ptr<Provider> inner, Clock& clock)
    : inner_(std::move(inner)), clock_(clock), worker_([this] { Run(); }) {}

BackgroundProvider::~BackgroundProvider() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

Status BackgroundProvider::Attach(const std::string& volume, const std::string& node,
                                  const std::string& instance) {
  return inner_->Attach(volume, node, instance);
}

Status BackgroundProvider::Detach(const std::string& volume, const std::string& node) {
  return inner_->Detach(volume, node);
}

std::string BackgroundProvider::MountPath(const std::string& volume, const std::string& node) {
  return inner_->MountPath(volume, node);
}

Status BackgroundProvider::ForceDetach(const std::string& volume, const std::string& node) {
  std::lock_guard lock(mu_);
  const auto key = std::make_pair(volume, node);
  auto it = detaching_.find(key);
  if (it != detaching_.end() && it->second.done &&
      clock_.Now() - it->second.finished > kResultKept) {
    detaching_.erase(it);
    it = detaching_.end();
  }
  if (it == detaching_.end()) {
    detaching_[key] = {};
    Enqueue([this, volume, node, key] {
      Status st = inner_->ForceDetach(volume, node);
      std::lock_guard lock(mu_);
      Detaching& d = detaching_[key];
      d.done = true;
      d.result = st;
      d.finished = clock_.Now();
      // Describe results begun before this detach no longer hold.
      Described& desc = described_[volume];
      ++desc.generation;
      desc.latest.reset();
    });
    return Status::Unavailable("force-detach of " + volume + " from " + node + " started");
  }
  if (!it->second.done) {
    return Status::Unavailable("force-detach of " + volume + " from " + node + " in progress");
  }
  Status result = it->second.result;
  detaching_.erase(it);
  return result;
}

Result<VolumeAttachment> BackgroundProvider::Describe(const std::string& volume) {
  std::lock_guard lock(mu_);
  Described& d = described_[volume];
  if (d.latest && clock_.Now() - d.completed > kDescribeFresh) d.latest.reset();
  if (!d.running) StartDescribe(volume, d);
  if (!d.latest) return Status::Unavailable("describe of " + volume + " in progress");
  return *d.latest;
}

void BackgroundProvider::StartDescribe(const std::string& volume, Described& d) {
  d.running = true;
  const uint64_t generation = d.generation;
  Enqueue([this, volume, generation] {
    Result<VolumeAttachment> r = inner_->Describe(volume);
    std::lock_guard lock(mu_);
    Described& d = described_[volume];
    d.running = false;
    if (d.generation == generation) {
      d.latest = std::move(r);
      d.completed = clock_.Now();
    }
  });
}

Status BackgroundProvider::AddEndpoint(const std::string& role, const std::string& node) {
  std::lock_guard lock(mu_);
  Enqueue([this, role, node] {
    Status st = inner_->AddEndpoint(role, node);
    if (!st.ok()) spdlog::warn("provider: AddEndpoint {} {}: {}", role, node, st.ToString());
  });
  return Status::Ok();
}

Status BackgroundProvider::RemoveEndpoint(const std::string& role, const std::string& node) {
  std::lock_guard lock(mu_);
  Enqueue([this, role, node] {
    Status st = inner_->RemoveEndpoint(role, node);
    if (!st.ok()) spdlog::warn("provider: RemoveEndpoint {} {}: {}", role, node, st.ToString());
  });
  return Status::Ok();
}

size_t BackgroundProvider::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

void BackgroundProvider::Enqueue(std::function<void()> call) {
  queue_.push_back(std::move(call));
  cv_.notify_one();
}

void BackgroundProvider::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::function<void()> call = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    call();  // takes mu_ itself to record its result
    lock.lock();
    --running_;
  }
}

}  // namespace hafab::provider
