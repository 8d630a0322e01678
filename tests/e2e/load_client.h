// A steady HTTP load through the gateway for end-to-end tests: `threads` clients each doing
// short GETs (one connection per request) back to back, counting answers and failures.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/http.h"

namespace hafab::e2e {

class LoadClient {
 public:
  LoadClient(std::string url, int threads) : url_(std::move(url)), threads_(threads) {}
  ~LoadClient() { Stop(); }

  void Start() {
    for (int i = 0; i < threads_; ++i) {
      workers_.emplace_back([this] {
        while (!stop_.load()) {
          auto r = http::Fetch("GET", url_, "", {}, std::chrono::seconds(2));
          if (r.ok() && r->status == 200) {
            ok_.fetch_add(1);
            std::lock_guard lock(mu_);
            ++by_instance_[r->body.substr(0, r->body.find('\n'))];
          } else {
            failed_.fetch_add(1);
            std::lock_guard lock(mu_);
            if (errors_.size() < 20) {
              errors_.push_back(r.ok() ? "HTTP " + std::to_string(r->status) + " " + r->body
                                       : r.status().ToString());
            }
          }
          // Pacing so the 2-core test machine keeps room for the cluster (~300 req/s each).
          std::this_thread::sleep_for(std::chrono::milliseconds(3));
        }
      });
    }
  }
  void Stop() {
    stop_ = true;
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int64_t ok() const { return ok_.load(); }
  int64_t failed() const { return failed_.load(); }
  std::vector<std::string> errors() const {
    std::lock_guard lock(mu_);
    return errors_;
  }
  std::map<std::string, int64_t> by_instance() const {
    std::lock_guard lock(mu_);
    return by_instance_;
  }

 private:
  std::string url_;
  int threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ok_{0}, failed_{0};
  mutable std::mutex mu_;
  std::vector<std::string> errors_;
  std::map<std::string, int64_t> by_instance_;
  std::vector<std::thread> workers_;
};

}  // namespace hafab::e2e
