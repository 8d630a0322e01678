// Gateway counters per endpoint and per backend. Each data-path thread writes only its
// own slot (a cache line of relaxed atomics, no locks, no shared writes); readers sum the
// slots. Rendered as Prometheus text (/metrics) and JSON (/stats).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace hafab::gateway {

// Adds `d` to a counter that only the calling thread writes (no read-modify-write bus lock).
inline void Bump(std::atomic<uint64_t>& c, uint64_t d = 1) {
  c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
inline void Drop(std::atomic<uint64_t>& c, uint64_t d = 1) {
  c.store(c.load(std::memory_order_relaxed) - d, std::memory_order_relaxed);
}

// Bytes moved past the data-path threads (by the kernel data path, KernelSplice), by counter
// index: each EndpointStats and BackendStats has its own. Read when counters are summed.
class ByteCounterSource {
 public:
  virtual ~ByteCounterSource() = default;
  // Adds the counter's bytes client -> backend to *in, backend -> client to *out.
  // Thread-safe.
  virtual void Add(uint32_t counter, uint64_t* in, uint64_t* out) const = 0;
};

struct alignas(64) EndpointSlot {
  std::atomic<uint64_t> active{0};          // connections accepted and not yet closed
  std::atomic<uint64_t> total{0};           // connections accepted (after the ACL)
  std::atomic<uint64_t> bytes_in{0};        // client -> backend
  std::atomic<uint64_t> bytes_out{0};       // backend -> client
  std::atomic<uint64_t> connect_errors{0};  // backend connect attempts that failed
  std::atomic<uint64_t> acl_denied{0};      // connections closed at once by the ACL
  std::atomic<uint64_t> waits{0};           // connections that had to wait for a primary
  std::atomic<uint64_t> wait_ns{0};         // total time spent waiting for a primary
  std::atomic<uint64_t> wait_timeouts{0};   // waits that ended without a primary
  std::atomic<uint64_t> fenced{0};          // connections closed by an epoch change/lease loss
  std::atomic<uint64_t> no_backend{0};      // closed because no backend could take them
  std::atomic<uint64_t> idle_closed{0};     // closed by the idle timeout
  std::atomic<uint64_t> spliced{0};         // handed to the kernel data path once connected
  std::atomic<uint64_t> spliced_paused{0};  // directions of those the worker took back
  std::atomic<uint64_t> spliced_reset{0};   // of those, reset: the kernel repeated a segment
};

struct alignas(64) BackendSlot {
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> connect_errors{0};
  std::atomic<uint64_t> fenced{0};
};

// Sums of all slots: a point-in-time view (each counter read once, not all at one instant).
struct EndpointTotals {
  uint64_t active = 0, total = 0, bytes_in = 0, bytes_out = 0, connect_errors = 0, acl_denied = 0,
           waits = 0, wait_ns = 0, wait_timeouts = 0, fenced = 0, no_backend = 0, idle_closed = 0,
           spliced = 0, spliced_paused = 0, spliced_reset = 0;
};
struct BackendTotals {
  uint64_t active = 0, total = 0, bytes_in = 0, bytes_out = 0, connect_errors = 0, fenced = 0;
};

class EndpointStats {
 public:
  // `kernel` (may be null) adds the bytes it counted under `counter` to the sums.
  EndpointStats(std::string role, std::string listen, int threads, uint32_t counter = 0,
                const ByteCounterSource* kernel = nullptr);
  const std::string& role() const { return role_; }
  uint32_t counter() const { return counter_; }
  const std::string& listen() const { return listen_; }
  // REQUIRES: 0 <= thread < threads. Only that thread writes the slot.
  EndpointSlot& slot(int thread) { return slots_[thread]; }
  EndpointTotals Sum() const;

 private:
  std::string role_, listen_;
  int threads_;
  uint32_t counter_;
  const ByteCounterSource* kernel_;
  std::unique_ptr<EndpointSlot[]> slots_;
};

class BackendStats {
 public:
  BackendStats(std::string instance, std::string address, int threads, uint32_t counter = 0,
               const ByteCounterSource* kernel = nullptr);
  const std::string& instance() const { return instance_; }
  uint32_t counter() const { return counter_; }
  const std::string& address() const { return address_; }
  BackendSlot& slot(int thread) { return slots_[thread]; }
  // Active connections across all threads (for least-connections). Lock-free.
  uint64_t Active() const;
  BackendTotals Sum() const;

 private:
  std::string instance_, address_;
  int threads_;
  uint32_t counter_;
  const ByteCounterSource* kernel_;
  std::unique_ptr<BackendSlot[]> slots_;
};

// Owns every counter object. Get* are called when a table is installed (never on the data
// path); counters of endpoints and backends that left the table are kept, so totals do not
// go backwards. Each gets the next counter index (0, 1, ...) for the kernel's byte counts.
// Thread-safe.
class StatsRegistry {
 public:
  // `kernel` (may be null; must outlive the registry) supplies the bytes moved in the kernel.
  explicit StatsRegistry(int threads, const ByteCounterSource* kernel = nullptr)
      : threads_(threads), kernel_(kernel) {}
  std::shared_ptr<EndpointStats> GetEndpoint(const std::string& role, const std::string& listen);
  std::shared_ptr<BackendStats> GetBackend(const std::string& role, const std::string& instance,
                                           const std::string& address);

  // Prometheus text exposition format 0.0.4. `extra` is appended as-is (gateway gauges).
  std::string RenderPrometheus(const std::string& extra = "") const;
  // {"endpoints": [{"role", "listen", counters..., "backends": [{...}]}]}
  std::string RenderJson() const;

  // Sums for one endpoint / backend; zeros when unknown. For tests and the API.
  EndpointTotals Endpoint(const std::string& role) const;
  BackendTotals Backend(const std::string& role, const std::string& instance) const;
  // Connections open (or connecting) to each backend instance, over all roles and
  // addresses; instances with none are left out. For the controller heartbeat (drain).
  std::map<std::string, uint64_t> ActiveByInstance() const;

 private:
  int threads_;
  const ByteCounterSource* kernel_;
  uint32_t next_counter_ = 0;  // guarded by mu_
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<EndpointStats>> endpoints_;  // by role
  // by (role, instance + " " + address)
  std::map<std::pair<std::string, std::string>, std::shared_ptr<BackendStats>> backends_;
};

}  // namespace hafab::gateway
