// The gateway's event loop. No exceptions here: every failure is an errno handled in place.
#include "gateway/worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gateway/connection.h"

namespace hafab::gateway::internal {
namespace {

constexpr size_t kSpliceChunk = 1 << 16;  // one default pipe's capacity
constexpr size_t kBufferSize = 1 << 14;   // copy mode: scratch and leftover buffers
constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 64;
constexpr size_t kPipePoolMax = 128;
constexpr uint32_t kConnEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr Duration kSweepEvery = std::chrono::seconds(1);
// Out of descriptors or memory at accept: the listeners pause this long, doubling to the max
// while it lasts, instead of spinning on an error that level-triggered epoll reports again.
constexpr Duration kAcceptBackoffMin = std::chrono::milliseconds(10);
constexpr Duration kAcceptBackoffMax = std::chrono::seconds(1);

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool WouldBlock(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

}  // namespace

namespace {

void Link(EndpointState& es, Conn* c) {
  c->es = &es;
  c->prev = nullptr;
  c->next = es.head;
  if (es.head) es.head->prev = c;
  es.head = c;
}

void Unlink(Conn* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->es->head == c) c->es->head = c->next;
  c->prev = c->next = nullptr;
}

}  // namespace

Listener::~Listener() {
  if (fd >= 0) close(fd);
}

Worker::Worker(int index, Shared& shared, size_t connection_limit)
    : index_(index),
      shared_(shared),
      limit_(connection_limit),
      clock_(*shared.clock),
      wake_handle_{kTagWake},
      paused_handle_{kTagPaused} {}

Worker::~Worker() {
  for (auto& [listen, es] : endpoints_) {
    for (Conn* c = es->head; c;) {
      Conn* n = c->next;
      Close(c);
      c = n;
    }
  }
  for (Conn* c : graveyard_) delete c;
  for (Pipe& p : pipe_pool_) {
    close(p.r);
    close(p.w);
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Status Worker::Init() {
  scratch_.reset(new char[kBufferSize]);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::Internal(std::string("epoll_create1: ") + strerror(errno));
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::Internal(std::string("eventfd: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &wake_handle_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return Status::Internal(std::string("epoll_ctl: ") + strerror(errno));
  }
  if (shared_.kernel) {  // every worker hears of every pause and takes its own
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = &paused_handle_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, shared_.kernel->PausedFd(), &ev) != 0) {
      return Status::Internal(std::string("epoll_ctl: ") + strerror(errno));
    }
  }
  return Status::Ok();
}

void Worker::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means a wake-up is already pending
}

void Worker::Run() {
  now_ = clock_.Now();
  next_sweep_ = now_ + kSweepEvery;
  lease_ok_ = now_ < FromTicks(shared_.lease_deadline.load(std::memory_order_acquire));
  ApplySnapshot();
  epoll_event events[kMaxEvents];
  for (;;) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, TimeoutMillis());
    if (n < 0 && errno != EINTR) {
      spdlog::error("gateway worker {}: epoll_wait: {}", index_, strerror(errno));
      n = 0;
    }
    now_ = clock_.Now();
    // Before any event: a connection accepted in this round must see the lease as of now_.
    CheckLease();
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      auto* tag = static_cast<uint8_t*>(events[i].data.ptr);
      switch (*tag) {
        case kTagWake: {
          uint64_t v;
          ssize_t r = read(wake_fd_, &v, sizeof v);
          (void)r;
          woken = true;
          break;
        }
        case kTagPaused:
          OnPaused();
          break;
        case kTagListener: {
          auto* h = reinterpret_cast<TaggedHandle*>(tag);
          OnAccept(*static_cast<EndpointState*>(h->owner));
          break;
        }
        case kTagClient: {
          auto* h = reinterpret_cast<TaggedHandle*>(tag);
          OnClientEvent(static_cast<Conn*>(h->owner), events[i].events);
          break;
        }
        case kTagBackend: {
          auto* h = reinterpret_cast<TaggedHandle*>(tag);
          OnBackendEvent(static_cast<Conn*>(h->owner), events[i].events);
          break;
        }
      }
    }
    ProcessReroutes();
    MaybeResumeListeners();
    if (woken) {
      if (shared_.kernel) OnPaused();
      if (shared_.draining.load(std::memory_order_acquire) && !draining_) BeginDrain();
      ApplySnapshot();
    }
    if (now_ >= next_sweep_) Sweep();
    if (!flushing_.empty()) RetryFlushes();  // last: it drops the pairs closed meanwhile
    for (Conn* c : graveyard_) delete c;
    graveyard_.clear();
    if (draining_ && (conns_ == 0 || now_ >= drain_deadline_)) break;
  }
  // Drain over: whatever is left is cut.
  for (auto& [listen, es] : endpoints_) {
    while (es->head) Close(es->head);
  }
  for (Conn* c : graveyard_) delete c;
  graveyard_.clear();
}

int Worker::TimeoutMillis() const {
  TimePoint next = next_sweep_;
  if (lease_ok_) {
    next = std::min(next, FromTicks(shared_.lease_deadline.load(std::memory_order_acquire)));
  }
  if (draining_) next = std::min(next, drain_deadline_);
  if (paused_ && accept_resume_ > now_) next = std::min(next, accept_resume_);
  if (next <= now_) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now_).count() + 1;
  // Pending flushes are polled by real time, not the clock: the kernel's work queue is.
  if (!flushing_.empty()) ms = std::min<int64_t>(ms, flush_retry_ms_);
  return static_cast<int>(std::min<int64_t>(ms, 1000));
}

void Worker::ApplySnapshot() {
  std::shared_ptr<const Snapshot> s = shared_.snapshot.Load();
  if (!s || s == snap_) return;
  std::shared_ptr<const Snapshot> old = std::move(snap_);  // keep alive until remapped
  snap_ = s;
  ++generation_;
  std::map<std::string, std::unique_ptr<EndpointState>> next;
  for (const PublishedEndpoint& pub : s->endpoints) {
    const Endpoint* ep = pub.endpoint;
    std::unique_ptr<EndpointState> es;
    if (auto it = endpoints_.find(ep->listen); it != endpoints_.end()) {
      es = std::move(it->second);
      endpoints_.erase(it);
    } else {
      es = std::make_unique<EndpointState>();
      es->listen = ep->listen;
    }
    es->ep = ep;
    es->pub = &pub;
    es->slot = &pub.stats->slot(index_);
    std::shared_ptr<Listener> want = pub.listeners.empty() ? nullptr : pub.listeners[index_];
    if (want != es->listener) {
      SetListening(*es, false);
      es->listener = std::move(want);
    }
    if (!draining_) SetListening(*es, true);
    RefreshConnections(*es);
    next[ep->listen] = std::move(es);
  }
  // Endpoints that left the table: their listeners close, their connections end.
  for (auto& [listen, es] : endpoints_) {
    SetListening(*es, false);
    while (es->head) CloseFenced(es->head);
  }
  endpoints_ = std::move(next);
  ProcessReroutes();
  applied_version_.store(s->table->version(), std::memory_order_release);
}

// Re-resolves each connection's backend in the new table; active-passive connections that
// no longer go to the current primary (or to a primary handing over) are cut (fencing),
// waiting ones are retried.
void Worker::RefreshConnections(EndpointState& es) {
  const Endpoint& ep = *es.ep;
  const bool ap = ep.mode == RoutingMode::kActivePassive;
  for (Conn* c = es.head; c;) {
    Conn* n = c->next;
    if (c->state == Conn::State::kWaiting) {
      if (!c->rerouting) {
        c->rerouting = true;
        reroute_.push_back(c);
      }
    } else if (ap && (c->state == Conn::State::kConnecting || c->state == Conn::State::kProxying)) {
      const bool keep = lease_ok_ && ep.Keeps(c->target);
      if (!keep) {
        if (c->state == Conn::State::kConnecting) {
          AbortConnect(c);
        } else {
          CloseFenced(c);
        }
      }
    }
    c = n;
  }
}

void Worker::CheckLease() {
  const bool ok = now_ < FromTicks(shared_.lease_deadline.load(std::memory_order_acquire));
  if (ok == lease_ok_) return;
  lease_ok_ = ok;
  if (!ok) spdlog::warn("gateway worker {}: lease lost, active-passive routing held", index_);
  for (auto& [listen, es] : endpoints_) {
    if (es->ep->mode == RoutingMode::kActivePassive) RefreshConnections(*es);
  }
  ProcessReroutes();
}

void Worker::BeginDrain() {
  draining_ = true;
  drain_deadline_ = FromTicks(shared_.drain_deadline.load(std::memory_order_acquire));
  for (auto& [listen, es] : endpoints_) {
    SetListening(*es, false);
    es->listener.reset();
    for (Conn* c = es->head; c;) {
      Conn* n = c->next;
      if (c->state == Conn::State::kWaiting) Close(c);
      c = n;
    }
  }
}

void Worker::Sweep() {
  TimePoint next = now_ + kSweepEvery;
  const Duration idle = shared_.options.idle_timeout;
  for (auto& [listen, es] : endpoints_) {
    for (Conn* c = es->head; c;) {
      Conn* n = c->next;
      if (c->state == Conn::State::kWaiting) {
        if (now_ >= c->wait_deadline) {
          Bump(es->slot->wait_timeouts);
          Close(c);
        } else {
          next = std::min(next, c->wait_deadline);
        }
      } else if (c->state == Conn::State::kProxying && idle > Duration::zero()) {
        const TimePoint check = c->spliced ? CheckSplicedIdle(c, idle) : c->last_active + idle;
        if (now_ - c->last_active >= idle) {
          Bump(es->slot->idle_closed);
          Close(c);
        } else {
          next = std::min(next, check);
        }
      }
      c = n;
    }
  }
  next_sweep_ = next;
}

void Worker::SetListening(EndpointState& es, bool on) {
  if (!es.listener) {
    es.listening = false;
    return;
  }
  if (on == es.listening) return;
  if (on) {
    epoll_event ev{};
    ev.events = paused_ ? 0u : static_cast<uint32_t>(EPOLLIN);
    ev.data.ptr = &es.handle;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, es.listener->fd, &ev) != 0) {
      spdlog::error("gateway: cannot poll listener {}: {}", es.listen, strerror(errno));
      return;
    }
  } else {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, es.listener->fd, nullptr);
  }
  es.listening = on;
}

// Backpressure: beyond the connection limit the listeners stay registered with no events,
// so new clients wait in the kernel's accept queue until connections close.
void Worker::PauseListeners(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  for (auto& [listen, es] : endpoints_) {
    if (!es->listening) continue;
    epoll_event ev{};
    ev.events = paused ? 0u : static_cast<uint32_t>(EPOLLIN);
    ev.data.ptr = &es->handle;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, es->listener->fd, &ev);
  }
}

void Worker::OnAccept(EndpointState& es) {
  if (!es.listening || paused_) return;
  for (int i = 0; i < kAcceptBatch; ++i) {
    if (limit_ > 0 && conns_ >= limit_) {
      PauseListeners(true);
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(es.listener->fd, reinterpret_cast<sockaddr*>(&peer), &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (accept_backoff_ == Duration::zero()) {
          spdlog::warn("gateway: accept on {}: {}; pausing the listeners ({} connections open)",
                       es.listen, strerror(errno), conns_);
        }
        accept_backoff_ = std::clamp(accept_backoff_ * 2, kAcceptBackoffMin, kAcceptBackoffMax);
        accept_resume_ = now_ + accept_backoff_;
        PauseListeners(true);
        return;
      }
      if (!WouldBlock(errno)) {
        spdlog::warn("gateway: accept on {}: {}", es.listen, strerror(errno));
      }
      return;
    }
    accept_backoff_ = Duration::zero();
    if (!es.ep->allow.Allows(reinterpret_cast<sockaddr*>(&peer))) {
      Bump(es.slot->acl_denied);
      close(fd);
      continue;
    }
    SetNoDelay(fd);
    Conn* c = new Conn;
    c->client_fd = fd;
    Link(es, c);
    ++conns_;
    active_.fetch_add(1, std::memory_order_relaxed);
    Bump(es.slot->active);
    Bump(es.slot->total);
    epoll_event ev{};
    ev.events = kConnEvents;
    ev.data.ptr = &c->client_handle;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Close(c);
      continue;
    }
    Route(c);
  }
}

void Worker::Route(Conn* c) {
  const Endpoint& ep = *c->es->ep;
  if (c->tried_generation != generation_) {
    c->tried.clear();
    c->tried_generation = generation_;
  }
  auto tried = [&](int i) {
    return std::find(c->tried.begin(), c->tried.end(), i) != c->tried.end();
  };
  if (ep.mode == RoutingMode::kActivePassive) {
    const int p = lease_ok_ ? ep.PrimaryIndex() : -1;
    if (p < 0 || tried(p)) {
      Wait(c);
    } else {
      StartConnect(c, p);
    }
    return;
  }
  // Least connections (across all threads) among ready, non-busy backends not yet tried.
  const size_t n = ep.backends.size();
  int best = -1;
  uint64_t best_active = 0;
  const size_t start = n ? rotation_++ % n : 0;
  for (size_t k = 0; k < n; ++k) {
    const int i = static_cast<int>((start + k) % n);
    if (!ep.Routable(i) || tried(i)) continue;
    const uint64_t a = c->es->pub->backend_stats[i]->Active();
    if (best < 0 || a < best_active) {
      best = i;
      best_active = a;
    }
  }
  if (best < 0) {
    Bump(c->es->slot->no_backend);
    Close(c);
    return;
  }
  StartConnect(c, best);
}

void Worker::StartConnect(Conn* c, int i) {
  const Backend& b = c->es->ep->backends[i];
  c->tried.push_back(i);
  c->target = b;
  c->bslot = &c->es->pub->backend_stats[i]->slot(index_);
  c->backend_counter = c->es->pub->backend_stats[i]->counter();
  Bump(c->bslot->active);
  Bump(c->bslot->total);
  c->state = Conn::State::kConnecting;
  int fd = socket(b.address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ConnectFailed(c);
    return;
  }
  SetNoDelay(fd);
  int r = connect(fd, b.address.get(), b.address.length);
  if (r != 0 && errno != EINPROGRESS) {
    close(fd);
    ConnectFailed(c);
    return;
  }
  c->backend_fd = fd;
  epoll_event ev{};
  ev.events = kConnEvents;
  ev.data.ptr = &c->backend_handle;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    c->backend_fd = -1;
    ConnectFailed(c);
    return;
  }
  if (r == 0) OnConnected(c);
}

// The backend refused or could not be reached: count it and route again after this batch
// (never in the middle of it, so no stale event can be taken for the new socket's).
void Worker::ConnectFailed(Conn* c) {
  Bump(c->bslot->connect_errors);
  Bump(c->es->slot->connect_errors);
  Drop(c->bslot->active);
  c->bslot = nullptr;
  if (c->backend_fd >= 0) {
    close(c->backend_fd);
    c->backend_fd = -1;
  }
  c->state = Conn::State::kWaiting;
  if (!c->rerouting) {
    c->rerouting = true;
    reroute_.push_back(c);
  }
}

// A connect under way to a backend that lost its right to be routed to (a new table fences
// it off, or the lease ran out): drop it and route again. It did not fail, so the target is
// not "tried": a lease regained in the same route generation routes to it again.
void Worker::AbortConnect(Conn* c) {
  if (!c->tried.empty()) c->tried.pop_back();
  Drop(c->bslot->active);
  c->bslot = nullptr;
  close(c->backend_fd);
  c->backend_fd = -1;
  c->state = Conn::State::kWaiting;
  if (!c->rerouting) {
    c->rerouting = true;
    reroute_.push_back(c);
  }
}

void Worker::ProcessReroutes() {
  while (!reroute_.empty()) {
    std::vector<Conn*> batch;
    batch.swap(reroute_);
    for (Conn* c : batch) {
      c->rerouting = false;
      if (c->state != Conn::State::kWaiting) continue;  // closed meanwhile
      if (draining_) {
        Close(c);
        continue;
      }
      Route(c);
    }
  }
}

void Worker::Wait(Conn* c) {
  if (draining_) {
    Close(c);
    return;
  }
  c->state = Conn::State::kWaiting;
  if (!c->waited) {
    c->waited = true;
    c->wait_start = now_;
    c->wait_deadline = now_ + shared_.options.primary_wait;
    Bump(c->es->slot->waits);
  }
  if (now_ >= c->wait_deadline) {
    Bump(c->es->slot->wait_timeouts);
    Close(c);
    return;
  }
  next_sweep_ = std::min(next_sweep_, c->wait_deadline);
}

void Worker::EndWait(Conn* c) {
  if (c->waited && !c->wait_ended) {
    c->wait_ended = true;
    Bump(c->es->slot->wait_ns,
         std::chrono::duration_cast<std::chrono::nanoseconds>(now_ - c->wait_start).count());
  }
}

void Worker::OnConnected(Conn* c) {
  EndWait(c);
  c->state = Conn::State::kProxying;
  c->last_active = now_;
  c->up.src = c->client_fd;
  c->up.dst = c->backend_fd;
  c->down.src = c->backend_fd;
  c->down.dst = c->client_fd;
  c->up.splice_ok = c->down.splice_ok = shared_.options.splice;
  if (shared_.options.idle_timeout > Duration::zero()) {
    next_sweep_ = std::min(next_sweep_, now_ + shared_.options.idle_timeout);
  }
  if (shared_.kernel && shared_.options.splice_after_turns == 0 && Splice(c)) return;
  PumpConn(c);
}

bool Worker::MaySplice(const Conn* c) const {
  const int after = shared_.options.splice_after_turns;
  return shared_.kernel && !c->spliced && after > 0 && c->turns >= after &&
         c->state == Conn::State::kProxying && c->up.pending == 0 && c->down.pending == 0 &&
         c->up.buffered && c->down.buffered && !c->up.eof && !c->down.eof;
}

void Worker::OnClientEvent(Conn* c, uint32_t events) {
  switch (c->state) {
    case Conn::State::kProxying:
      if (c->spliced) {
        OnSplicedEvent(c, /*client_side=*/true, events);
      } else {
        PumpOnEvent(c, /*client_side=*/true, events);
      }
      break;
    case Conn::State::kWaiting:
    case Conn::State::kConnecting:
      // Only a reset ends a client that is not yet proxied: a FIN may be a half-close
      // after a request that the backend must still receive.
      if (events & EPOLLERR) Close(c);
      break;
    case Conn::State::kClosed:
      break;
  }
}

void Worker::OnBackendEvent(Conn* c, uint32_t events) {
  if (c->state == Conn::State::kProxying) {
    if (c->spliced) {
      OnSplicedEvent(c, /*client_side=*/false, events);
    } else {
      PumpOnEvent(c, /*client_side=*/false, events);
    }
    return;
  }
  if (c->state != Conn::State::kConnecting) return;
  // A failed connect always reports EPOLLERR; writable without it means connected.
  if (events & (EPOLLERR | EPOLLHUP)) {
    ConnectFailed(c);
    return;
  }
  if (events & EPOLLOUT) OnConnected(c);
}

// Pumps only what an event on one socket can have unblocked: the direction it feeds
// (readable), and the direction it drains if bytes are held for it (writable). A direction
// with nothing pending stopped on its source's EAGAIN, whose next edge will wake it.
void Worker::PumpOnEvent(Conn* c, bool client_side, uint32_t events) {
  Direction& from = client_side ? c->up : c->down;
  Direction& to = client_side ? c->down : c->up;
  bool ok = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ok = Pump(c, from, client_side);
  if (ok && (to.pending > 0 || (events & (EPOLLHUP | EPOLLERR)))) ok = Pump(c, to, !client_side);
  // A reset socket takes nothing more: the direction into it is over (what it held is lost, as
  // the reset says). Its error is reported once, and a pump that did not write to it (a read
  // after its FIN returns EOF, not the reset; a source with nothing to send) would otherwise
  // leave the pair waiting for an edge that never comes.
  if (ok && (events & EPOLLERR)) to.done = true;
  if (!ok) {
    Close(c);
    return;
  }
  if (c->up.done && c->down.done) {
    Close(c);
  } else if (MaySplice(c)) {
    Splice(c);
  }
}

void Worker::PumpConn(Conn* c) {
  if (!Pump(c, c->up, true) || !Pump(c, c->down, false)) {
    Close(c);
    return;
  }
  if (c->up.done && c->down.done) {
    Close(c);
  } else if (MaySplice(c)) {
    Splice(c);
  }
}

bool Worker::Pump(Conn* c, Direction& d, bool upstream) {
  if (d.done) return true;
  if (!d.buffered) return PumpSplice(c, d, upstream);
  return PumpBuffer(c, d, upstream);
}

void Worker::Account(Conn* c, bool upstream, size_t n) {
  c->last_active = now_;
  if (c->turns == 0 || c->last_up != upstream) {
    c->last_up = upstream;
    if (c->turns < UINT8_MAX) ++c->turns;
  }
  if (upstream) {
    Bump(c->es->slot->bytes_in, n);
    Bump(c->bslot->bytes_in, n);
  } else {
    Bump(c->es->slot->bytes_out, n);
    Bump(c->bslot->bytes_out, n);
  }
}

// src has sent FIN and everything is written: pass the half-close on.
bool Worker::FinishDirection(Direction& d) {
  d.done = true;
  if (shutdown(d.dst, SHUT_WR) != 0 && errno != ENOTCONN) return false;
  return true;
}

bool Worker::PumpSplice(Conn* c, Direction& d, bool upstream) {
  for (;;) {
    if (d.pending > 0) {
      ssize_t n =
          splice(d.pipe_r, nullptr, d.dst, nullptr, d.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.pending -= n;
        Account(c, upstream, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && WouldBlock(errno)) return true;  // dst full: its EPOLLOUT resumes us
      return false;                                 // EPIPE, ECONNRESET, ...
    }
    if (d.eof) return FinishDirection(d);
    if (d.pipe_r < 0) {
      Pipe p;
      if (!GetPipe(&p)) {
        d.buffered = true;  // out of descriptors for pipes: copy instead
        d.splice_ok = false;
        return PumpBuffer(c, d, upstream);
      }
      d.pipe_r = p.r;
      d.pipe_w = p.w;
    }
    ssize_t n =
        splice(d.src, nullptr, d.pipe_w, nullptr, kSpliceChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d.pending = n;
      continue;
    }
    if (n == 0) {
      d.eof = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (WouldBlock(errno)) return true;  // the pipe is empty, so src has nothing
    if (errno == EINVAL) {               // this kernel cannot splice these: copy instead
      d.buffered = true;
      d.splice_ok = false;
      return PumpBuffer(c, d, upstream);
    }
    return false;
  }
}

// Copy mode, used first on every connection: small exchanges (requests, replies) cost one
// read and one send through the worker's scratch buffer, with no pipe and no per-connection
// buffer. A read that fills the buffer means a bulk transfer: the direction moves to splice.
bool Worker::PumpBuffer(Conn* c, Direction& d, bool upstream) {
  for (;;) {
    if (d.pending > 0) {  // the rest of a partial send, kept in d.buf
      ssize_t n = send(d.dst, d.buf.get() + d.off, d.pending, MSG_NOSIGNAL);
      if (n > 0) {
        d.off += n;
        d.pending -= n;
        Account(c, upstream, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && WouldBlock(errno)) return true;
      return false;
    }
    if (d.eof) return FinishDirection(d);
    if (!d.buffered) return PumpSplice(c, d, upstream);
    ssize_t n = read(d.src, scratch_.get(), kBufferSize);
    if (n == 0) {
      if (d.taken_over && EarlyEof(c, d, upstream)) return true;
      d.eof = true;
      continue;
    }
    if (n > 0 && d.taken_over) d.taken += n;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (WouldBlock(errno)) return true;
      return false;
    }
    ssize_t w = send(d.dst, scratch_.get(), n, MSG_NOSIGNAL);
    if (w < 0) {
      if (!WouldBlock(errno) && errno != EINTR) return false;
      w = 0;
    }
    if (w > 0) Account(c, upstream, w);
    if (w < n) {
      if (!d.buf) d.buf.reset(new char[kBufferSize]);
      std::memcpy(d.buf.get(), scratch_.get() + w, n - w);
      d.off = 0;
      d.pending = n - w;
      return true;  // dst is full: its EPOLLOUT resumes us
    }
    if (static_cast<size_t>(n) == kBufferSize && d.splice_ok) d.buffered = false;
  }
}

bool Worker::GetPipe(Pipe* p) {
  if (!pipe_pool_.empty()) {
    *p = pipe_pool_.back();
    pipe_pool_.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  p->r = fds[0];
  p->w = fds[1];
  return true;
}

void Worker::PutPipe(Pipe* p, bool empty) {
  if (p->r < 0) return;
  if (empty && pipe_pool_.size() < kPipePoolMax) {
    pipe_pool_.push_back(*p);
  } else {
    close(p->r);
    close(p->w);
  }
  p->r = p->w = -1;
}

void Worker::CloseFenced(Conn* c) {
  if (c->state == Conn::State::kProxying || c->state == Conn::State::kConnecting) {
    Bump(c->es->slot->fenced);
    if (c->bslot) Bump(c->bslot->fenced);
  }
  Close(c);
}

void Worker::Close(Conn* c) {
  if (c->state == Conn::State::kClosed) return;
  EndWait(c);
  if (c->bslot) {
    Drop(c->bslot->active);
    c->bslot = nullptr;
  }
  Drop(c->es->slot->active);
  --conns_;
  active_.fetch_sub(1, std::memory_order_relaxed);
  // The sockets leave the sockhash as they close; their state in the kernel goes first.
  if (c->spliced) {
    shared_.kernel->Remove(c->pair);
    spliced_.erase(c->pair.client_cookie);
    spliced_.erase(c->pair.backend_cookie);
  }
  close(c->client_fd);
  if (c->backend_fd >= 0) close(c->backend_fd);
  for (Direction* d : {&c->up, &c->down}) {
    Pipe p{d->pipe_r, d->pipe_w};
    PutPipe(&p, d->pending == 0);
    d->pipe_r = d->pipe_w = -1;
  }
  Unlink(c);
  c->state = Conn::State::kClosed;
  graveyard_.push_back(c);
  MaybeResumeListeners();
}

void Worker::MaybeResumeListeners() {
  if (paused_ && (limit_ == 0 || conns_ < limit_) && now_ >= accept_resume_) {
    PauseListeners(false);
  }
}

}  // namespace hafab::gateway::internal
