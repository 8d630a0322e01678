// LeaderElection: one controller replica of several acts; the others follow. Built only on
// the Store's transactions with compares, leases and watches, so it runs the same on
// SqliteStore (one replica, which always wins) and on etcd (several replicas, one store).
//
// Campaign: grant a store lease of `ttl`, then put kLeaderKey = {"id", "url"} with that
// lease if the key is missing (one transaction, compare Missing). The winner keeps the lease
// alive every `renew_interval`. Its own view of the lease ends at `sent + ttl`, where `sent`
// is when the last successful keep-alive (or the grant) left: the store renews from when it
// received it, which is later, so the store's lease never ends before ours. The leader
// stops acting at `deadline - margin` if it could not renew by then (steps down), before
// the store can delete the key and elect another: two replicas never act at once, as long
// as the two hosts' monotonic clocks run at nearly the same rate and `margin` covers how
// late this process notices (the same argument as the agents' self-fencing,
// docs/architecture.md).
//
// Every write the leader makes carries Guard(): a compare that the leader key still has
// the mod_revision this replica created it at. A deposed leader whose step-down came too
// late (a stalled process) still cannot write after another was elected.
//
// Followers read the key (Range, to learn the leader's URL for the "not leader" hint), watch
// it from that read's revision, and campaign as soon as it is deleted (lease expired or
// revoked); they re-read it every `recheck_interval` in case the watch broke silently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "store/store.h"

namespace hafab::controller {

inline constexpr char kLeaderKey[] = "/hafab/leader";

struct LeaderOptions {
  std::string id;   // this replica's name, unique among replicas (and across restarts)
  std::string url;  // the API URL clients should use for it (--advertise)
  // The store lease of the leader key: how long the key outlives a leader that died.
  // etcd counts lease TTLs in whole seconds and has a minimum (about 2 s with its default
  // election timeout); it rounds up, which only delays a takeover, never shortens ours.
  Duration ttl = std::chrono::seconds(2);
  Duration renew_interval = std::chrono::milliseconds(500);
  // Step down this long before our view of the lease ends.
  Duration margin = std::chrono::milliseconds(500);
  // A follower re-reads the key (and a failed campaign is retried) this often even when
  // its watch says nothing.
  Duration recheck_interval = std::chrono::seconds(1);
  // How long each tick waits on the watch (real time: it blocks the thread). Not zero for
  // a backend that reads its connection only while waiting (EtcdStore returns at once when
  // the deadline has passed); zero suits SqliteStore.
  Duration watch_poll = std::chrono::milliseconds(1);
  // The store belongs to this process alone (SqliteStore's exclusive lock): a leader key
  // found at the first Tick was left by a dead process, and is deleted instead of waited
  // out (a reopened SqliteStore gives every old lease one full TTL).
  bool sole_owner = false;
};

struct LeaderInfo {
  std::string id;  // "" = no leader known
  std::string url;
  store::Revision revision = 0;  // the leader key's mod_revision
};

// Counters for /v1/leader and the logs.
struct LeaderStats {
  int64_t elected = 0;       // terms won by this replica
  int64_t stepped_down = 0;  // terms ended (renewal failed, resigned, deposed)
  int64_t renew_failures = 0;
  int64_t campaigns = 0;       // transactions tried to become leader
  int64_t leader_changes = 0;  // changes of the leader this replica saw (incl. itself)
  TimePoint term_started{};    // when the current leader was first seen (or elected)
  std::string last_step_down;  // why the last term ended
  int64_t takeovers = 0;       // terms won by TakeOver
  std::string last_takeover;   // its evidence
};

// Not thread-safe: the controller's event-loop thread calls everything. Store calls block
// that thread (as the controller's own commits do).
class LeaderElection {
 public:
  enum class Change { kNone, kElected, kSteppedDown };

  // `store` and `clock` must outlive this object. REQUIRES: opts.id not empty,
  // 0 < margin < ttl, renew_interval < ttl - margin.
  LeaderElection(store::Store& store, Clock& clock, LeaderOptions opts);
  // Cancels the watch. Does not resign: a process that ends without Resign() leaves the key
  // to expire with its lease.
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Renews (leader), steps down when renewal is overdue, or watches and campaigns
  // (follower). Call often (every ~20 ms): a step-down is noticed only here and in
  // Leading(). Returns what changed in this call.
  Change Tick();

  // True while this replica is leader and its lease has at least `margin` left. Depends on
  // the clock, not only on the last Tick: ask it before every action that must not outlive
  // leadership (answering a heartbeat renews a node's lease).
  bool Leading() const;
  // The compares every transaction of the leader must carry. REQUIRES: elected (a term
  // started and not yet ended by Tick/Resign).
  std::vector<store::Compare> Guard() const;
  // Ends this term now (a deposed controller, a failed start, shutdown) and revokes the
  // lease so the key goes at once and a follower takes over without waiting for the TTL
  // (best effort: the store may be unreachable; then the lease expires). No-op when not
  // leader.
  void Resign(const std::string& why);

  // A follower's evidence that the leader's process is gone (LeaderProbe): takes the key
  // over at once instead of waiting out its lease — one transaction puts this replica's key
  // in place of the leader's if it is still at the revision we know, then the old lease is
  // revoked, so the old leader, if alive after all, steps down at its next keep-alive and
  // its writes' guard fails from now on. Until its own view of its lease ends (at most
  // ttl - margin from now) it may still answer heartbeats from memory, so a term won this
  // way must give every node and gateway takeover_grace() more before judging it.
  // Returns kElected on success; kNone when leading, no leader is known, or the key moved.
  Change TakeOver(const std::string& evidence);
  // ttl - margin when the current term was won by TakeOver, else zero.
  Duration takeover_grace() const { return takeover_grace_; }

  // The leader as last read (this replica when leading); id "" when none is known.
  const LeaderInfo& leader() const { return leader_; }
  const LeaderStats& stats() const { return stats_; }
  const LeaderOptions& options() const { return opts_; }
  // When our view of the lease ends (leading only).
  TimePoint lease_deadline() const { return deadline_; }

 private:
  Change TickLeader(TimePoint now);
  Change TickFollower(TimePoint now);
  // Reads the key; campaigns when missing. Starts a watch from the read's revision.
  Change Recheck(TimePoint now);
  // Puts our key under a new lease if `compare` holds (Missing: an election; the dead
  // leader's revision: a takeover).
  Change Campaign(TimePoint now, store::Compare compare);
  void StepDown(const std::string& why);
  void SetLeader(LeaderInfo info);
  // Deletes the leader key if it is still at `mod_revision`; "ok" or the store's error.
  std::string DeleteLeaderKeyAt(store::Revision mod_revision);

  store::Store& store_;
  Clock& clock_;
  LeaderOptions opts_;
  bool first_tick_ = true;
  bool elected_ = false;
  store::LeaseId lease_ = 0;
  TimePoint deadline_{};
  TimePoint next_renew_{};
  TimePoint next_recheck_{};
  int64_t read_failures_ = 0;      // of the key, in a row (logged once in 50)
  TimePoint no_campaign_until_{};  // after a step-down, give the others one ttl to win
  Duration takeover_grace_{};
  std::unique_ptr<store::Watcher> watcher_;
  LeaderInfo leader_;
  LeaderStats stats_;
};

// "ctl-<host>-<pid>-<random>": unique across replicas and restarts.
std::string NewReplicaId();

}  // namespace hafab::controller
