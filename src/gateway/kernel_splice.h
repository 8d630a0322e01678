// KernelSplice: the gateway's kernel data path. A BPF sockhash (keyed by socket cookie) holds
// both sockets of each established client/backend pair, and an sk_skb stream verdict program
// (bpf/gateway_splice.bpf.c, built with clang and embedded as a libbpf skeleton) sends every
// byte one socket receives straight out of its peer: the bytes of a spliced pair never reach
// user space and never wake a worker. The worker keeps both descriptors, polled for
// half-close and reset only, and ends a pair by closing them (a closed socket leaves the
// sockhash by itself). Byte counters per endpoint and backend live in a per-CPU BPF array.
//
// The kernel queues redirected bytes for the peer's socket without a limit of its own, so a
// destination that stops reading would let its source fill the machine's memory. The
// verdict therefore pauses a side once more than 1 MiB waits for its peer (looking once per
// 256 KiB it redirects): that side's bytes stay on its socket from then on (its receive
// window closes, as on the user path), and its cookie is announced on PausedFd for the
// worker to take the direction over.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/status.h"
#include "gateway/stats.h"

namespace hafab::gateway {

class KernelSplice : public ByteCounterSource {
 public:
  // One spliced pair, as Insert returns it: each socket's cookie, and how many bytes each
  // socket had been handed for sending when the pair went into the kernel.
  struct Pair {
    uint64_t client_cookie = 0, backend_cookie = 0;
    uint64_t client_base = 0, backend_base = 0;
  };

  // Counter indices are below this (the size of the BPF counter array).
  static constexpr uint32_t kCounters = 1 << 16;

  // Loads the program and attaches it to a new sockhash.
  // Errors: Unavailable saying why (built without libbpf; no CAP_BPF/CAP_NET_ADMIN; the
  // kernel refused the program or the map).
  static Result<std::unique_ptr<KernelSplice>> Load();
  ~KernelSplice() override;
  KernelSplice(const KernelSplice&) = delete;
  KernelSplice& operator=(const KernelSplice&) = delete;

  // Splices an established pair. Bytes that arrived on either socket before the call are
  // forwarded too (the call makes the kernel look at both receive queues). From here on the
  // caller must not read from or write to either socket (but for a direction that paused,
  // once Flushed), only shut down its write side (once Flushed) and close it.
  // `endpoint_counter` and `backend_counter` name the counters the pair's bytes are added to.
  // REQUIRES: both connected; every byte the caller read from either written to the other;
  // counters < kCounters. Errors: Unavailable if a socket is no longer established (its
  // peer sent FIN or reset), the maps are full or the kernel refuses a socket: the pair is
  // left as it was and the caller may proxy it in user space. Internal if the kernel took
  // the client socket and refused the backend's: bytes may have been lost, the caller must
  // close both. Thread-safe.
  Status Insert(int client_fd, int backend_fd, uint32_t endpoint_counter, uint32_t backend_counter,
                Pair* pair);
  // Forgets the pair's state. Call before closing its sockets. Thread-safe.
  void Remove(const Pair& pair);

  // Bytes the kernel has moved from the client (from_client) or from the backend so far.
  uint64_t Moved(const Pair& pair, bool from_client) const;
  // Bytes the kernel left on the client's (from_client) or the backend's socket since that
  // side paused, for the worker to read. The kernel may report the socket's FIN to a reader
  // before it has handed over all of them (they pass through the same work queue as the
  // bytes redirected to that socket): a read that ends sooner has not reached the FIN.
  // Non-zero once the side has paused.
  uint64_t Passed(const Pair& pair, bool from_client) const;
  // Whether the kernel showed the verdict more bytes than a paused side's socket received
  // (a segment twice): the pair must be reset, its stream cannot be trusted.
  bool Broken(const Pair& pair) const;
  // Whether every byte received on one side so far has been handed to the other side's
  // socket (`dst_fd`), so that its write side may be shut down without cutting them off:
  // the kernel sends redirected bytes from a work queue, after the source already saw them.
  bool Flushed(const Pair& pair, bool from_client, int dst_fd) const;

  // A descriptor (epoll, readable) that becomes ready when sides pause.
  int PausedFd() const;
  // Appends to `cookies` the cookies of paused sides for which `mine` is true, and keeps the
  // others of open pairs for the worker they belong to; true if any are kept (that worker
  // may not have been woken: the ring was read before it looked). Thread-safe.
  bool TakePaused(const std::function<bool(uint64_t)>& mine, std::vector<uint64_t>* cookies);

  // ByteCounterSource: the bytes the kernel counted for one counter, over all CPUs.
  void Add(uint32_t counter, uint64_t* in, uint64_t* out) const override;

 private:
  struct Bpf;
  explicit KernelSplice(std::unique_ptr<Bpf> bpf);
  std::unique_ptr<Bpf> bpf_;
};

}  // namespace hafab::gateway
