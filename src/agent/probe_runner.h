// ProbeRunner: runs the tcp / http / exec probes of running instances on the agent's
// io_context, each on its own timer, so a slow or hung probe never delays a heartbeat.
// Results go to a callback (Supervisor::RecordProbe); thresholds are applied there.
//   tcp:  connect within timeout -> ok, else failed
//   http: GET http://address:port/path; 2xx ok, 503 busy, anything else (or timeout) failed
//   exec: the command with the instance's environment; exit 0 ok, 75 busy, else failed
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "agent/supervisor.h"

namespace hafab::agent {

class ProbeRunner {
 public:
  // `latency`: from the probe's start to its result.
  using ReportFn = std::function<void(const std::string& instance, pid_t pid, ProbeType,
                                      ProbeOutcome, Duration latency)>;

  // `address`: where instances listen (the node's address, e.g. 127.0.0.1).
  ProbeRunner(boost::asio::io_context& io, std::string address, ReportFn report);
  ~ProbeRunner();

  // Probes exactly these targets: starts probing new ones, stops those not listed.
  void Sync(const std::vector<ProbeTarget>& targets);

 private:
  struct Probing;
  using Key = std::tuple<std::string, pid_t, ProbeType>;

  boost::asio::io_context& io_;
  std::string address_;
  ReportFn report_;
  std::map<Key, std::shared_ptr<Probing>> probing_;
};

}  // namespace hafab::agent
