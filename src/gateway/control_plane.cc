#include "gateway/control_plane.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/json.h"
#include "core/random.h"
#include "http/http.h"
#include "http/leader_hint.h"
#include "http/pool.h"
#include "wire/agent_heartbeat.h"
#include "wire/gateway_heartbeat.h"

namespace hafab::gateway {

namespace asio = boost::asio;

struct ControlPlane::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, Proxy& proxy, ControlPlaneOptions options)
      : io(io),
        proxy(proxy),
        opts(std::move(options)),
        clock(opts.clock ? *opts.clock : RealClock()),
        random(opts.seed),
        poll_timer(io),
        heartbeat_timer(io),
        pool(io) {
    HAFAB_CHECK(!opts.controllers.empty(), "ControlPlane needs a controller URL");
    for (auto& url : opts.controllers) {
      while (!url.empty() && url.back() == '/') url.pop_back();
    }
    backoff = opts.backoff_initial;
  }

  http::Headers AuthHeaders() const { return {{"Authorization", "Bearer " + opts.token}}; }

  const std::string& Current() const { return opts.controllers[current % opts.controllers.size()]; }

  // A request to controllers[index] failed: move on to the next URL (once per failure of
  // the URL in use, so the poll and the heartbeat do not skip one between them).
  void Failed(size_t index, const std::string& what) {
    if (index == current && opts.controllers.size() > 1) {
      current = (current + 1) % opts.controllers.size();
      spdlog::warn("gateway: {}; trying controller {}", what, Current());
    }
    std::lock_guard lock(mu);
    if (what != st.last_error) {
      // No routes yet: started before the controller (it keeps polling, with backoff).
      spdlog::warn("gateway: {}{}", installed == 0 ? "waiting for the controller: " : "", what);
    }
    st.last_error = what;
    st.controller = Current();
  }

  // A follower controller answered 503 "not leader" naming the leader: use the leader next
  // when it is one of our URLs (instead of trying each in turn). True if we switched.
  bool FollowLeader(size_t index, const http::Response& r) {
    auto leader = http::LeaderIndex(r, opts.controllers);
    if (!leader || index != current || *leader == index) return false;
    current = *leader;
    spdlog::info("gateway: controller {} is not leader; following the leader {}",
                 opts.controllers[index], opts.controllers[*leader]);
    return true;
  }

  void Poll() {
    if (stopped) return;
    const size_t index = current;
    const uint64_t after = installed;
    const std::string url =
        Current() + "/v1/routes?after=" + std::to_string(after) + "&wait_ms=" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(opts.poll_wait).count());
    auto self = shared_from_this();
    pool.Fetch("GET", url, "", AuthHeaders(), opts.poll_wait + std::chrono::seconds(2),
               [self, index, url](Result<http::Response> r) { self->OnPoll(index, url, r); });
  }

  void OnPoll(size_t index, const std::string& url, const Result<http::Response>& r) {
    if (stopped) return;
    std::string error;
    if (!r.ok()) {
      error = "routes poll " + url + ": " + r.status().message();
    } else if (r->status != 200) {
      error = "routes poll " + url + ": HTTP " + std::to_string(r->status) + " " + r->body;
      if (r->status == 503 && FollowLeader(index, *r)) backoff = opts.backoff_initial;
    } else {
      auto table = RouteTable::Parse(r->body);
      if (!table.ok()) {
        error = "routes from " + url + " rejected, keeping version " + std::to_string(installed) +
                ": " + table.status().message();
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
    Failed(index, error);
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
    const size_t index = current;
    const uint64_t version = proxy.RoutesVersion();
    const TimePoint sent = clock.Now();
    const std::string url = Current() + "/v1/gateways/" + opts.gateway_id + "/heartbeat";
    wire::GatewayHeartbeat hb;
    hb.routes_version = version;
    // Read after the version: from that table on no new connection goes to a backend it
    // drops, so these counts only fall for such a backend (the controller's drain waits).
    hb.active = proxy.stats().ActiveByInstance();
    auto self = shared_from_this();
    pool.Fetch("POST", url, Dump(wire::ToJson(hb)), AuthHeaders(), opts.heartbeat_timeout,
               [self, index, url, version, sent](Result<http::Response> r) {
                 self->OnHeartbeat(index, url, version, sent, r);
               });
  }

  void OnHeartbeat(size_t index, const std::string& url, uint64_t version, TimePoint sent,
                   const Result<http::Response>& r) {
    if (stopped) return;
    const TimePoint now = clock.Now();
    if (r.ok() && r->status == 200) {
      Duration ttl = opts.default_lease_ttl;
      if (auto answer = wire::ParseHeartbeatAnswer(r->body); answer.ok()) {
        ttl = answer->lease_ttl;
        // What the controller granted: less than a TTL (none at all) while this gateway has
        // not acknowledged routes published up to a TTL ago. The proxy must stop routing
        // active-passive roles when the controller stops counting on it.
        if (answer->lease) ttl = std::min(ttl, *answer->lease);
      }
      // The lease runs from when the request left, never from when the answer came.
      proxy.SetLeaseDeadline(sent + ttl);
      PollNow();  // a leader answers again: the route poll need not sleep off its backoff
      std::lock_guard lock(mu);
      ++st.heartbeats_ok;
      st.acked_version = version;
      st.lease_valid = true;
      st.controller = Current();
    } else {
      {
        std::lock_guard lock(mu);
        ++st.heartbeat_failures;
      }
      if (r.ok() && r->status == 503 && FollowLeader(index, *r)) PollNow();
      Failed(index, "heartbeat " + url + ": " +
                        (r.ok() ? "HTTP " + std::to_string(r->status) + " " + r->body
                                : r.status().message()));
    }
    Duration next = opts.heartbeat_interval - std::min(opts.heartbeat_interval, now - sent);
    if (ack_soon && proxy.RoutesVersion() == installed && version != installed) {
      next = Duration::zero();
    }
    if (version == installed) ack_soon = false;
    ScheduleHeartbeat(next);
  }

  asio::io_context& io;
  Proxy& proxy;
  ControlPlaneOptions opts;
  Clock& clock;
  Random random;
  asio::steady_timer poll_timer;
  asio::steady_timer heartbeat_timer;
  // Kept-alive connections: a flood of new connections to the controller cannot delay the
  // heartbeats and the routes' long poll (http/pool.h).
  http::ConnectionPool pool;
  Duration backoff;
  size_t current = 0;
  uint64_t installed = 0;
  bool ack_soon = false;
  bool stopped = false;

  mutable std::mutex mu;  // guards st (read from other threads)
  ControlPlaneStatus st;
};

ControlPlane::ControlPlane(asio::io_context& io, Proxy& proxy, ControlPlaneOptions options)
    : impl_(std::make_shared<Impl>(io, proxy, std::move(options))) {}

ControlPlane::~ControlPlane() { Stop(); }

void ControlPlane::Start() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->st.controller = impl_->Current();
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
