// RingTransport: the real agent's ring probes over UDP (settings.failure_detector: ring;
// docs/architecture.md, "Ring failure detection"). It owns a RingMonitor and drives it on the
// agent's io_context with the agent's clock: datagrams in, the monitor's probes out, a timer at
// the monitor's NextDue. One socket on the node's address; the controller's assignment list
// names the neighbours, where each listens, and the key every datagram is signed with
// (agent/ring_datagram.h). A datagram that is oversize, malformed, forged or sent before a key
// is known is dropped and counted, never interpreted; each is one handler on the io_context,
// between which heartbeats and timers run as usual.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/ring_datagram.h"
#include "agent/ring_monitor.h"
#include "core/result.h"
#include "wire/ring.h"

namespace hafab::agent {

struct RingCounters {
  uint64_t sent = 0;
  uint64_t received = 0;         // valid datagrams handed to the monitor
  uint64_t dropped_invalid = 0;  // oversize, malformed, forged, or before the key
  uint64_t send_failed = 0;      // no address known for the peer, or the socket refused

  bool operator==(const RingCounters&) const = default;
};

// Not thread-safe: everything on the io_context's thread.
class RingTransport {
 public:
  // `reports_ready` runs (on the io thread) when monitor().TakeReports() has something.
  RingTransport(boost::asio::io_context& io, Clock& clock, std::string self, RingOptions options,
                std::function<void()> reports_ready);
  ~RingTransport();
  RingTransport(const RingTransport&) = delete;
  RingTransport& operator=(const RingTransport&) = delete;

  // Binds the UDP socket to `host`:`port` (0: any free port) and starts receiving. Returns the
  // port bound. Unavailable when the address cannot be bound. REQUIRES: called once.
  Result<uint16_t> Listen(const std::string& host, uint16_t port);

  // The neighbours and the key from the controller's assignment list. A peer's address is
  // "host:port" ("[v6]:port"); one that is empty or unparsable stays a neighbour (it will be
  // suspected, and the controller arbitrates). An empty key keeps the one known (a node that
  // left the ring); with none known yet, no neighbour is watched and every datagram is dropped.
  void SetPeers(const std::vector<wire::RingPeer>& peers, const std::string& key);

  RingMonitor& monitor() { return monitor_; }
  const RingCounters& counters() const { return counters_; }
  uint16_t port() const { return port_; }

 private:
  using Endpoint = boost::asio::ip::udp::endpoint;

  void Receive();
  void OnDatagram(size_t bytes);
  void Send(const std::string& to, const wire::RingMessage& m);
  void Schedule();
  void AfterMonitor();
  void Drop(const std::string& why);

  Clock& clock_;
  const std::string self_;
  std::function<void()> reports_ready_;
  RingMonitor monitor_;
  boost::asio::ip::udp::socket socket_;
  boost::asio::steady_timer timer_;
  uint16_t port_ = 0;
  std::string key_;
  std::map<std::string, Endpoint> peers_;            // the neighbours, from the controller
  std::map<std::string, std::string> peer_address_;  // their "host:port", as given
  // Nodes outside the neighbours that spoke to us (a helper's ping) or that a ping-req named:
  // where to answer them. Filled only from datagrams under the key; bounded.
  std::map<std::string, Endpoint> learned_;
  std::array<char, kMaxRingDatagram + 1> buffer_{};  // one more: an oversize one is seen
  Endpoint sender_;
  RingCounters counters_;
  TimePoint logged_drop_at_{};
  uint64_t drops_unlogged_ = 0;
  TimePoint timer_due_ = TimePoint::max();
};

// "host:port" or "[v6]:port" as an endpoint; InvalidArgument otherwise (names are not
// resolved: the controller gives addresses).
Result<boost::asio::ip::udp::endpoint> ParseRingAddress(const std::string& address);

}  // namespace hafab::agent
