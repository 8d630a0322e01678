// ReplicaLink: the agent's half of the replicated-role contract (docs/replication.md). For
// each running replica it gives the replica its configuration whenever that changes, without
// a restart and without waiting for a status call in flight (given up: a status hook is killed),
// and asks for its status every interval, so that each heartbeat carries where the
// replica's log ends. Over HTTP by default (`PUT`/`GET /hafab/v1/replica` on the replica's
// port), or through the manifest's hook (`hook configure` with the configuration on stdin,
// `hook status`; each prints the status on stdout). Runs on the agent's io_context, one timer
// per replica, so a slow or hung replica never delays a heartbeat.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/supervisor.h"
#include "core/clock.h"
#include "core/result.h"
#include "wire/replica.h"

namespace hafab::agent {

class ReplicaLink {
 public:
  // A status the replica answered, or why there is none (the error names the call).
  using ReportFn = std::function<void(const std::string& instance, pid_t pid,
                                      Result<wire::ReplicaStatus> status)>;

  // `address`: where the replicas listen (the node's address). Every `interval` each replica
  // is configured (if its configuration is not the one it last accepted) or asked for its
  // status; each call gives up after `timeout`.
  ReplicaLink(boost::asio::io_context& io, std::string address, Duration interval, Duration timeout,
              ReportFn report);
  ~ReplicaLink();

  // Links exactly these replicas: new ones at once, a changed configuration at once, those
  // not listed no more.
  void Sync(const std::vector<ReplicaTarget>& targets);

 private:
  struct Linked;
  using Key = std::pair<std::string, pid_t>;

  boost::asio::io_context& io_;
  std::string address_;
  Duration interval_;
  Duration timeout_;
  ReportFn report_;
  std::map<Key, std::shared_ptr<Linked>> linked_;
};

}  // namespace hafab::agent
