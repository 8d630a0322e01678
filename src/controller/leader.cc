#include "controller/leader.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "controller/records.h"
#include "core/json.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

LeaderInfo ParseLeader(const store::KeyValue& kv) {
  LeaderInfo info;
  info.revision = kv.mod_revision;
  json j = json::parse(kv.value, nullptr, false);
  if (j.is_object()) {
    if (j.contains("id") && j["id"].is_string()) info.id = j["id"].get<std::string>();
    if (j.contains("url") && j["url"].is_string()) info.url = j["url"].get<std::string>();
  }
  if (info.id.empty()) info.id = "?";  // someone else's value; still a leader key
  return info;
}

// Retry of a failed store call (keep-alive, read of the key, watch).
constexpr Duration kRetry = std::chrono::milliseconds(100);

}  // namespace

std::string NewReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, 8, "host");
  return "ctl-" + std::string(host) + "-" + std::to_string(getpid()) + "-" +
         std::to_string(WallMs(RealClock()) % 100000000);
}

LeaderElection::LeaderElection(store::Store& store, Clock& clock, LeaderOptions opts)
    : store_(store), clock_(clock), opts_(std::move(opts)) {
  HAFAB_CHECK(!opts_.id.empty(), "LeaderElection needs an id");
  HAFAB_CHECK(opts_.margin > Duration::zero() && opts_.margin < opts_.ttl,
              "leader margin must be within (0, ttl)");
  HAFAB_CHECK(
      opts_.renew_interval > Duration::zero() && opts_.renew_interval < opts_.ttl - opts_.margin,
      "leader renew interval must be shorter than ttl - margin");
}

LeaderElection::~LeaderElection() {
  if (watcher_) watcher_->Cancel();
}

bool LeaderElection::Leading() const { return elected_ && clock_.Now() < deadline_ - opts_.margin; }

std::vector<store::Compare> LeaderElection::Guard() const {
  HAFAB_CHECK(elected_, "Guard() of a replica that is not leader");
  return {store::Compare::ModRevisionEquals(kLeaderKey, leader_.revision)};
}

std::string LeaderElection::DeleteLeaderKeyAt(store::Revision mod_revision) {
  store::Txn txn;
  txn.compares = {store::Compare::ModRevisionEquals(kLeaderKey, mod_revision)};
  txn.success = {store::Op::Delete(kLeaderKey)};
  auto r = store_.Commit(txn);
  return r.ok() ? "ok" : r.status().ToString();
}

LeaderElection::Change LeaderElection::Tick() {
  TimePoint now = clock_.Now();
  if (first_tick_) {
    first_tick_ = false;
    if (opts_.sole_owner) {
      auto kv = store_.Get(kLeaderKey);
      if (kv.ok()) {
        spdlog::info("leader: removed the leader key of a dead process ({}): {}", kv->value,
                     DeleteLeaderKeyAt(kv->mod_revision));
      }
    }
  }
  return elected_ ? TickLeader(now) : TickFollower(now);
}

LeaderElection::Change LeaderElection::TickLeader(TimePoint now) {
  if (now >= deadline_ - opts_.margin) {
    StepDown("could not renew the leader lease for " +
             std::to_string(ToMs(now - (deadline_ - opts_.ttl))) + "ms (ttl " +
             std::to_string(ToMs(opts_.ttl)) + "ms, margin " + std::to_string(ToMs(opts_.margin)) +
             "ms)");
    return Change::kSteppedDown;
  }
  // Someone deleted or replaced the key (an operator, or our lease ended at the store
  // before we noticed): another replica may be elected any moment.
  if (watcher_) {
    auto batch = watcher_->Next(opts_.watch_poll);
    if (!batch.ok()) {
      watcher_.reset();
    } else {
      for (const auto& e : batch->events) {
        if (e.kv.key != kLeaderKey) continue;
        if (e.type == store::Event::Type::kDelete || e.kv.mod_revision != leader_.revision) {
          StepDown(e.type == store::Event::Type::kDelete
                       ? "the leader key was deleted"
                       : "the leader key was replaced by " + ParseLeader(e.kv).id);
          return Change::kSteppedDown;
        }
      }
    }
  }
  if (!watcher_) {
    auto w = store_.Watch(kLeaderKey, leader_.revision + 1);
    if (w.ok()) watcher_ = std::move(w).value();
  }
  if (now < next_renew_) return Change::kNone;
  const TimePoint sent = now;
  Status st = store_.KeepAlive(lease_);
  if (st.ok()) {
    deadline_ = sent + opts_.ttl;
    next_renew_ = sent + opts_.renew_interval;
    return Change::kNone;
  }
  ++stats_.renew_failures;
  if (st.code() == StatusCode::kNotFound) {
    StepDown("the leader lease is gone at the store: " + st.message());
    return Change::kSteppedDown;
  }
  spdlog::warn("leader: keep-alive failed ({}ms of lease left): {}",
               ToMs(deadline_ - opts_.margin - clock_.Now()), st.ToString());
  // Retry soon: the step-down deadline is what bounds this, not the renew interval.
  next_renew_ = clock_.Now() + std::min<Duration>(opts_.renew_interval, kRetry);
  if (clock_.Now() >= deadline_ - opts_.margin) {
    StepDown("could not renew the leader lease: " + st.message());
    return Change::kSteppedDown;
  }
  return Change::kNone;
}

LeaderElection::Change LeaderElection::TickFollower(TimePoint now) {
  bool check = now >= next_recheck_;
  if (watcher_) {
    auto batch = watcher_->Next(opts_.watch_poll);
    if (!batch.ok()) {
      spdlog::info("leader: watch of {} ended ({}); reading it again", kLeaderKey,
                   batch.status().ToString());
      watcher_.reset();
      check = true;
    } else {
      for (const auto& e : batch->events) {
        if (e.kv.key != kLeaderKey) continue;
        if (e.type == store::Event::Type::kDelete) {
          spdlog::info("leader: {} ({}) is gone", leader_.id, leader_.url);
          SetLeader({});
          check = true;
        } else {
          SetLeader(ParseLeader(e.kv));
        }
      }
    }
  }
  return check ? Recheck(now) : Change::kNone;
}

LeaderElection::Change LeaderElection::Recheck(TimePoint now) {
  next_recheck_ = now + opts_.recheck_interval;
  auto r = store_.Range(kLeaderKey);
  if (!r.ok()) {
    if (read_failures_++ % 50 == 0) {
      spdlog::warn("leader: cannot read {} ({} times in a row): {}", kLeaderKey, read_failures_,
                   r.status().ToString());
    }
    next_recheck_ = now + std::min<Duration>(opts_.recheck_interval, kRetry);
    return Change::kNone;
  }
  read_failures_ = 0;
  const store::KeyValue* kv = nullptr;
  for (const auto& x : r->kvs) {
    if (x.key == kLeaderKey) kv = &x;
  }
  if (!watcher_) {
    auto w = store_.Watch(kLeaderKey, r->revision + 1);
    if (w.ok()) {
      watcher_ = std::move(w).value();
    } else {
      spdlog::warn("leader: cannot watch {}: {}", kLeaderKey, w.status().ToString());
      next_recheck_ = now + std::min<Duration>(opts_.recheck_interval, kRetry);
    }
  }
  if (kv != nullptr) {
    LeaderInfo info = ParseLeader(*kv);
    if (info.id == opts_.id) {
      // The key of a term this replica already ended (it stepped down, its lease still
      // runs at the store): nobody acts on it, so delete it and let the election go on.
      spdlog::info("leader: deleting the leader key of this replica's ended term: {}",
                   DeleteLeaderKeyAt(kv->mod_revision));
      SetLeader({});
      return Change::kNone;
    }
    SetLeader(std::move(info));
    return Change::kNone;
  }
  SetLeader({});
  if (now < no_campaign_until_) return Change::kNone;
  return Campaign(now, store::Compare::Missing(kLeaderKey));
}

LeaderElection::Change LeaderElection::TakeOver(const std::string& evidence) {
  if (elected_ || leader_.id.empty()) return Change::kNone;
  const LeaderInfo old = leader_;
  auto kv = store_.Get(kLeaderKey);
  if (!kv.ok() || kv->mod_revision != old.revision) return Change::kNone;
  Change c = Campaign(clock_.Now(), store::Compare::ModRevisionEquals(kLeaderKey, old.revision));
  if (c != Change::kElected) return c;
  takeover_grace_ = opts_.ttl - opts_.margin;
  ++stats_.takeovers;
  stats_.last_takeover = "took over from " + old.id + " (" + old.url + "): " + evidence;
  spdlog::warn("leader: {}", stats_.last_takeover);
  if (kv->lease != 0) {
    Status st = store_.RevokeLease(kv->lease);
    if (!st.ok() && st.code() != StatusCode::kNotFound) {
      spdlog::warn("leader: cannot revoke the old leader's lease {}: {}", kv->lease, st.ToString());
    }
  }
  return c;
}

LeaderElection::Change LeaderElection::Campaign(TimePoint now, store::Compare compare) {
  ++stats_.campaigns;
  const TimePoint sent = clock_.Now();
  auto lease = store_.GrantLease(opts_.ttl);
  if (!lease.ok()) {
    spdlog::warn("leader: cannot grant a lease to campaign: {}", lease.status().ToString());
    return Change::kNone;
  }
  store::Txn txn;
  txn.compares = {std::move(compare)};
  txn.success = {
      store::Op::Put(kLeaderKey, Dump(json{{"id", opts_.id}, {"url", opts_.url}}), *lease)};
  auto r = store_.Commit(txn);
  if (!r.ok() || !r->succeeded) {
    if (!r.ok()) spdlog::warn("leader: campaign failed: {}", r.status().ToString());
    Status revoked = store_.RevokeLease(*lease);
    if (!revoked.ok() && revoked.code() != StatusCode::kNotFound) {
      spdlog::warn("leader: cannot revoke the unused lease {}: {}", *lease, revoked.ToString());
    }
    next_recheck_ = now;  // read who won (or retry) at the next tick
    return Change::kNone;
  }
  elected_ = true;
  takeover_grace_ = Duration::zero();
  lease_ = *lease;
  deadline_ = sent + opts_.ttl;
  next_renew_ = sent + opts_.renew_interval;
  SetLeader({opts_.id, opts_.url, r->revision});
  ++stats_.elected;
  // Our own put arrives on the follower watch (started before the campaign); the leader's
  // watch starts after it.
  if (watcher_) watcher_->Cancel();
  watcher_.reset();
  spdlog::info("leader: {} elected ({} at revision {}, lease ttl {}ms)", opts_.id, opts_.url,
               r->revision, ToMs(opts_.ttl));
  return Change::kElected;
}

void LeaderElection::StepDown(const std::string& why) {
  if (!elected_) return;
  elected_ = false;
  lease_ = 0;
  ++stats_.stepped_down;
  stats_.last_step_down = why;
  spdlog::warn("leader: {} steps down: {}", opts_.id, why);
  SetLeader({});
  if (watcher_) watcher_->Cancel();
  watcher_.reset();
  TimePoint now = clock_.Now();
  next_recheck_ = now;
  // Let another replica win the next election: this one just failed as leader.
  no_campaign_until_ = now + opts_.ttl;
}

void LeaderElection::Resign(const std::string& why) {
  if (!elected_) return;
  store::LeaseId lease = lease_;
  StepDown("resigned: " + why);
  Status st = store_.RevokeLease(lease);
  if (!st.ok()) spdlog::warn("leader: cannot revoke lease {}: {}", lease, st.ToString());
}

void LeaderElection::SetLeader(LeaderInfo info) {
  if (!info.id.empty() && (info.id != leader_.id || info.revision != leader_.revision)) {
    ++stats_.leader_changes;
    stats_.term_started = clock_.Now();
  }
  leader_ = std::move(info);
}

}  // namespace hafab::controller
