#include "sim/sim_node.h"

#include <filesystem>

#include "core/fnv.h"

namespace hafab::sim {

SimNode::SimNode(EventQueue& events, Clock& clock, testing::FakeProvider& provider,
                 agent::ControlLink& link, ProcessObserver& observer, SimNodeOptions options)
    : events_(events),
      clock_(clock),
      link_(link),
      observer_(observer),
      options_(std::move(options)),
      lease_(clock),
      // The agent draws its first report id at random; here each boot of the node has its own
      // range, so that the run stays a function of the seed.
      reports_((static_cast<uint64_t>(options_.incarnation) << 40) + 1) {
  std::filesystem::create_directories(options_.data_dir);
  volumes_ = std::make_unique<agent::VolumeManager>(
      clock_, provider, options_.name,
      [](std::function<Status()> op, std::function<void(Status)> done) { done(op()); },
      [this](const std::string& dir) {
        std::vector<pid_t> holders;
        for (const auto& [pid, held] : volume_of_) {
          if (held == dir && launcher_.Alive(pid)) holders.push_back(pid);
        }
        return holders;
      });
  agent::Supervisor::Options so;
  so.node = options_.name;
  so.data_dir = options_.data_dir;
  so.path_env = "/usr/bin:/bin";
  so.lease_valid = [this] { return lease_.Valid(); };
  so.start_time_of = [this](pid_t pid) -> std::optional<uint64_t> {
    if (!launcher_.Alive(pid)) return std::nullopt;
    return static_cast<uint64_t>(pid);
  };
  supervisor_ = std::make_unique<agent::Supervisor>(clock_, launcher_, *volumes_, std::move(so));
  boot_id_ = options_.name + "@" + std::to_string(clock_.Now().time_since_epoch().count());
  keepalive_ = options_.heartbeat_interval;
  if (options_.ring) {
    ring_ = std::make_unique<agent::RingMonitor>(clock_, options_.name, options_.ring_options,
                                                 options_.ring_send);
  }
}

// A tick's event holds only `this` twice: small enough for std::function to keep without
// allocating.
template <typename F>
void SimNode::Later(Duration d, F fn) {
  events_.After(d, [this, fn = std::move(fn)]() mutable {
    if (alive_) WhenAwake(std::move(fn));
  });
}

template <typename F>
void SimNode::WhenAwake(F fn) {
  if (!Paused()) {
    fn();
    return;
  }
  Later(paused_until_ - clock_.Now(), std::move(fn));
}

void SimNode::ScheduleHeartbeat(Duration d) {
  const uint64_t timer = ++heartbeat_timer_;
  Later(d, [this, timer] {
    if (timer == heartbeat_timer_) SendHeartbeat(/*scheduled=*/true);
  });
}

void SimNode::OnRing(const wire::RingMessage& m) {
  if (!ring_) return;
  WhenAwake([this, m] {
    ring_->OnMessage(m);
    TakeRingReports();
  });
}

void SimNode::Check() {
  WhenAwake([this] { SendHeartbeat(/*scheduled=*/false); });
}

void SimNode::RingTick() {
  ring_due_ = TimePoint::max();
  ring_->Tick();
  TakeRingReports();
  ScheduleRing();
}

void SimNode::ScheduleRing() {
  const TimePoint due = ring_->NextDue();
  if (due >= ring_due_) return;
  ring_due_ = due;
  Later(std::max(Duration::zero(), due - clock_.Now()), [this, due] {
    if (due == ring_due_) RingTick();
  });
}

// A change in what the agent suspects is reported at once (the controller arbitrates).
void SimNode::TakeRingReports() {
  bool changed = false;
  for (const wire::RingReport& r : ring_->TakeReports()) {
    changed = true;
    if (r.suspect) {
      refutes_.erase(r.about);
    } else {
      refutes_.insert(r.about);
    }
  }
  if (changed && heartbeats_ok_ > 0) SendHeartbeat(/*scheduled=*/false);
}

void SimNode::Start() {
  // As a freshly installed agent: no lease yet, so nothing runs a primary until the first
  // answered heartbeat.
  lease_.Restore(clock_.Now());
  // Agent::Start: the volumes a previous boot attached (detached if nothing needs them), and
  // its instances (none adopted: their processes died with the node).
  volumes_->PersistTo(options_.data_dir + "/run/volumes.json");
  supervisor_->AdoptLeftovers();
  Tick();
  SendHeartbeat(/*scheduled=*/true);
  Poll();
  if (ring_) ScheduleRing();
}

void SimNode::Tick() {
  CheckLease();
  SupervisorTick();
  Probe();
  if (heartbeats_ok_ > 0 && Digest() != sent_digest_) SendHeartbeat(/*scheduled=*/false);
  Wake();
}

void SimNode::Wake(TimePoint at) {
  const TimePoint now = clock_.Now();
  if (!supervisor_->settled() || launcher_.ExitPending()) {
    at = std::min(at, now + options_.tick_interval);
  }
  at = std::min(at, next_probe_due_);
  if (at >= wake_due_) return;  // an earlier tick is scheduled
  wake_due_ = at;
  Later(std::max(Duration::zero(), at - now), [this, at] {
    if (at != wake_due_) return;  // an earlier one took its place
    wake_due_ = TimePoint::max();
    Tick();
  });
}

void SimNode::SupervisorTick() {
  supervisor_->Tick();
  // Tell the simulation about the processes started, the moment they start.
  const auto& started = launcher_.started();
  for (; started_seen_ < started.size(); ++started_seen_) {
    const auto& s = started[started_seen_];
    auto env = [&](const char* k) {
      auto it = s.spec.env.find(k);
      return it == s.spec.env.end() ? std::string() : it->second;
    };
    SimProcess p;
    p.node = options_.name;
    p.incarnation = options_.incarnation;
    p.pid = s.pid;
    p.instance = env("HAFAB_INSTANCE");
    p.role = env("HAFAB_ROLE");
    p.epoch = std::stoull("0" + env("HAFAB_EPOCH"));
    p.volume_dir = env("HAFAB_VOLUME_DIR");
    if (!p.volume_dir.empty()) volume_of_[p.pid] = p.volume_dir;
    observer_.Started(p);
  }
  std::erase_if(volume_of_, [this](const auto& e) { return !launcher_.Alive(e.first); });
  std::erase_if(hung_, [this](pid_t pid) { return !launcher_.Alive(pid); });
}

// The agent's ProbeRunner, without sockets: every probe of a running process answers at its
// interval, ok unless the process hangs. The targets are listed again only when the
// supervisor changed.
void SimNode::Probe() {
  const TimePoint now = clock_.Now();
  const bool listed = probe_targets_at_ == supervisor_->changes();
  if (now < next_probe_due_ && listed) return;
  if (!listed) {
    probe_targets_ = supervisor_->ProbeTargets();
    probe_targets_at_ = supervisor_->changes();
  }
  next_probe_due_ = TimePoint::max();
  for (const auto& t : probe_targets_) {
    const std::optional<manifest::Probe>* probes[] = {&t.liveness, &t.readiness};
    for (int type = 0; type < 2; ++type) {
      if (!*probes[type]) continue;
      TimePoint& next = next_probe_[{t.instance, type}];
      if (now >= next) {
        next = now + (*probes[type])->interval;
        supervisor_->RecordProbe(
            t.instance, t.pid,
            type == 0 ? agent::ProbeType::kLiveness : agent::ProbeType::kReadiness,
            hung_.count(t.pid) ? agent::ProbeOutcome::kFailed : agent::ProbeOutcome::kOk);
      }
      next_probe_due_ = std::min(next_probe_due_, next);
    }
  }
}

// The agent's fence timer: the lease is checked right after it ends. One timer, as the
// agent's: a renewal does not add one, the timer moves on to the new end when it fires early.
void SimNode::ArmLeaseTimer() {
  const TimePoint due = lease_.deadline() + std::chrono::milliseconds(1);
  if (lease_timer_due_ != TimePoint{} && lease_timer_due_ <= due) return;
  lease_timer_due_ = due;
  Later(due - clock_.Now(), [this, due] {
    if (due != lease_timer_due_) return;  // an earlier end took its place
    lease_timer_due_ = TimePoint{};
    CheckLease();
    if (!lease_.Expired()) ArmLeaseTimer();
  });
}

void SimNode::CheckLease() {
  if (!lease_.Expired() || supervisor_->fenced() || options_.skip_self_fence) return;
  std::vector<std::string> killed = supervisor_->Fence("lease expired");
  ++fences_;
  fenced_at_ = clock_.Now();
  if (!killed.empty() || heartbeats_ok_ > 0) {
    unreported_fence_ = wire::FenceReport{"lease expired", clock_.WallNow(), killed};
  }
  SupervisorTick();
  Wake();
}

// Agent::ReportDigest.
uint64_t SimNode::Digest() const {
  return Fnv1a().Add(applied_generation_).Add(supervisor_->ReportDigest()).value();
}

void SimNode::SendHeartbeat(bool scheduled) {
  if (scheduled) ScheduleHeartbeat(keepalive_);
  if (heartbeats_in_flight_ > 0) {
    // Agent::SendHeartbeat: a change waits for the answer; the schedule does not wait for one
    // unanswered for an interval.
    if (!scheduled || heartbeats_in_flight_ >= 2 ||
        clock_.Now() - heartbeat_sent_at_ < options_.heartbeat_interval) {
      if (!scheduled) heartbeat_again_ = true;
      return;
    }
  }
  heartbeat_again_ = false;
  sent_digest_ = Digest();
  wire::AgentHeartbeat hb;
  hb.node = options_.name;
  hb.boot_id = boot_id_;
  hb.fence = unreported_fence_;
  // Agent::SendHeartbeat: the report is built only when it may have changed.
  const agent::ReportVersion version{applied_generation_, supervisor_->changes(),
                                     volumes_->changes()};
  if (!reports_.KeepAlive(version, hb)) {
    hb.address = options_.address;
    hb.agent_version = "sim";
    hb.labels = {{"fault_domain", options_.fault_domain},
                 {"update_domain", options_.update_domain}};
    hb.assignments_generation = applied_generation_;
    hb.assignments_digest = applied_digest_;
    hb.instances = supervisor_->Report();
    hb.volumes = volumes_->Report();
    reports_.Prepare(hb, version);
  }
  // The ring: every standing suspicion (a controller that restarted learns them again) and
  // the suspicions that ended since the last answer.
  std::set<std::string> refutes_sent;
  if (ring_) {
    for (const auto& s : ring_->suspected()) hb.ring.push_back({s, true});
    for (const auto& r : refutes_) hb.ring.push_back({r, false});
    refutes_sent = refutes_;
  }
  const bool carried_fence = unreported_fence_.has_value();
  const TimePoint sent_at = clock_.Now();
  ++heartbeats_in_flight_;
  heartbeat_sent_at_ = sent_at;
  const Duration timeout = std::min<Duration>(options_.lease_ttl / 2, std::chrono::seconds(1));
  link_.Heartbeat(hb, timeout,
                  [this, sent_at, carried_fence, refutes_sent,
                   report = hb.report](Result<wire::HeartbeatAnswer> r) {
                    if (!alive_) return;
                    --heartbeats_in_flight_;
                    if (!r.ok() && r.status().code() == StatusCode::kConflict) {
                      reports_.Refused();  // Agent::SendHeartbeat: the whole report, now
                      SendHeartbeat(false);
                      return;
                    }
                    if (!r.ok()) return;
                    ++heartbeats_ok_;
                    reports_.Answered(report);
                    for (const auto& n : refutes_sent) refutes_.erase(n);
                    if (r->keepalive && *r->keepalive != keepalive_) {
                      const bool sooner = *r->keepalive < keepalive_;
                      keepalive_ = *r->keepalive;
                      if (sooner) ScheduleHeartbeat(keepalive_);
                    }
                    options_.lease_ttl = r->lease_ttl;
                    lease_.Renewed(sent_at, r->lease_ttl);
                    ArmLeaseTimer();
                    if (carried_fence) unreported_fence_.reset();
                    if (!have_list_ || r->assignments_generation != applied_generation_ ||
                        supervisor_->fenced()) {
                      Poll();
                    }
                    if (heartbeat_again_) SendHeartbeat(false);
                  });
}

void SimNode::Poll() {
  if (poll_in_flight_) return;
  poll_in_flight_ = true;
  const TimePoint sent_at = clock_.Now();
  link_.FetchAssignments(options_.name, 0, 0, Duration::zero(),
                         [this, sent_at](Result<wire::AssignmentList> r) {
                           if (!alive_) return;
                           poll_in_flight_ = false;
                           if (r.ok()) Apply(*r, sent_at);
                         });
}

void SimNode::Deliver(const wire::AssignmentList& list, TimePoint asked_at) {
  WhenAwake([this, list, asked_at] { Apply(list, asked_at); });
}

// Agent::OnAssignments.
void SimNode::Apply(const wire::AssignmentList& list, TimePoint asked_at) {
  const bool newer = !have_list_ || list.generation > applied_generation_;
  if (newer && ring_) {
    std::vector<std::string> neighbours;
    for (const auto& p : list.ring) neighbours.push_back(p.node);
    if (neighbours != ring_->neighbours()) {
      ring_->SetNeighbours(std::move(neighbours));
      ScheduleRing();
    }
  }
  if (newer) {
    supervisor_->Apply(list);
    applied_generation_ = list.generation;
    applied_digest_ = wire::ContentDigest(list);
    have_list_ = true;
  }
  if (supervisor_->fenced() && fenced_at_ && asked_at > *fenced_at_ && lease_.Valid()) {
    // The list applied is the newest; one answered late to an earlier poll is older and is
    // never applied over it (it would stop a new primary: hafab-sim, seed 768).
    if (!newer && list.generation == applied_generation_) supervisor_->Apply(list);
    supervisor_->Unfence();
  }
  SupervisorTick();
  Probe();
  if (heartbeats_ok_ > 0 && Digest() != sent_digest_) SendHeartbeat(false);
  Wake();
}

}  // namespace hafab::sim
