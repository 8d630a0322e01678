#include "gateway/control_plane.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <mutex>

#include "core/random.h"

namespace hafab::gateway {

namespace asio = boost::asio;

struct ControlPlane::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, Proxy& proxy, ControlPlaneOptions options,
       std::unique_ptr<ControlLink> control_link)
      : proxy(proxy),
        opts(std::move(options)),
        clock(opts.clock ? *opts.clock : RealClock()),
        random(opts.seed),
        poll_timer(io),
        heartbeat_timer(io),
        link(std::move(control_link)) {
    HAFAB_CHECK(link != nullptr, "ControlPlane needs a control link");
    backoff = opts.backoff_initial;
  }

  // A request failed: the error for status and the log (once per new error).
  void Failed(const std::string& what) {
    std::lock_guard lock(mu);
    if (what != st.last_error) {
      // No routes yet: started before the controller (it keeps polling, with backoff).
      spdlog::warn("gateway: {}{}", installed == 0 ? "waiting for the controller: " : "", what);
    }
    st.last_error = what;
    st.controller = link->Current();
  }

  void Poll() {
    if (stopped) return;
    link->FetchRoutes(installed, opts.poll_wait,
                      [self = shared_from_this()](Result<wire::Routes> r) { self->OnPoll(r); });
  }

  void OnPoll(const Result<wire::Routes>& r) {
    if (stopped) return;
    std::string error;
    if (!r.ok()) {
      error = r.status().code() == StatusCode::kInvalidArgument
                  ? "routes rejected, keeping version " + std::to_string(installed) + ": " +
                        r.status().message()
                  : "routes poll " + r.status().message();
    } else {
      const std::shared_ptr<const RouteTable> current = proxy.table();
      auto table = RouteTable::Compile(*r, current.get());
      if (!table.ok()) {
        error = "routes version " + std::to_string(r->version) + " from " + link->Current() +
                " rejected, keeping version " + std::to_string(installed) + ": " +
                table.status().message();
      } else {
        backoff = opts.backoff_initial;
        if ((*table)->version() != installed) Install(*table);
        Poll();
        return;
      }
    }
    {
      std::lock_guard lock(mu);
      ++st.poll_failures;
    }
    Failed(error);
    // Backoff with jitter, so that many gateways do not return to a controller at once.
    const auto jitter = Duration(static_cast<Duration::rep>(static_cast<double>(backoff.count()) *
                                                            0.5 * random.UniformDouble()));
    poll_timer.expires_after(backoff + jitter);
    backoff = std::min(backoff * 2, opts.backoff_max);
    // Expired or cancelled (PollNow, Stop): poll again, unless stopped (Poll checks).
    poll_timer.async_wait(
        [self = shared_from_this()](const boost::system::error_code&) { self->Poll(); });
  }

  // A heartbeat found the leader while the route poll sleeps off failures (no leader for a
  // while): poll it now rather than after up to backoff_max.
  void PollNow() {
    if (!stopped && poll_timer.cancel() > 0) backoff = opts.backoff_initial;
  }

  // The link follows the leader a follower named: the next poll goes there without waiting
  // out the backoff of the failures before.
  void LeaderFound() {
    if (stopped) return;
    backoff = opts.backoff_initial;
    poll_timer.cancel();
  }

  void Install(std::shared_ptr<const RouteTable> table) {
    Status s = proxy.Install(table);
    if (!s.ok()) spdlog::error("gateway: routes version {}: {}", table->version(), s.message());
    spdlog::info("gateway: routing from version {} ({} endpoints)", table->version(),
                 table->endpoints().size());
    installed = table->version();
    std::lock_guard lock(mu);
    st.installed_version = installed;
    // Acknowledge the new version soon (confirmed fencing waits for it); the data-path
    // threads apply it within microseconds.
    ack_soon = true;
  }

  void ScheduleHeartbeat(Duration after) {
    if (stopped) return;
    heartbeat_timer.expires_after(after);
    auto self = shared_from_this();
    heartbeat_timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->Heartbeat();
    });
  }

  void Heartbeat() {
    if (stopped) return;
    const uint64_t version = proxy.RoutesVersion();
    const TimePoint sent = clock.Now();
    wire::GatewayHeartbeat hb;
    hb.routes_version = version;
    // Read after the version: from that table on no new connection goes to a backend it
    // drops, so these counts only fall for such a backend (the controller's drain waits).
    hb.active = proxy.stats().ActiveByInstance();
    link->Heartbeat(opts.gateway_id, hb, opts.heartbeat_timeout,
                    [self = shared_from_this(), version, sent](Result<wire::HeartbeatAnswer> r) {
                      self->OnHeartbeat(version, sent, r);
                    });
  }

  void OnHeartbeat(uint64_t version, TimePoint sent, const Result<wire::HeartbeatAnswer>& r) {
    if (stopped) return;
    const TimePoint now = clock.Now();
    // InvalidArgument: the controller took the heartbeat but its answer did not parse.
    if (r.ok() || r.status().code() == StatusCode::kInvalidArgument) {
      Duration ttl = opts.default_lease_ttl;
      if (r.ok()) {
        ttl = r->lease_ttl;
        // What the controller granted: less than a TTL (none at all) while this gateway has
        // not acknowledged routes published up to a TTL ago. The proxy must stop routing
        // active-passive roles when the controller stops counting on it.
        if (r->lease) ttl = std::min(ttl, *r->lease);
      }
      // The lease runs from when the request left, never from when the answer came.
      proxy.SetLeaseDeadline(sent + ttl);
      PollNow();  // a leader answers again: the route poll need not sleep off its backoff
      std::lock_guard lock(mu);
      ++st.heartbeats_ok;
      st.acked_version = version;
      st.lease_valid = true;
      st.controller = link->Current();
    } else {
      {
        std::lock_guard lock(mu);
        ++st.heartbeat_failures;
      }
      Failed("heartbeat " + r.status().message());
    }
    Duration next = opts.heartbeat_interval - std::min(opts.heartbeat_interval, now - sent);
    if (ack_soon && proxy.RoutesVersion() == installed && version != installed) {
      next = Duration::zero();
    }
    if (version == installed) ack_soon = false;
    ScheduleHeartbeat(next);
  }

  Proxy& proxy;
  ControlPlaneOptions opts;
  Clock& clock;
  Random random;
  asio::steady_timer poll_timer;
  asio::steady_timer heartbeat_timer;
  std::unique_ptr<ControlLink> link;
  Duration backoff;
  uint64_t installed = 0;
  bool ack_soon = false;
  bool stopped = false;

  mutable std::mutex mu;  // guards st (read from other threads)
  ControlPlaneStatus st;
};

ControlPlane::ControlPlane(asio::io_context& io, Proxy& proxy, ControlPlaneOptions options,
                           std::unique_ptr<ControlLink> link)
    : impl_(std::make_shared<Impl>(io, proxy, std::move(options), std::move(link))) {
  // impl_ owns the link, which calls this on the io thread only.
  impl_->link->OnLeaderFound([impl = impl_.get()] { impl->LeaderFound(); });
}

ControlPlane::~ControlPlane() { Stop(); }

void ControlPlane::Start() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->st.controller = impl_->link->Current();
  }
  impl_->Poll();
  impl_->Heartbeat();
}

void ControlPlane::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->poll_timer.cancel();
  impl_->heartbeat_timer.cancel();
}

ControlPlaneStatus ControlPlane::status() const {
  std::lock_guard lock(impl_->mu);
  ControlPlaneStatus s = impl_->st;
  s.lease_valid = s.heartbeats_ok > 0 && impl_->proxy.LeaseValid();
  return s;
}

}  // namespace hafab::gateway
