// The checking client: writes sequential keys to kvd through the gateway at a steady rate,
// records every acknowledged write with the instance and epoch that acknowledged it and
// every failed request, and afterwards checks the three properties the fabric promises:
// no lost acknowledged write, no split brain, bounded downtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace hafab::e2e {

struct Ack {
  int64_t key = 0;
  std::string instance;
  int64_t epoch = 0;
  TimePoint sent{};
  TimePoint acked{};
};

struct CheckReport {
  int64_t acked = 0;
  int64_t failed_requests = 0;
  int64_t lost = 0;                     // acknowledged keys not readable afterwards
  int64_t split_brain = 0;              // overlapping (instance, epoch) ack ranges + stale epochs
  std::vector<Duration> downtime;       // unavailability windows (failures or stalls)
  std::vector<std::string> violations;  // human-readable, first few of each kind
  std::string ToString() const;
};

class KvChecker {
 public:
  // `url`: the gateway's kvd endpoint, "http://127.0.0.1:7000". One write every `interval`.
  KvChecker(std::string url, Duration interval, std::string key_prefix = "k");
  ~KvChecker();

  void Start();
  void Stop();
  int64_t acked() const { return acked_count_.load(); }
  // Every acknowledged write so far, in ack order (a copy).
  std::vector<Ack> Acks();
  // Check() reads the keys back from `url` instead of the write URL (e.g. a checker that
  // writes straight to one instance reads back through the gateway). Call before Check().
  void set_read_url(std::string url) { read_url_ = std::move(url); }
  // The writer thread joins this network namespace (e.g. "/run/netns/NAME") before its first
  // write: a client on the other side of a partition. Call before Start().
  void set_netns(std::string path) { netns_ = std::move(path); }
  // How long a write may take before the client gives up on it (3 s unless set). Call
  // before Start().
  void set_request_timeout(Duration d) { request_timeout_ = d; }
  // Writes over one kept-alive connection (reconnecting after a failure), as a client
  // with a connection pool does, instead of a connection per write. Call before Start().
  void set_keep_alive(bool on) { keep_alive_ = on; }
  // When each write that was not acknowledged was sent, in order (safe while running).
  std::vector<TimePoint> UnacknowledgedSends();
  // A copy of the acknowledged writes so far, in ack order (safe while running).
  std::vector<Ack> AcksSnapshot();

  // REQUIRES: stopped. Reads every acknowledged key back (retrying for up to `read_timeout`
  // while the service is unavailable) and evaluates the properties.
  CheckReport Check(Duration read_timeout = std::chrono::seconds(20));

  // A window where no write was acknowledged for longer than `stall` counts as downtime.
  static std::vector<Duration> DowntimeWindows(const std::vector<Ack>& acks,
                                               const std::vector<TimePoint>& failures,
                                               Duration stall);
  // Counts split-brain violations in acks (in ack order), describing the first few.
  static int64_t SplitBrain(const std::vector<Ack>& acks, std::vector<std::string>* why);

 private:
  void Loop();

  std::string url_;
  Duration interval_;
  std::string prefix_;
  std::string read_url_;  // "" = url_
  std::string netns_;     // "" = this process's namespace
  Duration request_timeout_ = std::chrono::seconds(3);
  bool keep_alive_ = false;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> acked_count_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Ack> acks_;               // GUARDED_BY(mu_)
  std::vector<TimePoint> failures_;     // GUARDED_BY(mu_) when each failed write ended
  std::vector<TimePoint> failed_sent_;  // GUARDED_BY(mu_) when each failed write was sent
};

}  // namespace hafab::e2e
