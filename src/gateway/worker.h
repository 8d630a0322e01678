// Internal to the gateway's data path: what Proxy publishes to its threads, and one
// event-loop thread (Worker). Not for use outside src/gateway.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/kernel_splice.h"
#include "gateway/proxy.h"
#include "gateway/route_table.h"
#include "gateway/stats.h"

namespace hafab::gateway::internal {

// A listening socket owned jointly by Proxy and the one worker that polls it; closed
// when the last holder lets go (so a worker never sees a reused descriptor number).
struct Listener {
  explicit Listener(int fd) : fd(fd) {}
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int fd;
};

struct PublishedEndpoint {
  const Endpoint* endpoint = nullptr;
  std::shared_ptr<EndpointStats> stats;
  std::vector<std::shared_ptr<BackendStats>> backend_stats;  // parallel to endpoint->backends
  std::vector<std::shared_ptr<Listener>> listeners;          // one per thread, or none
};

// What the workers route from: a table plus everything resolved off the data path.
struct Snapshot {
  std::shared_ptr<const RouteTable> table;
  std::vector<PublishedEndpoint> endpoints;  // parallel to table->endpoints()
};

inline int64_t ToTicks(TimePoint t) { return t.time_since_epoch().count(); }
inline TimePoint FromTicks(int64_t t) { return TimePoint(Duration(t)); }

// The snapshot Proxy publishes, read by each worker when woken (not per event). A mutex,
// not std::atomic<shared_ptr>: libstdc++ 12's atomic shared_ptr releases its readers' lock
// with relaxed order, a race by the memory model that TSan reports.
class SnapshotSlot {
 public:
  std::shared_ptr<const Snapshot> Load() const {
    std::lock_guard lock(mu_);
    return value_;
  }
  void Store(std::shared_ptr<const Snapshot> next) {
    std::lock_guard lock(mu_);
    value_.swap(next);  // the previous one is released after the lock, by `next`
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> value_;
};

// State shared by Proxy (writer) and its workers (readers): atomics, and the snapshot slot.
struct Shared {
  ProxyOptions options;
  Clock* clock = nullptr;
  SnapshotSlot snapshot;
  std::atomic<int64_t> lease_deadline{ToTicks(TimePoint::max())};
  std::atomic<bool> draining{false};
  std::atomic<int64_t> drain_deadline{ToTicks(TimePoint::max())};
  // The kernel data path; null: every connection is proxied in user space.
  KernelSplice* kernel = nullptr;
  std::vector<Worker*> workers;  // all of them, set before they run
};

struct Conn;
struct EndpointState;
struct Direction;

// One data-path thread: its own epoll, its own listener per endpoint, its own connections.
// Everything but Wake, applied_version and active runs on the worker's thread only.
class Worker {
 public:
  Worker(int index, Shared& shared, size_t connection_limit);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Errors: Internal if epoll or the wake-up eventfd cannot be created.
  Status Init();
  // The event loop; returns when a drain has finished. Runs on the worker's thread.
  void Run();
  // Makes the loop look at the shared state (table, lease, drain) now. Thread-safe.
  void Wake();

  uint64_t applied_version() const { return applied_version_.load(std::memory_order_acquire); }
  uint64_t active() const { return active_.load(std::memory_order_relaxed); }

 private:
  struct Pipe {
    int r = -1, w = -1;
  };

  void ApplySnapshot();
  void RefreshConnections(EndpointState& es);
  void CheckLease();
  void BeginDrain();
  void Sweep();
  int TimeoutMillis() const;

  void SetListening(EndpointState& es, bool on);
  void PauseListeners(bool paused);
  void OnAccept(EndpointState& es);

  void Route(Conn* c);
  void StartConnect(Conn* c, int backend_index);
  void ConnectFailed(Conn* c);
  void AbortConnect(Conn* c);
  void OnConnected(Conn* c);
  void Wait(Conn* c);
  void EndWait(Conn* c);
  void ProcessReroutes();

  void OnClientEvent(Conn* c, uint32_t events);
  void OnBackendEvent(Conn* c, uint32_t events);
  void PumpConn(Conn* c);
  void PumpOnEvent(Conn* c, bool client_side, uint32_t events);
  bool Pump(Conn* c, Direction& d, bool upstream);
  bool PumpSplice(Conn* c, Direction& d, bool upstream);
  bool PumpBuffer(Conn* c, Direction& d, bool upstream);
  void Account(Conn* c, bool upstream, size_t n);
  bool FinishDirection(Direction& d);
  void Close(Conn* c);
  void CloseFenced(Conn* c);
  // Listens again once under the connection limit and past an accept backoff.
  void MaybeResumeListeners();

  // The kernel data path (worker_spliced.cc).
  // Whether a pair proxied in user space is due for the kernel (splice_after_turns).
  bool MaySplice(const Conn* c) const;
  // Hands a connected pair to the kernel; false if it stays in user space.
  bool Splice(Conn* c);
  void OnSplicedEvent(Conn* c, bool client_side, uint32_t events);
  // Passes on each FIN the kernel has flushed the bytes before; closes the pair when done.
  void FinishSpliced(Conn* c);
  void RetryFlushes();
  // Takes over the directions the kernel paused (KernelSplice::PausedFd) in this worker's
  // pairs, and wakes the others if it read theirs.
  void OnPaused();
  // Notes that the kernel paused this direction (counted once).
  void MarkPaused(Conn* c, Direction& d);
  // Closes both sockets with a reset (KernelSplice::Broken).
  void Reset(Conn* c);
  // Moves a paused direction in user space from now on; false if the pair was closed.
  bool TakeOver(Conn* c, Direction& d);
  // Whether a read of a direction taken over found its FIN before every byte the kernel
  // left on its socket: if so the direction is read again (on EPOLLIN, or by RetryFlushes).
  bool EarlyEof(Conn* c, Direction& d, bool upstream);
  // Has RetryFlushes look at the pair again, sooner at first, then less often.
  void RetryLater(Conn* c);
  // Registers a spliced pair's sockets for FIN and reset, and for the data of the
  // directions taken over; false (the pair closed) if the kernel refuses.
  bool ArmSpliced(Conn* c);
  // Idle check of a spliced pair (its bytes never pass the worker); the time of its next.
  TimePoint CheckSplicedIdle(Conn* c, Duration idle);

  bool GetPipe(Pipe* p);
  void PutPipe(Pipe* p, bool empty);

  const int index_;
  Shared& shared_;
  const size_t limit_;  // 0: none
  Clock& clock_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  struct WakeHandle {
    uint8_t tag;
  } wake_handle_, paused_handle_;

  std::shared_ptr<const Snapshot> snap_;
  uint64_t generation_ = 0;  // bumped per snapshot applied: resets connect retries
  std::map<std::string, std::unique_ptr<EndpointState>> endpoints_;  // by listen
  std::vector<Conn*> graveyard_;  // closed in this batch, freed after it
  std::vector<Conn*> reroute_;    // to route again after this batch
  std::vector<Conn*> flushing_;   // spliced pairs with a FIN waiting for the kernel's bytes
  std::unordered_map<uint64_t, Conn*> spliced_;  // by each socket's cookie
  int flush_retry_ms_ = 1;                       // doubles while flushes stay pending
  std::vector<Pipe> pipe_pool_;
  std::unique_ptr<char[]> scratch_;  // copy mode reads land here
  size_t conns_ = 0;
  bool paused_ = false;        // listeners not polled: at the connection limit or backing off
  Duration accept_backoff_{};  // zero: the last accept did not run out of descriptors
  TimePoint accept_resume_ = TimePoint::min();
  bool lease_ok_ = true;
  bool draining_ = false;
  TimePoint now_{};
  TimePoint next_sweep_{};
  TimePoint drain_deadline_ = TimePoint::max();
  uint64_t rotation_ = 0;  // tie-breaker for least-connections

  std::atomic<uint64_t> applied_version_{0};
  std::atomic<uint64_t> active_{0};
};

}  // namespace hafab::gateway::internal
