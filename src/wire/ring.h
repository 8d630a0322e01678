// The ring failure detector's messages (settings.failure_detector: ring; docs/architecture.md,
// "Ring failure detection"): the probes agents exchange with their ring neighbours, and what an
// agent tells the controller about them in its heartbeat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hafab::wire {

// The most ring peers an assignment list, or ring reports a heartbeat, may carry (k <= 8 on
// each side).
inline constexpr size_t kMaxRingPeers = 16;

// Agent to agent. A `kPing` asks `subject` (its receiver) to answer `kAck` with the same seq. A
// `kPingReq` asks its receiver to ping `subject` on the sender's behalf (an indirect probe) and
// pass the ack back with the sender's seq.
struct RingMessage {
  enum class Kind { kPing, kAck, kPingReq };
  Kind kind = Kind::kPing;
  uint64_t seq = 0;
  std::string from;
  std::string subject;  // the node whose liveness the message is about

  bool operator==(const RingMessage&) const = default;
};

// Agent to controller, in the heartbeat: `reporter` (the heartbeat's node) no longer hears
// `about` (suspect), or hears it again (suspect = false).
struct RingReport {
  std::string about;
  bool suspect = true;

  bool operator==(const RingReport&) const = default;
};

// Agent to controller, in the heartbeat: where its ring probes arrive, and what its transport
// (agent/ring_transport.h) sent, took and dropped since it started.
struct RingEndpoint {
  uint16_t port = 0;  // UDP, on the heartbeat's address; 0 = not listening
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t dropped_invalid = 0;  // oversize, malformed or forged datagrams

  bool operator==(const RingEndpoint&) const = default;
};

// Controller to agent, in the assignments: a ring neighbour to watch.
struct RingPeer {
  std::string node;
  std::string address;  // where its ring probes go, "host:port"; "" = not known yet

  bool operator==(const RingPeer&) const = default;
};

}  // namespace hafab::wire
