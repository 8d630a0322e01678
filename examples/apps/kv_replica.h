// KvReplica: kvd as one replica of a `mode: replicated` role (docs/replication.md; how kvd
// does it: examples/apps/README.md). The configuration says whether it is the primary, a
// secondary or a building replica; it serves on the one port:
//   PUT/GET /hafab/v1/replica      apply a configuration / the replica's status
//   GET /hafab/v1/replica/log      (primary) the records after a follower's last one
//   PUT/GET /kv/KEY                writes on the primary only; reads on every replica
//
// Replication is pulled: a follower asks its primary for the records after its last one
// (epoch, index); the primary first checks that the follower's last record is in its own
// log (else answers 412 with the last index they share: the follower moves the rest aside
// into kvd.log.diverged-epoch-E and asks again), then answers at once or when new records
// are durable (long poll). The next request of a follower also says what it now holds
// durably; the primary acknowledges a client write once `quorum` replicas (itself and
// secondaries, not building ones) hold it, and only writes of its own epoch, after its
// first record of that epoch (a marker) is quorum-durable: from then on it reports
// `role: primary`.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "group_commit.h"
#include "http/http.h"
#include "http/pool.h"
#include "kv_log.h"
#include "wire/replica.h"

namespace hafab::apps {

// The checks kvd adds to the contract's parser (wire::ParseReplicaConfig), which reads the
// members' types but not how they fit together. Errors: InvalidArgument naming the field
// ("quorum: ...") for an empty `instance` or one not in `replicas`, a quorum that is not
// between 1 and the voting (primary and secondary) replicas, a primary role without this
// replica as `primary` (or the reverse), or a primary address that is not host:port.
Status CheckReplicaConfig(const wire::ReplicaConfig& config);
// A configuration's JSON text (HAFAB_REPLICA_CONFIG, the body of PUT /hafab/v1/replica),
// parsed by the contract's parser and checked by CheckReplicaConfig. Errors:
// InvalidArgument naming the field ("configuration: not valid JSON", "replicas[1].role:
// ...").
Result<wire::ReplicaConfig> ReadReplicaConfig(std::string_view json);

class KvReplica {
 public:
  struct Options {
    // A client PUT that is not quorum-durable within this gets 503.
    std::chrono::milliseconds ack_timeout{5000};
    // How long the primary holds a follower's request while there is nothing new.
    std::chrono::milliseconds poll_wait{500};
  };

  // `log` and `committer` outlive this; `entries` is the state the log replayed. Not
  // thread-safe: runs on `io`'s thread, like every method below.
  KvReplica(boost::asio::io_context& io, KvLog& log, GroupCommitter& committer,
            std::map<std::string, std::string> entries, Options options);
  KvReplica(const KvReplica&) = delete;
  KvReplica& operator=(const KvReplica&) = delete;

  // Applies the configuration the replica started with (HAFAB_REPLICA_CONFIG).
  void Start(wire::ReplicaConfig config);
  // Serves /kv/KEY and /hafab/v1/replica[/log]; 404 for anything else.
  void Handle(http::Request&& request, http::Responder respond);
  // The configuration epoch it applied (what its X-Hafab-Epoch says).
  int64_t epoch() const { return config_.epoch; }

 private:
  struct Unacknowledged {  // a record of this primary's epoch not yet quorum-durable
    std::string key;
    std::string value;
    http::Responder respond;  // null once answered (503 on timeout)
    std::chrono::steady_clock::time_point deadline;
  };
  struct Poll {  // a follower's request waiting for records after `after`
    uint64_t after;
    http::Responder respond;
    std::chrono::steady_clock::time_point deadline;
  };

  void Apply(wire::ReplicaConfig config);
  void ApplyRequest(const std::string& body, const http::Responder& respond);
  http::Response StatusResponse() const;  // 200 with the contract's status
  // The configuration's epoch as the log's records carry it.
  uint64_t LogEpoch() const;
  void ClientPut(std::string key, std::string value, http::Responder respond);
  http::Response NotPrimary() const;

  // As primary.
  void BecomePrimary();
  void StopBeingPrimary(const std::string& why);
  bool PrimaryAt(uint64_t epoch) const;
  void OnLocalDurable(uint64_t index);
  void AdvanceCommit();
  void ServeLog(const http::Request& request, http::Responder respond);
  http::Response Records(uint64_t after);
  void Sweep();

  // As follower.
  void Pull(uint64_t generation);
  void RetryPull(uint64_t generation, std::chrono::milliseconds after);
  void OnPulled(uint64_t generation, KvPosition sent, Result<http::Response> response);
  void MoveAside(uint64_t shared_until, KvPosition last);
  void Followed(uint64_t index);

  boost::asio::io_context& io_;
  KvLog& log_;
  GroupCommitter& committer_;
  Options options_;
  http::ConnectionPool pool_;
  boost::asio::steady_timer sweep_;
  boost::asio::steady_timer retry_;
  std::map<std::string, std::string> entries_;  // what GET serves
  wire::ReplicaConfig config_;
  bool configured_ = false;
  wire::ReplicaRole acting_ = wire::ReplicaRole::kSecondary;  // what the status reports
  std::string state_ = "starting";
  int appends_in_flight_ = 0;  // in the committer; a follower pulls only when none is

  // As primary.
  uint64_t epoch_start_ = 0;               // index of the marker opening this epoch, once durable
  uint64_t durable_ = 0;                   // last index durable here
  uint64_t commit_ = 0;                    // last index quorum-durable
  std::map<std::string, uint64_t> match_;  // secondary -> last index it holds durably
  std::map<uint64_t, Unacknowledged> unacknowledged_;
  std::vector<Poll> polls_;

  // As follower.
  uint64_t generation_ = 0;  // bumped when it stops following, or follows another primary
  uint64_t primary_last_ = 0;
};

}  // namespace hafab::apps
