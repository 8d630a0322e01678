#include "agent/agent.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "agent/fence_watchdog.h"
#include "agent/process_launcher.h"
#include "agent/procfs.h"
#include "core/fnv.h"
#include "core/version.h"

namespace hafab::agent {

namespace asio = boost::asio;

namespace {

// 63 random bits from the kernel, not hafab::Random: ids that must not repeat across runs of
// the agent (a report's, ring_datagram.h's first seq), nor be predictable.
uint64_t UnpredictableId() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) >> 1;
}

}  // namespace

// Runs provider calls (which may run operator scripts for seconds) one at a time off the
// io thread, and posts each result back to it.
class Agent::Worker {
 public:
  explicit Worker(asio::io_context& io) : io_(io), thread_([this] { Loop(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Run(std::function<Status()> op, std::function<void(Status)> done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(std::move(op), std::move(done));
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    while (true) {
      std::pair<std::function<Status()>, std::function<void(Status)>> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Status st = job.first();
      asio::post(io_, [done = std::move(job.second), st] { done(st); });
    }
  }

  asio::io_context& io_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<Status()>, std::function<void(Status)>>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

Agent::Agent(asio::io_context& io, Clock& clock, Launcher& launcher, provider::Provider& provider,
             ResourceLimiter* limiter, ControlLink& link, AgentOptions options)
    : io_(io),
      clock_(clock),
      options_(std::move(options)),
      metrics_(std::make_unique<AgentMetrics>(options_.node, limiter, ClockTicksPerSecond())),
      worker_(std::make_unique<Worker>(io)),
      limiter_(limiter),
      link_(link),
      lease_(clock),
      tick_timer_(io),
      heartbeat_timer_(io),
      fence_timer_(io),
      poll_retry_timer_(io),
      sigchld_(io, SIGCHLD),
      boot_id_(ReadBootId()),
      reports_(UnpredictableId()),
      keepalive_(options_.heartbeat_interval) {
  Worker* worker = worker_.get();
  volumes_ = std::make_unique<VolumeManager>(
      clock_, provider, options_.node,
      [worker](std::function<Status()> op, std::function<void(Status)> done) {
        worker->Run(std::move(op), std::move(done));
      },
      [](const std::string& dir) { return ProcessesHolding(dir); });
  volumes_->on_result = [this](std::string_view op, std::string_view outcome) {
    metrics_->RecordVolumeOp(op, outcome);
  };
  Supervisor::Options so;
  so.node = options_.node;
  so.address = options_.address;
  so.data_dir = options_.data_dir;
  if (options_.path_env.empty()) {
    const char* path = getenv("PATH");
    so.path_env = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  } else {
    so.path_env = options_.path_env;
  }
  so.limiter = limiter_;
  so.tracker = options_.tracker;
  so.log_writer_argv = options_.log_writer_argv;
  so.log_max_bytes = options_.log_max_bytes;
  so.log_keep = options_.log_keep;
  so.usage = options_.usage ? options_.usage
                            : [](const std::vector<pid_t>& pgids) { return UsageOfGroups(pgids); };
  so.ticks_per_second = ClockTicksPerSecond();
  so.lease_valid = [this] { return lease_.Valid(); };
  so.start_time_of = [](pid_t pid) -> std::optional<uint64_t> {
    auto st = ReadProcStat(pid);
    if (!st || st->state == 'Z') return std::nullopt;
    return st->start_time;
  };
  supervisor_ = std::make_unique<Supervisor>(clock_, launcher, *volumes_, std::move(so));
  probes_ =
      std::make_unique<ProbeRunner>(io_, options_.address,
                                    [this](const std::string& instance, pid_t pid, ProbeType type,
                                           ProbeOutcome outcome, Duration latency) {
                                      metrics_->RecordProbe(instance, type, outcome, latency);
                                      supervisor_->RecordProbe(instance, pid, type, outcome);
                                      HeartbeatOnChange();
                                    });
  // Asked as often as heartbeats go, so that each carries a fresh position.
  replicas_ = std::make_unique<ReplicaLink>(
      io_, options_.address, options_.heartbeat_interval, std::chrono::seconds(2),
      [this](const std::string& instance, pid_t pid, Result<wire::ReplicaStatus> status) {
        supervisor_->RecordReplica(instance, pid, std::move(status));
        HeartbeatOnChange();
      });
}

Agent::~Agent() {
  // The watchdog is left running unless Shutdown stopped it: it guards the primaries that
  // outlive this agent object (a crash or a test's simulated SIGKILL).
  probes_.reset();
  replicas_.reset();
  worker_.reset();
}

void Agent::Start() {
  spdlog::info("agent {}: data dir {}, controllers {}, resource limits: {}, instance processes: {}",
               options_.node, options_.data_dir, link_.Describe(),
               limiter_ != nullptr ? limiter_->Mechanism() : "none",
               options_.tracker != nullptr ? options_.tracker->Mechanism() : "process group");
  RestoreLease();
  volumes_->PersistTo(options_.data_dir + "/run/volumes.json");
  supervisor_->AdoptLeftovers();
  StartWatchdog();
  CheckLease();  // adopted primaries whose lease ran out while no agent ran are fenced now
  ArmFenceTimer();
  WatchChildren();
  Tick();
  SendHeartbeat();
  Poll(/*immediate=*/false);
}

void Agent::Shutdown(std::function<void()> done) {
  spdlog::info("agent {}: shutting down: stopping every instance", options_.node);
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  supervisor_->StopAll();
  Tick();
}

void Agent::StartWatchdog() {
  if (options_.watchdog_argv.empty()) return;
  LaunchSpec spec;
  spec.argv = options_.watchdog_argv;
  if (const char* path = getenv("PATH")) spec.env["PATH"] = path;
  // TEST ONLY: tests/faults breaks fencing on purpose to prove its checker catches it.
  if (const char* skip = getenv("HAFAB_TEST_SKIP_SELF_FENCE")) {
    spec.env["HAFAB_TEST_SKIP_SELF_FENCE"] = skip;
  }
  spec.log_path = options_.data_dir + "/logs/watchdog.log";
  auto pid = SpawnProcess(spec);
  if (!pid.ok()) {
    spdlog::error("agent {}: cannot start the fence watchdog: {}", options_.node,
                  pid.status().ToString());
    return;
  }
  watchdog_pid_ = *pid;
  // Registering it retires any watchdog of a previous agent run.
  std::ofstream(options_.data_dir + "/run/" + kWatchdogPidFile) << watchdog_pid_ << "\n";
  spdlog::info("agent {}: fence watchdog pid {}", options_.node, watchdog_pid_);
}

void Agent::StopWatchdog() {
  if (watchdog_pid_ <= 0) return;
  kill(watchdog_pid_, SIGTERM);
  int status;
  waitpid(watchdog_pid_, &status, 0);
  std::remove((options_.data_dir + "/run/" + kWatchdogPidFile).c_str());
  watchdog_pid_ = 0;
}

void Agent::WatchChildren() {
  sigchld_.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    if (watchdog_pid_ > 0) {
      int status;
      if (waitpid(watchdog_pid_, &status, WNOHANG) == watchdog_pid_) {
        spdlog::warn("agent {}: the fence watchdog exited; starting another", options_.node);
        watchdog_pid_ = 0;
        StartWatchdog();
      }
    }
    supervisor_->Tick();
    HeartbeatOnChange();
    WatchChildren();
  });
}

void Agent::ScheduleTick() {
  tick_timer_.expires_after(options_.tick_interval);
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    Tick();
  });
}

void Agent::Tick() {
  CheckLease();
  supervisor_->Tick();
  probes_->Sync(supervisor_->ProbeTargets());
  replicas_->Sync(supervisor_->ReplicaTargets());
  if (shutting_down_ && shutdown_done_ && supervisor_->Idle()) {
    spdlog::info("agent {}: every instance stopped and every volume detached", options_.node);
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    StopWatchdog();
    done();
    return;
  }
  HeartbeatOnChange();
  if (publish_metrics_) PublishMetrics();
  ScheduleTick();
}

void Agent::PublishMetrics() {
  const std::map<std::string, uint64_t> ticks = supervisor_->SampledCpuTicks();
  std::vector<InstanceMetrics> instances;
  for (const InstanceReport& r : supervisor_->Report()) {
    InstanceMetrics m;
    m.instance = r.instance;
    m.role = r.role;
    m.state = r.state;
    m.readiness = r.readiness;
    m.liveness = r.liveness;
    m.restarts = r.restarts;
    m.pid = static_cast<pid_t>(r.pid);
    if (auto t = ticks.find(r.instance); t != ticks.end()) m.group_cpu_ticks = t->second;
    m.group_rss_bytes = r.rss_bytes;
    instances.push_back(std::move(m));
  }
  metrics_->SetInstances(std::move(instances), lease_.Valid(), supervisor_->fenced());
}

void Agent::CheckLease() {
  if (!lease_.Expired() || supervisor_->fenced()) return;
  const auto since = clock_.Now() - (lease_.deadline() - options_.lease_ttl);
  std::string reason = heartbeats_ok_ == 0 ? "no lease from the controller since the agent started"
                                           : "could not renew the lease with the controller for " +
                                                 std::to_string(ToMs(since)) + "ms (lease_ttl " +
                                                 std::to_string(ToMs(options_.lease_ttl)) +
                                                 "ms; controllers " + link_.Describe() + ")";
  std::vector<std::string> killed = supervisor_->Fence(reason);
  metrics_->RecordSelfFence(killed.size());
  fenced_at_ = clock_.Now();
  if (!killed.empty() || heartbeats_ok_ > 0) {
    unreported_fence_ = wire::FenceReport{reason, clock_.WallNow(), killed};
  }
  supervisor_->Tick();
}

void Agent::ArmFenceTimer() {
  if (!lease_.held()) return;
  Duration left = lease_.deadline() - clock_.Now();
  if (left < Duration::zero()) left = Duration::zero();
  fence_timer_.expires_after(left + std::chrono::milliseconds(1));
  fence_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    CheckLease();
  });
}

void Agent::PersistLease() {
  const std::string path = options_.data_dir + "/run/lease";
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << std::chrono::duration_cast<std::chrono::nanoseconds>(
               lease_.deadline().time_since_epoch())
               .count()
        << "\n";
  }
  std::rename((path + ".tmp").c_str(), path.c_str());
}

void Agent::RestoreLease() {
  // The deadline the previous run held, on the system-wide monotonic clock: adopted primaries
  // may keep running until then, and are fenced at once if it has passed.
  std::ifstream in(options_.data_dir + "/run/lease");
  int64_t ns = 0;
  if (!(in >> ns) || ns <= 0) {
    // No lease was ever renewed here: a primary left running without one is fenced at once.
    lease_.Restore(clock_.Now());
    return;
  }
  lease_.Restore(TimePoint(std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(ns))));
  if (lease_.Valid()) {
    spdlog::info("agent {}: the previous run's lease ends in {}ms", options_.node,
                 ToMs(lease_.deadline() - clock_.Now()));
  } else {
    spdlog::info("agent {}: the previous run's lease ended {}ms ago", options_.node,
                 ToMs(clock_.Now() - lease_.deadline()));
  }
}

void Agent::ScheduleHeartbeat() {
  heartbeat_timer_.expires_after(keepalive_);
  heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    SendHeartbeat();
  });
}

uint64_t Agent::ReportDigest() const {
  return Fnv1a().Add(applied_generation_).Add(supervisor_->ReportDigest()).value();
}

void Agent::HeartbeatOnChange() {
  if (shutting_down_ || heartbeats_ok_ == 0) return;  // the regular timer until first contact
  if (ReportDigest() != sent_digest_) HeartbeatNow();
}

void Agent::HeartbeatNow() {
  if (heartbeats_in_flight_ > 0) {
    heartbeat_again_ = true;
    return;
  }
  SendHeartbeat();
}

void Agent::SendHeartbeat() {
  ScheduleHeartbeat();
  if (heartbeats_in_flight_ >= 2 ||
      (heartbeats_in_flight_ == 1 &&
       clock_.Now() - heartbeat_sent_at_ < options_.heartbeat_interval)) {
    return;  // the next one goes when this returns
  }
  heartbeat_again_ = false;
  sent_digest_ = ReportDigest();
  wire::AgentHeartbeat in;
  in.node = options_.node;
  in.boot_id = boot_id_;
  in.fence = unreported_fence_;
  // The report is built only when it may have changed since the last one answered.
  const ReportVersion version{applied_generation_, supervisor_->changes(), volumes_->changes()};
  if (!reports_.KeepAlive(version, in)) {
    in.address = options_.address;
    in.agent_version = kVersion;
    in.labels = options_.labels;
    in.assignments_generation = applied_generation_;
    in.assignments_digest = applied_digest_;
    in.instances = supervisor_->Report();
    in.volumes = volumes_->Report();
    if (limiter_ != nullptr) in.resource_limits = limiter_->Mechanism();
    reports_.Prepare(in, version);
  }
  // The ring: every standing suspicion (a controller that restarted learns them again) and the
  // suspicions that ended since the last answer.
  std::set<std::string> refutes_sent;  // per heartbeat: two may be in flight
  if (ring_) {
    for (const auto& s : ring_->monitor().suspected()) in.ring.push_back({s, true});
    for (const auto& r : ring_refutes_) {
      if (in.ring.size() >= wire::kMaxRingPeers) break;  // the rest with the next heartbeat
      in.ring.push_back({r, false});
      refutes_sent.insert(r);
    }
    const RingCounters& c = ring_->counters();
    in.ring_endpoint = wire::RingEndpoint{ring_->port(), c.sent, c.received, c.dropped_invalid};
  }
  const bool carried_fence = unreported_fence_.has_value();
  const TimePoint sent_at = clock_.Now();
  ++heartbeats_in_flight_;
  heartbeat_sent_at_ = sent_at;
  // Half a lease at most: a heartbeat whose connection was not accepted (its SYN dropped by a
  // listen queue an anonymous flood keeps full, retransmitted only after 1 s) is given up
  // and sent again on a new connection while the lease still holds.
  Duration timeout = std::min<Duration>(options_.lease_ttl / 2, std::chrono::seconds(1));
  link_.Heartbeat(
      in, timeout,
      [this, sent_at, carried_fence, report = in.report,
       refutes_sent = std::move(refutes_sent)](Result<wire::HeartbeatAnswer> r) {
        --heartbeats_in_flight_;
        if (!r.ok() && r.status().code() == StatusCode::kConflict) {
          // A keep-alive the controller cannot take (it does not hold our report: it
          // restarted or took over): the whole report goes now.
          reports_.Refused();
          HeartbeatNow();
          return;
        }
        metrics_->RecordHeartbeat(r.ok(), clock_.Now() - sent_at);
        if (!r.ok()) {
          if (heartbeat_failures_++ % 25 == 0) {
            if (heartbeats_ok_ == 0) {  // never answered: started before the controller
              spdlog::warn("agent {}: waiting for the controller ({}), heartbeat every {}ms: {}",
                           options_.node, link_.Describe(), ToMillis(options_.heartbeat_interval),
                           r.status().ToString());
            } else {
              spdlog::warn("agent {}: heartbeat failed ({} in a row): {}", options_.node,
                           heartbeat_failures_, r.status().ToString());
            }
          }
          return;
        }
        if (heartbeat_failures_ > 0) {
          spdlog::info("agent {}: heartbeat answered again after {} failures", options_.node,
                       heartbeat_failures_);
        }
        heartbeat_failures_ = 0;
        ++heartbeats_ok_;
        reports_.Answered(report);
        for (const auto& n : refutes_sent) ring_refutes_.erase(n);
        // The ring's keep-alive (longer for a node without an active-passive primary), or ours.
        const Duration keepalive = r->keepalive.value_or(options_.heartbeat_interval);
        if (keepalive != keepalive_) {
          const bool sooner = keepalive < keepalive_;
          keepalive_ = keepalive;
          if (sooner) ScheduleHeartbeat();
        }
        options_.lease_ttl = r->lease_ttl;
        lease_.Renewed(sent_at, r->lease_ttl);
        PersistLease();
        ArmFenceTimer();
        if (carried_fence) unreported_fence_.reset();
        controller_generation_ = r->assignments_generation;
        if (!have_list_ || controller_generation_ != applied_generation_ || supervisor_->fenced()) {
          Poll(/*immediate=*/true);
        }
        if (heartbeat_again_) SendHeartbeat();
      });
}

void Agent::Poll(bool immediate) {
  bool& in_flight = immediate ? immediate_poll_in_flight_ : long_poll_in_flight_;
  if (in_flight) return;
  in_flight = true;
  const uint64_t seq = ++poll_seq_;
  const TimePoint sent_at = clock_.Now();
  link_.FetchAssignments(options_.node, have_list_ ? applied_generation_ : 0,
                         have_list_ ? applied_digest_ : 0,
                         immediate ? Duration::zero() : options_.assignments_wait,
                         [this, seq, sent_at, immediate](Result<wire::AssignmentList> r) {
                           (immediate ? immediate_poll_in_flight_ : long_poll_in_flight_) = false;
                           const bool ok = r.ok();
                           OnAssignments(seq, sent_at, std::move(r));
                           if (immediate) return;
                           if (ok) {
                             AfterLongPoll(sent_at);
                             Poll(false);
                             return;
                           }
                           poll_retry_timer_.expires_after(options_.retry_interval);
                           poll_retry_timer_.async_wait([this](boost::system::error_code ec) {
                             if (!ec) Poll(false);
                           });
                         });
}

void Agent::OnAssignments(uint64_t seq, TimePoint sent_at, Result<wire::AssignmentList> r) {
  if (!r.ok()) {
    if (r.status().code() != StatusCode::kUnavailable &&
        r.status().code() != StatusCode::kDeadlineExceeded) {
      spdlog::warn("agent {}: assignments: {}", options_.node, r.status().ToString());
    }
    return;
  }
  // "unchanged": the long poll's wait passed with the list we have (an immediate poll, which
  // a fence's end waits for, always gets the list).
  if (shutting_down_ || r->unchanged) return;
  const AssignmentList& list = *r;
  const bool newer = !have_list_ || list.generation > applied_generation_ ||
                     (list.generation != applied_generation_ && seq > applied_seq_);
  if (newer) {
    spdlog::info("agent {}: applying assignments generation {} ({} instances)", options_.node,
                 list.generation, list.assignments.size());
    ApplyRing(list);
    supervisor_->Apply(list);
    applied_generation_ = list.generation;
    applied_digest_ = wire::ContentDigest(list);
    have_list_ = true;
  }
  applied_seq_ = std::max(applied_seq_, seq);
  if (supervisor_->fenced() && fenced_at_ && sent_at > *fenced_at_ && lease_.Valid()) {
    // The list applied is the newest; one answered late to an earlier poll is older and is
    // never applied over it (it would stop a new primary: hafab-sim, seed 768).
    if (!newer && list.generation == applied_generation_) supervisor_->Apply(list);
    supervisor_->Unfence();
  }
  supervisor_->Tick();
  // A replica's new configuration (a fence, a promotion) goes now, not at the next tick.
  replicas_->Sync(supervisor_->ReplicaTargets());
  HeartbeatOnChange();  // the new generation (and what it started) reaches the controller now
}

void Agent::AfterLongPoll(TimePoint sent_at) {
  // Answered well before its wait: the ring arbiter's check (controller/api.cc) or a new list;
  // either way the controller hears from us now.
  if (ring_ && clock_.Now() - sent_at < options_.assignments_wait * 9 / 10) HeartbeatNow();
}

void Agent::ApplyRing(const wire::AssignmentList& list) {
  if (!ring_) {
    if (list.ring.empty()) return;
    RingOptions ro = options_.ring;
    // The first seq is what makes an ack recorded in an earlier run useless to a replayer
    // (ring_datagram.h).
    ro.first_seq = UnpredictableId();
    auto ring = std::make_unique<RingTransport>(io_, clock_, options_.node, ro,
                                                [this] { OnRingReports(); });
    auto port = ring->Listen(options_.address, options_.ring_port);
    if (!port.ok()) {
      spdlog::error(
          "agent {}: failure_detector ring: {}; not probing (the neighbours will "
          "suspect this node, and the controller will find it isolated)",
          options_.node, port.status().ToString());
      return;
    }
    spdlog::info("agent {}: ring probes on udp {}:{}", options_.node, options_.address, *port);
    ring_ = std::move(ring);
    HeartbeatNow();  // the controller learns the port, its watchers where to probe
  }
  ring_->SetPeers(list.ring, list.ring_key);
}

void Agent::OnRingReports() {
  bool changed = false;
  for (const wire::RingReport& r : ring_->monitor().TakeReports()) {
    changed = true;
    if (r.suspect) {
      spdlog::warn("agent {}: ring: neighbour {} does not answer its probes (suspected)",
                   options_.node, r.about);
      ring_refutes_.erase(r.about);
    } else {
      spdlog::info("agent {}: ring: neighbour {} answers again", options_.node, r.about);
      ring_refutes_.insert(r.about);
    }
  }
  // A change in what the agent suspects is reported at once (the controller arbitrates).
  if (changed && heartbeats_ok_ > 0) HeartbeatNow();
}

}  // namespace hafab::agent
