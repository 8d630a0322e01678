// EtcdStore: the Store backend for several machines — an etcd v3 cluster (Debian's
// etcd-server 3.4), reached through its JSON gateway (see etcd_client.h for why), over a
// list of endpoints with failover. A three-member cluster commits on a majority.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "store/etcd_client.h"
#include "store/store.h"

namespace hafab::store {

namespace etcd_internal {
struct WatchRegistry;
}  // namespace etcd_internal

// How the Store contract maps onto etcd:
// - Keys, values, revisions, versions, compares and transactions are etcd's own; a key
//   put twice (or put and deleted) in one branch is rejected here, before sending, with
//   the key named; an op naming a missing lease ("requested lease not found") is
//   InvalidArgument.
// - Commit goes to one member. If its answer is lost after the request was sent (the
//   member died, or the deadline passed), Commit returns Unavailable without retrying:
//   the transaction may have applied, as the Store contract allows. A member that has no
//   leader refuses at once and the next endpoint is tried; so is a refused connection.
// - Reads, keep-alives and watches are safe to repeat and move to the next endpoint on
//   any failure. Every call has request_timeout as its budget, over all endpoints.
// - Leases: etcd's TTLs are whole seconds, so a TTL is rounded up to the next second
//   (250ms becomes 1s), and etcd may raise it further to its minimum (1.5 election
//   timeouts). Expired leases are revoked by the etcd leader (checked every 500ms), so
//   keys may outlive their TTL by up to about half a second. A lease is not tied to the
//   process that granted it: KeepAlive it, or it expires.
// - Watches: one HTTP stream per watcher. When the stream breaks (member died, lost its
//   leader), Next resumes on another endpoint from the revision after the last event it
//   delivered, so the caller sees no gap and no duplicate; only when no endpoint serves
//   the watch for request_timeout does Next return Unavailable (then re-watch). A Next
//   that reopens the stream may take up to a second longer than its timeout. A start
//   revision that was compacted is a Conflict from Next.
// - The store never compacts; run etcd with --auto-compaction-retention (docs/deploy).
class EtcdStore final : public Store {
 public:
  using Options = EtcdClientOptions;

  // Connects to "etcd://h1:2379,h2:2379" and checks that some member answers (with a
  // leader) within request_timeout.
  // Errors: InvalidArgument for a bad URL; Unavailable naming the endpoints otherwise.
  static Result<std::unique_ptr<EtcdStore>> Open(const std::string& url, Options options = {});
  static Result<std::unique_ptr<EtcdStore>> Open(std::vector<EtcdEndpoint> endpoints,
                                                 Options options = {});

  // Watchers may outlive the store: they answer Unavailable("store closed") afterwards.
  ~EtcdStore() override;

  Result<KeyValue> Get(const std::string& key) override;
  Result<RangeResult> Range(const std::string& prefix) override;
  Result<TxnResult> Commit(const Txn& txn) override;
  Result<std::unique_ptr<Watcher>> Watch(const std::string& prefix, Revision start) override;
  Result<LeaseId> GrantLease(Duration ttl) override;
  Status KeepAlive(LeaseId lease) override;
  Status RevokeLease(LeaseId lease) override;

  // Calls, failovers, lost answers, and the endpoint in use: for /metrics and `status`.
  EtcdClientStats Stats() const { return client_->Stats(); }
  // "h1:2379,h2:2379,h3:2379".
  std::string EndpointList() const { return client_->EndpointList(); }
  // The largest TTL etcd granted above the one asked for (its lease floor is 1.5 times its
  // election timeout), zero if none was raised. The first raise is logged as a warning:
  // a leader key then outlives a dead holder by that much.
  Duration RaisedLeaseTtl() const { return raised_ttl_.load(); }

 private:
  explicit EtcdStore(std::shared_ptr<EtcdClient> client);
  std::shared_ptr<EtcdClient> client_;  // shared with the watchers
  std::shared_ptr<etcd_internal::WatchRegistry> watches_;
  std::atomic<Duration> raised_ttl_{Duration::zero()};
};

}  // namespace hafab::store
