#include "tests/e2e/kv_checker.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>

#include "http/http.h"
#include "http/pool.h"

namespace hafab::e2e {

using namespace std::chrono_literals;

KvChecker::KvChecker(std::string url, Duration interval, std::string key_prefix)
    : url_(std::move(url)), interval_(interval), prefix_(std::move(key_prefix)) {}

KvChecker::~KvChecker() { Stop(); }

void KvChecker::Start() {
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void KvChecker::Stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
}

std::vector<Ack> KvChecker::AcksSnapshot() {
  std::lock_guard<std::mutex> l(mu_);
  return acks_;
}

std::vector<Ack> KvChecker::Acks() {
  std::lock_guard<std::mutex> l(mu_);
  return acks_;
}

std::vector<TimePoint> KvChecker::UnacknowledgedSends() {
  std::lock_guard<std::mutex> l(mu_);
  return failed_sent_;
}

void KvChecker::Loop() {
  if (!netns_.empty()) {
    // setns(CLONE_NEWNET) moves only this thread: its sockets live in that namespace.
    int fd = open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "kv_checker: cannot join network namespace %s: %s\n", netns_.c_str(),
                   std::strerror(errno));
      if (fd >= 0) close(fd);
      return;  // no write is acknowledged: the caller's wait for acks fails
    }
    close(fd);
  }
  // The pool's sockets are made on this thread, so in its namespace.
  boost::asio::io_context io;
  http::ConnectionPool pool(io);
  auto put = [&](const std::string& url, std::string body) -> Result<http::Response> {
    if (!keep_alive_) return http::Fetch("PUT", url, std::move(body), {}, request_timeout_);
    std::optional<Result<http::Response>> got;
    pool.Fetch("PUT", url, std::move(body), {}, request_timeout_,
               [&](Result<http::Response> r) { got = std::move(r); });
    while (!got) {
      if (io.stopped()) io.restart();
      io.run_one();
    }
    return std::move(*got);
  };
  int64_t key = 0;
  TimePoint next = RealClock().Now();
  while (running_) {
    TimePoint sent = RealClock().Now();
    std::string k = prefix_ + std::to_string(key);
    auto r = put(url_ + "/kv/" + k, "v" + std::to_string(key));
    TimePoint done = RealClock().Now();
    if (r.ok() && r->status == 200) {
      Ack a;
      a.key = key;
      a.sent = sent;
      a.acked = done;
      a.instance = r->Header("x-hafab-instance");
      a.epoch = std::atoll(r->Header("x-hafab-epoch").c_str());
      std::lock_guard<std::mutex> l(mu_);
      acks_.push_back(a);
      acked_count_++;
      ++key;  // the next key only after this one is acknowledged
    } else {
      std::lock_guard<std::mutex> l(mu_);
      failures_.push_back(done);
      failed_sent_.push_back(sent);
    }
    next += interval_;
    TimePoint now = RealClock().Now();
    if (next > now) {
      std::this_thread::sleep_for(next - now);  // pacing the load, not waiting on a condition
    } else {
      next = now;
    }
  }
}

std::vector<Duration> KvChecker::DowntimeWindows(const std::vector<Ack>& acks,
                                                 const std::vector<TimePoint>& failures,
                                                 Duration stall) {
  // Events in time order: an ack ends a window; a failure or a long gap opens one.
  std::vector<Duration> out;
  std::vector<std::pair<TimePoint, bool>> ev;  // (time, ok)
  for (const auto& a : acks) ev.emplace_back(a.acked, true);
  for (auto f : failures) ev.emplace_back(f, false);
  std::sort(ev.begin(), ev.end());
  std::optional<TimePoint> first_fail;
  std::optional<TimePoint> last_ok;
  for (auto [t, ok] : ev) {
    if (!ok) {
      if (!first_fail) first_fail = last_ok ? *last_ok : t;
      continue;
    }
    if (first_fail) {
      out.push_back(t - *first_fail);
      first_fail.reset();
    } else if (last_ok && t - *last_ok > stall) {
      out.push_back(t - *last_ok);
    }
    last_ok = t;
  }
  return out;
}

int64_t KvChecker::SplitBrain(const std::vector<Ack>& acks, std::vector<std::string>* why) {
  int64_t violations = 0;
  auto note = [&](const std::string& s) {
    ++violations;
    if (why && why->size() < 10) why->push_back(s);
  };
  // Stale epochs: in ack order, no write may be acknowledged under an older epoch.
  int64_t max_epoch = 0;
  for (const auto& a : acks) {
    if (a.epoch < max_epoch) {
      note("key " + std::to_string(a.key) + " acknowledged by " + a.instance + " at epoch " +
           std::to_string(a.epoch) + " after epoch " + std::to_string(max_epoch) + " was seen");
    }
    max_epoch = std::max(max_epoch, a.epoch);
  }
  // Overlap: two (instance, epoch) servers whose [first sent, last acked] ranges overlap.
  struct Range {
    TimePoint first, last;
  };
  std::map<std::pair<std::string, int64_t>, Range> ranges;
  for (const auto& a : acks) {
    auto [it, fresh] = ranges.try_emplace({a.instance, a.epoch}, Range{a.acked, a.acked});
    if (!fresh) it->second.last = a.acked;
  }
  for (auto i = ranges.begin(); i != ranges.end(); ++i) {
    for (auto j = std::next(i); j != ranges.end(); ++j) {
      if (i->second.first < j->second.last && j->second.first < i->second.last) {
        note(i->first.first + "@" + std::to_string(i->first.second) + " and " + j->first.first +
             "@" + std::to_string(j->first.second) + " acknowledged writes in overlapping time");
      }
    }
  }
  return violations;
}

CheckReport KvChecker::Check(Duration read_timeout) {
  CheckReport rep;
  std::vector<Ack> acks;
  std::vector<TimePoint> failures;
  {
    std::lock_guard<std::mutex> l(mu_);
    acks = acks_;
    failures = failures_;
  }
  rep.acked = static_cast<int64_t>(acks.size());
  rep.failed_requests = static_cast<int64_t>(failures.size());
  for (const auto& a : acks) {
    std::string k = prefix_ + std::to_string(a.key);
    std::string want = "v" + std::to_string(a.key);
    TimePoint deadline = RealClock().Now() + read_timeout;
    bool found = false;
    while (true) {
      auto r = http::Fetch("GET", (read_url_.empty() ? url_ : read_url_) + "/kv/" + k, "", {}, 3s);
      if (r.ok() && r->status == 200) {
        found = r->body == want;
        break;
      }
      if (r.ok() && r->status == 404) break;
      if (RealClock().Now() > deadline) break;
      std::this_thread::sleep_for(50ms);  // the service is failing over: retry with a deadline
    }
    if (!found) {
      ++rep.lost;
      if (rep.violations.size() < 10) {
        rep.violations.push_back("acknowledged key " + k + " (by " + a.instance + " at epoch " +
                                 std::to_string(a.epoch) + ") is lost");
      }
    }
  }
  rep.split_brain = SplitBrain(acks, &rep.violations);
  rep.downtime = DowntimeWindows(acks, failures, interval_ * 10 + 100ms);
  return rep;
}

std::string CheckReport::ToString() const {
  std::ostringstream o;
  o << "acked=" << acked << " failed_requests=" << failed_requests << " lost=" << lost
    << " split_brain=" << split_brain << " downtime_windows=[";
  for (size_t i = 0; i < downtime.size(); ++i) {
    o << (i ? ", " : "") << ToMillis(downtime[i]) << "ms";
  }
  o << "]";
  for (const auto& v : violations) o << "\n  " << v;
  return o.str();
}

}  // namespace hafab::e2e
