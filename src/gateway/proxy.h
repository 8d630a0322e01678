// Proxy: the gateway's data path. N event-loop threads, each with its own epoll and its
// own SO_REUSEPORT listener per endpoint, forwarding bytes with splice(2) between
// non-blocking sockets. It routes from the RouteTable last given to Install; the control
// plane (ControlPlane, or a static file) installs tables and renews the lease without
// ever blocking a data-path thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/route_table.h"
#include "gateway/stats.h"

namespace hafab::gateway {

class KernelSplice;

// Where the bytes of an established connection are moved.
enum class DataPath {
  kAuto,    // the kernel if it can be loaded, else user space (with one log line saying why)
  kKernel,  // the kernel (BPF sockmap, KernelSplice); Proxy::Start fails if it cannot load
  kUser,    // user space: epoll and splice(2) (or read/write) in the worker threads
};
const char* DataPathName(DataPath p);
// "auto", "kernel" or "user". Errors: InvalidArgument otherwise.
Result<DataPath> ParseDataPath(const std::string& text);

struct ProxyOptions {
  int threads = 0;  // 0: one per core
  // How long a new active-passive connection waits for a routable primary.
  Duration primary_wait = std::chrono::seconds(5);
  // A proxied connection with no bytes in either direction for this long is closed.
  Duration idle_timeout = std::chrono::seconds(60);
  // Open client connections beyond which the gateway stops accepting (backpressure:
  // clients queue in the kernel backlog). Split evenly across threads. 0: no limit.
  size_t max_connections = 0;
  DataPath data_path = DataPath::kUser;
  // User-space path: splice(2) through pipes; false forces read/write through a buffer
  // (for measurement).
  bool splice = true;
  // Kernel path: a connection is handed to the kernel once its bytes have changed direction
  // this many times (counting the first bytes as one), with nothing held in user space and
  // neither direction moving bulk through splice(2): 3 is a request, its answer and the next
  // request. Connections of one exchange and bulk transfers stay in user space, where they
  // are cheaper (bench/RESULTS.md); 0 hands every pair over as soon as it is connected.
  int splice_after_turns = 3;
  int listen_backlog = 4096;
  Clock* clock = nullptr;  // nullptr: RealClock()
};

namespace internal {
struct Shared;
class Worker;
}  // namespace internal

class Proxy {
 public:
  // Starts the threads with an empty table (no listeners). Errors: Internal if epoll or
  // threads cannot be created; Unavailable if options.data_path is kKernel and the kernel
  // data path cannot be loaded (the message says why).
  static Result<std::unique_ptr<Proxy>> Start(ProxyOptions options);
  // Drains with a zero deadline if Drain was not called.
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Makes `table` the one new connections are routed by: opens listeners for endpoints
  // that are new (by `listen`), closes those of endpoints that left, closes connections
  // that the table fences off (active-passive: not to the current primary), and retries
  // connections waiting for a primary. Never blocks the data path (the table is swapped
  // atomically; each thread picks it up at its next wake-up).
  // Errors: Unavailable naming each endpoint whose listener could not be opened (the rest
  // of the table is installed; binding is retried at the next Install).
  // Thread-safe (calls are serialised).
  Status Install(std::shared_ptr<const RouteTable> table);

  // Active-passive endpoints are routed only while the clock is before `deadline` (the
  // gateway's lease). TimePoint::max() (the default) means no lease (static mode).
  // Thread-safe.
  void SetLeaseDeadline(TimePoint deadline);

  // Whether active-passive endpoints may be routed now (the lease has not run out).
  bool LeaseValid() const;

  // The version of the table that every thread routes from (the lowest among them); 0
  // before the first table. This is what the heartbeat acknowledges. Thread-safe.
  uint64_t RoutesVersion() const;
  // The table last installed (possibly not yet picked up by every thread). Thread-safe.
  std::shared_ptr<const RouteTable> table() const;

  // The port actually bound for an endpoint's `listen` ("127.0.0.1:0" gets a free port);
  // nullopt if that endpoint has no listener. Thread-safe.
  std::optional<uint16_t> BoundPort(const std::string& listen) const;

  // Stops accepting, closes connections still waiting for a primary, lets proxied
  // connections finish until `deadline` passes, then closes the rest and joins the threads.
  // Blocks until done. Idempotent.
  void Drain(Duration deadline);

  StatsRegistry& stats() { return *stats_; }
  // kKernel or kUser: the data path in use (established connections that the kernel refuses,
  // e.g. a client that half-closed before the backend answered, are still proxied in user
  // space on the kernel path).
  DataPath data_path() const { return kernel_ ? DataPath::kKernel : DataPath::kUser; }
  int threads() const { return static_cast<int>(workers_.size()); }
  // Client connections open now, across threads.
  uint64_t ActiveConnections() const;

 private:
  explicit Proxy(ProxyOptions options);
  void WakeAll();

  std::unique_ptr<internal::Shared> shared_;
  std::unique_ptr<KernelSplice> kernel_;  // before stats_, which reads its counters
  std::unique_ptr<StatsRegistry> stats_;
  std::vector<std::unique_ptr<internal::Worker>> workers_;
  std::vector<std::thread> threads_;

  struct ListenerSet;
  mutable std::mutex install_mu_;  // serialises Install; guards listeners_ and table_
  std::map<std::string, std::shared_ptr<ListenerSet>> listeners_;  // by endpoint `listen`
  std::shared_ptr<const RouteTable> table_;
  std::once_flag drained_;
};

}  // namespace hafab::gateway
