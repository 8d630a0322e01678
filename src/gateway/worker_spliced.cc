// The worker's side of the kernel data path (KernelSplice): a connected pair goes into the
// kernel, which moves its bytes; the worker passes half-closes on, ends the pair on a
// reset, fencing, drain or idle timeout, exactly as for a pair it proxies itself.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>

#include "gateway/connection.h"
#include "gateway/worker.h"

namespace hafab::gateway::internal {
namespace {

// A spliced socket wakes the worker for FIN (EPOLLRDHUP) and reset (EPOLLERR, always
// reported), never for data: the kernel's redirects signal readiness on the socket, and
// the mask keeps those wake-ups out of epoll.
constexpr uint32_t kSplicedEvents = EPOLLRDHUP | EPOLLET;
constexpr int kFlushRetryMaxMs = 64;
constexpr uint8_t kTcpClose = 7;  // TCP_CLOSE (include/net/tcp_states.h)

// False once the connection is gone (reset, or closed both ways): state TCP_CLOSE.
bool Open(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state != kTcpClose;
}

}  // namespace

bool Worker::Splice(Conn* c) {
  const uint32_t endpoint_counter = c->es->pub->stats->counter();
  if (endpoint_counter >= KernelSplice::kCounters ||
      c->backend_counter >= KernelSplice::kCounters) {
    return false;  // its bytes could not be counted
  }
  Status s = shared_.kernel->Insert(c->client_fd, c->backend_fd, endpoint_counter,
                                    c->backend_counter, &c->pair);
  if (s.code() == StatusCode::kInternal) {
    spdlog::warn("gateway worker {}: {}; closing the connection", index_, s.message());
    Close(c);
    return true;
  }
  if (!s.ok()) {
    spdlog::debug("gateway worker {}: proxied in user space: {}", index_, s.message());
    return false;
  }
  c->spliced = true;
  spliced_[c->pair.client_cookie] = c;
  spliced_[c->pair.backend_cookie] = c;
  Bump(c->es->slot->spliced);
  if (!ArmSpliced(c)) return true;
  const Duration idle = shared_.options.idle_timeout;
  if (idle > Duration::zero()) next_sweep_ = std::min(next_sweep_, now_ + idle / 2);
  return true;
}

bool Worker::ArmSpliced(Conn* c) {
  for (bool client : {true, false}) {
    const Direction& from = client ? c->up : c->down;
    const Direction& to = client ? c->down : c->up;
    epoll_event ev{};
    ev.events = kSplicedEvents | (from.taken_over ? EPOLLIN : 0u) | (to.taken_over ? EPOLLOUT : 0u);
    ev.data.ptr = client ? &c->client_handle : &c->backend_handle;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, client ? c->client_fd : c->backend_fd, &ev) != 0) {
      Close(c);
      return false;
    }
  }
  return true;
}

void Worker::OnPaused() {
  std::vector<uint64_t> cookies;
  if (shared_.kernel->TakePaused([this](uint64_t cookie) { return spliced_.contains(cookie); },
                                 &cookies)) {
    for (Worker* w : shared_.workers) {
      if (w != this) w->Wake();
    }
  }
  for (uint64_t cookie : cookies) {
    auto it = spliced_.find(cookie);
    if (it == spliced_.end()) continue;
    Conn* c = it->second;
    if (shared_.kernel->Broken(c->pair)) {
      Bump(c->es->slot->spliced_reset);
      spdlog::warn(
          "gateway worker {}: the kernel repeated a segment of a spliced connection "
          "to {}; resetting it",
          index_, c->target.instance);
      Reset(c);
      continue;
    }
    MarkPaused(c, cookie == c->pair.client_cookie ? c->up : c->down);
    FinishSpliced(c);
  }
}

void Worker::Reset(Conn* c) {
  const linger reset{1, 0};
  setsockopt(c->client_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  setsockopt(c->backend_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  Close(c);
}

void Worker::MarkPaused(Conn* c, Direction& d) {
  if (d.paused) return;
  d.paused = true;
  Bump(c->es->slot->spliced_paused);
}

bool Worker::TakeOver(Conn* c, Direction& d) {
  d.taken_over = true;
  d.eof = false;  // a FIN seen meanwhile comes after the bytes still on the socket: read them
  d.buffered = true;
  d.splice_ok = false;  // splice(2) would miss what the kernel kept on the socket for us
  if (!ArmSpliced(c)) return false;
  if (!Pump(c, d, &d == &c->up)) {
    Close(c);
    return false;
  }
  return true;
}

bool Worker::EarlyEof(Conn* c, Direction& d, bool upstream) {
  d.early_eof = d.taken < shared_.kernel->Passed(c->pair, upstream);
  if (d.early_eof) RetryLater(c);
  return d.early_eof;
}

void Worker::RetryLater(Conn* c) {
  if (c->flushing) return;
  c->flushing = true;
  if (flushing_.empty()) flush_retry_ms_ = 1;
  flushing_.push_back(c);
}

void Worker::OnSplicedEvent(Conn* c, bool client_side, uint32_t events) {
  if (events & EPOLLERR) {
    Close(c);  // a reset ends the pair at once, as a failed read does
    return;
  }
  Direction& from = client_side ? c->up : c->down;
  Direction& to = client_side ? c->down : c->up;
  if (events & (EPOLLRDHUP | EPOLLHUP)) {
    if (!from.taken_over) from.eof = true;  // else its read finds the FIN after the bytes
    c->last_active = now_;
  }
  if ((from.taken_over && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) &&
       !Pump(c, from, client_side)) ||
      (to.taken_over && to.pending > 0 && (events & (EPOLLOUT | EPOLLHUP)) &&
       !Pump(c, to, !client_side))) {
    Close(c);
    return;
  }
  FinishSpliced(c);
}

void Worker::FinishSpliced(Conn* c) {
  for (Direction* d : {&c->up, &c->down}) {
    if (d->taken_over) {  // its pump passes its FIN on
      if (d->early_eof && !Pump(c, *d, d == &c->up)) {
        Close(c);
        return;
      }
      continue;
    }
    // A FIN may arrive before the worker reads that its side paused: bytes before it may
    // wait on the socket.
    if (d->eof && !d->paused && shared_.kernel->Passed(c->pair, d == &c->up) > 0) {
      MarkPaused(c, *d);
    }
    if (d->paused) {
      // The kernel keeps this direction's new bytes on its source socket; once it has handed
      // over those it had queued, the worker moves the rest.
      if (shared_.kernel->Flushed(c->pair, d == &c->up, d->dst)) {
        if (!TakeOver(c, *d)) return;
        continue;
      }
    } else if (!d->eof || d->done) {
      continue;
    }
    if (d->paused || !shared_.kernel->Flushed(c->pair, d == &c->up, d->dst)) {
      if (!Open(d->dst)) {  // reset meanwhile: those bytes will never be sent
        Close(c);
        return;
      }
      // The kernel still holds bytes that came before this FIN (shutting down now would cut
      // them off) or before it paused. Poll until its work queue has handed them over.
      RetryLater(c);
      continue;
    }
    if (!FinishDirection(*d)) {
      Close(c);
      return;
    }
  }
  if (c->up.done && c->down.done) Close(c);
}

void Worker::RetryFlushes() {
  std::vector<Conn*> pending;
  pending.swap(flushing_);
  for (Conn* c : pending) {
    c->flushing = false;
    if (c->state == Conn::State::kProxying) FinishSpliced(c);
  }
  const bool progress = flushing_.size() < pending.size();
  flush_retry_ms_ = progress ? 1 : std::min(flush_retry_ms_ * 2, kFlushRetryMaxMs);
}

// The worker never sees a spliced pair's bytes, so activity is read from the kernel's count,
// at half the idle timeout: a pair is closed between one and one and a half idle timeouts
// after its last byte, at one map lookup per direction per half timeout.
TimePoint Worker::CheckSplicedIdle(Conn* c, Duration idle) {
  const Duration half = idle / 2;
  if (now_ - c->last_active < half) return c->last_active + half;
  const uint64_t moved =
      shared_.kernel->Moved(c->pair, true) + shared_.kernel->Moved(c->pair, false);
  if (moved != c->moved_seen) {
    c->moved_seen = moved;
    c->last_active = now_;
    return now_ + half;
  }
  return c->last_active + idle;
}

}  // namespace hafab::gateway::internal
