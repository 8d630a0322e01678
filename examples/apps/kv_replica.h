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
// into kvd.log.diverged-epoch-E and asks again), then answers at once or when it has new
// records (long poll). The primary positions each record itself and sends it from memory
// as soon as it is queued for its own fsync: the two fsyncs run in parallel. The next
// request of a follower also says what it now holds durably; the primary acknowledges a
// client write once it holds it durably itself and `quorum` - 1 secondaries (not building
// ones) do, and only writes of its own epoch, after its first record of that epoch (a
// marker) is quorum-durable: from then on it reports `role: primary`.
//
// Because a follower can hold records its primary has not fsynced, a primary restarted in
// the same epoch (its configuration is in its environment) can give their positions to
// other records. So each run of a primary opens with a marker whose value is a random id,
// and a follower whose last record is of the primary's epoch also names its last marker:
// unless the primary holds that marker, the follower's records from it on are diverged;
// if it does, those from the primary's next marker on are (they were sent by a run that
// lost them). None of them was acknowledged: the primary acknowledges only what it holds.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
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

  // `log` and `committer` outlive this; `entries` and `markers` are what the log replayed
  // (KvLog::Replay). Not thread-safe: runs on `io`'s thread, like every method below.
  KvReplica(boost::asio::io_context& io, KvLog& log, GroupCommitter& committer,
            std::map<std::string, std::string> entries, std::map<uint64_t, KvRecord> markers,
            Options options);
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

  struct Sent {  // a record in the primary's memory, as it goes to followers
    uint64_t epoch;
    std::string bytes;  // EncodeKvRecord
  };

  void Apply(wire::ReplicaConfig config);
  void ApplyRequest(const std::string& body, const http::Responder& respond);
  http::Response StatusResponse() const;  // 200 with the contract's status
  // The configuration's epoch as the log's records carry it.
  uint64_t LogEpoch() const;
  void ClientPut(std::string key, std::string value, http::Responder respond);
  http::Response NotPrimary() const;

  // Called when an append queued in the committer is done.
  void AppendDone();

  // As primary.
  void BecomePrimary(bool was_primary);
  void OpenEpoch(bool was_primary);
  void StopBeingPrimary(const std::string& why);
  // Positions a record after the last one, keeps it for followers, queues it for the fsync
  // and wakes the followers' polls. Returns its index.
  uint64_t AppendAsPrimary(std::string key, std::string value);
  void AnswerPolls();
  void OnLocalDurable(uint64_t index);
  void AdvanceCommit();
  void ServeLog(const http::Request& request, http::Responder respond);
  // The epoch of record `index` in this primary's log or memory (nullopt past the end), and
  // the last index of a record of epoch `epoch` or earlier.
  std::optional<uint64_t> EpochAt(uint64_t index) const;
  uint64_t EndOfEpoch(uint64_t epoch) const;
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
  // The markers in the log (and, as primary, the one not yet durable), by index.
  std::map<uint64_t, KvRecord> markers_;
  wire::ReplicaConfig config_;
  bool configured_ = false;
  wire::ReplicaRole acting_ = wire::ReplicaRole::kSecondary;  // what the status reports
  std::string state_ = "starting";
  int appends_in_flight_ = 0;  // in the committer; a follower pulls only when none is

  // As primary.
  bool opening_ = false;      // waiting for a follower's appends to finish to open the epoch
  KvPosition assigned_;       // of the last record positioned (the log's end once written)
  uint64_t epoch_start_ = 0;  // index of the marker opening this epoch
  uint64_t durable_ = 0;      // last index durable here
  // Records from index sent_first_ on, from the last few durable ones to assigned_; older
  // ones are read from the log.
  std::deque<Sent> sent_;
  uint64_t sent_first_ = 1;
  size_t sent_bytes_ = 0;
  bool polls_woken_ = false;               // an AnswerPolls is posted
  uint64_t commit_ = 0;                    // last index quorum-durable
  std::map<std::string, uint64_t> match_;  // secondary -> last index it holds durably
  std::map<uint64_t, Unacknowledged> unacknowledged_;
  std::vector<Poll> polls_;

  // As follower.
  uint64_t generation_ = 0;  // bumped when it stops following, or follows another primary
  uint64_t primary_last_ = 0;
};

}  // namespace hafab::apps
