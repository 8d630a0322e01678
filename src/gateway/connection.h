// Internal to the gateway's data path: one proxied connection and the per-endpoint state a
// worker keeps (worker.cc, worker_spliced.cc). Not for use outside src/gateway.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gateway/kernel_splice.h"
#include "gateway/route_table.h"
#include "gateway/stats.h"
#include "gateway/worker.h"

namespace hafab::gateway::internal {

enum Tag : uint8_t { kTagWake, kTagListener, kTagClient, kTagBackend, kTagPaused };

// Everything a tagged epoll registration points at starts with its tag.
struct TaggedHandle {
  uint8_t tag;
  void* owner;
};

struct Direction {
  int src = -1, dst = -1;
  int pipe_r = -1, pipe_w = -1;  // splice mode, taken from the pool on first use
  size_t pending = 0;            // bytes read and not yet written
  bool eof = false;              // src sent FIN
  bool done = false;             // FIN passed on to dst
  bool buffered = true;          // read/send; false: splice through the pipe
  bool splice_ok = false;        // may move to splice on a bulk transfer
  // Spliced pairs (kernel_splice.h): the kernel stopped moving this direction (its queue
  // for the destination was full), and, once it had handed over what it held, the worker
  // moves it (copy mode).
  bool paused = false;
  bool taken_over = false;
  uint64_t taken = 0;           // bytes read since taken over
  bool early_eof = false;       // a read found the FIN before all of KernelSplice::Passed
  std::unique_ptr<char[]> buf;  // the unsent rest of a read, in copy mode
  size_t off = 0;
};

struct EndpointState {
  std::string listen;
  const Endpoint* ep = nullptr;
  const PublishedEndpoint* pub = nullptr;
  EndpointSlot* slot = nullptr;
  std::shared_ptr<Listener> listener;
  bool listening = false;
  TaggedHandle handle{kTagListener, this};
  Conn* head = nullptr;  // intrusive list of this endpoint's connections
};

struct Conn {
  enum class State { kWaiting, kConnecting, kProxying, kClosed };
  TaggedHandle client_handle{kTagClient, this};
  TaggedHandle backend_handle{kTagBackend, this};
  State state = State::kWaiting;
  int client_fd = -1;
  int backend_fd = -1;
  EndpointState* es = nullptr;
  Backend target;                // where backend_fd goes (a copy: tables change)
  BackendSlot* bslot = nullptr;  // non-null while counted as active on a backend
  uint32_t backend_counter = 0;  // the target's BackendStats::counter()
  bool waited = false;           // has been counted as waiting for a primary
  bool wait_ended = false;
  TimePoint wait_start{}, wait_deadline{}, last_active{};
  std::vector<int> tried;  // backend indices tried in generation `tried_generation`
  uint64_t tried_generation = 0;
  bool rerouting = false;
  Direction up;    // client -> backend
  Direction down;  // backend -> client
  // The kernel data path: once spliced, the kernel moves the bytes; the worker only sees
  // FIN and reset (Direction's eof and done still say where each half-close is).
  bool spliced = false;
  uint8_t turns = 0;     // changes of direction of the bytes moved in user space, capped
  bool last_up = false;  // the last bytes moved went client -> backend
  KernelSplice::Pair pair;
  uint64_t moved_seen = 0;  // bytes the kernel had moved (both ways) at the last idle check
  bool flushing = false;    // in Worker::flushing_: a FIN waits for bytes still in the kernel
  Conn* prev = nullptr;
  Conn* next = nullptr;
};

}  // namespace hafab::gateway::internal
