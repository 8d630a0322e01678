#include "agent/ring_transport.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <utility>

#include "manifest/units.h"

namespace hafab::agent {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// Learned addresses kept at most; past that the map starts again (it refills from traffic).
constexpr size_t kMaxLearned = 4 * wire::kMaxRingPeers;

}  // namespace

Result<udp::endpoint> ParseRingAddress(const std::string& address) {
  auto hp = manifest::ParseHostPort(address, 1);
  if (!hp.ok()) return Status::InvalidArgument("ring address: " + hp.status().message());
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(hp->host, ec);
  if (ec) {
    return Status::InvalidArgument("ring address '" + address + "': want an IP address and port");
  }
  return udp::endpoint(ip, static_cast<uint16_t>(hp->port));
}

RingTransport::RingTransport(asio::io_context& io, Clock& clock, std::string self,
                             RingOptions options, std::function<void()> reports_ready)
    : clock_(clock),
      self_(std::move(self)),
      reports_ready_(std::move(reports_ready)),
      monitor_(clock, self_, options,
               [this](const std::string& to, const wire::RingMessage& m) { Send(to, m); }),
      socket_(io),
      timer_(io) {}

RingTransport::~RingTransport() {
  boost::system::error_code ec;
  socket_.close(ec);
  timer_.cancel();
}

Result<uint16_t> RingTransport::Listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("ring: address '" + host + "': " + ec.message());
  const udp::endpoint at(ip, port);
  socket_.open(at.protocol(), ec);
  if (!ec) socket_.bind(at, ec);
  // Sends never wait: a full socket buffer drops the probe, as the network might.
  if (!ec) socket_.non_blocking(true, ec);
  if (ec) {
    return Status::Unavailable("ring: cannot listen on udp " + host + ":" + std::to_string(port) +
                               ": " + ec.message());
  }
  port_ = socket_.local_endpoint(ec).port();
  Receive();
  return port_;
}

void RingTransport::SetPeers(const std::vector<wire::RingPeer>& peers, const std::string& key) {
  // A list with no neighbours comes without the key (the node left the ring: down, drained).
  // The key is kept: what former neighbours sent meanwhile (queued while this agent was
  // stopped, or still on the way) is theirs, not invalid, and the node may rejoin.
  if (!key.empty()) key_ = key;
  peers_.clear();
  peer_address_.clear();
  std::vector<std::string> neighbours;
  if (key_.empty()) {
    if (!peers.empty()) {
      spdlog::error("agent {}: ring neighbours without a ring key: watching none", self_);
    }
  } else {
    for (const auto& p : peers) {
      neighbours.push_back(p.node);
      peer_address_[p.node] = p.address;
      auto at = ParseRingAddress(p.address);
      if (at.ok()) {
        peers_[p.node] = *at;
        learned_.erase(p.node);
      } else if (!p.address.empty()) {
        spdlog::warn("agent {}: ring neighbour {}: {}", self_, p.node, at.status().message());
      }
    }
  }
  if (neighbours != monitor_.neighbours()) {
    std::string names;
    for (const auto& n : neighbours) names += (names.empty() ? "" : ", ") + n;
    spdlog::info("agent {}: ring neighbours: {}", self_, names.empty() ? "none" : names);
    monitor_.SetNeighbours(std::move(neighbours));
  }
  AfterMonitor();
}

void RingTransport::Receive() {
  socket_.async_receive_from(
      asio::buffer(buffer_), sender_, [this](boost::system::error_code ec, size_t bytes) {
        if (ec == asio::error::operation_aborted || !socket_.is_open()) return;
        if (!ec) {
          OnDatagram(bytes);
        } else {
          ++counters_.dropped_invalid;  // e.g. a datagram refused by the kernel mid-way
        }
        Receive();
      });
}

void RingTransport::Drop(const std::string& why) {
  ++counters_.dropped_invalid;
  ++drops_unlogged_;
  // At most one line per 10 s, whatever a flood sends.
  const TimePoint now = clock_.Now();
  if (logged_drop_at_ != TimePoint{} && now - logged_drop_at_ < std::chrono::seconds(10)) return;
  logged_drop_at_ = now;
  spdlog::warn("agent {}: ring: dropped {} invalid datagram(s), the last from {}: {}", self_,
               std::exchange(drops_unlogged_, 0), sender_.address().to_string(), why);
}

void RingTransport::OnDatagram(size_t bytes) {
  if (bytes > kMaxRingDatagram) return Drop("larger than " + std::to_string(kMaxRingDatagram));
  if (key_.empty()) return Drop("no ring key yet");
  auto d = DecodeRingDatagram(std::string_view(buffer_.data(), bytes), key_);
  if (!d.ok()) return Drop(d.status().message());
  const wire::RingMessage& m = d->message;
  if (m.from == self_) return Drop("from this node's own name");
  ++counters_.received;
  if (!peers_.count(m.from)) {
    if (learned_.size() >= kMaxLearned) learned_.clear();
    learned_[m.from] = sender_;
  }
  if (m.kind == wire::RingMessage::Kind::kPingReq && !peers_.count(m.subject)) {
    auto at = ParseRingAddress(d->subject_address);
    if (at.ok()) {
      if (learned_.size() >= kMaxLearned) learned_.clear();
      learned_[m.subject] = *at;
    }
  }
  monitor_.OnMessage(m);
  AfterMonitor();
}

void RingTransport::Send(const std::string& to, const wire::RingMessage& m) {
  const Endpoint* at = nullptr;
  if (auto p = peers_.find(to); p != peers_.end()) {
    at = &p->second;
  } else if (auto l = learned_.find(to); l != learned_.end()) {
    at = &l->second;
  }
  if (at == nullptr || key_.empty()) {
    ++counters_.send_failed;
    return;
  }
  RingDatagram d{m, ""};
  if (m.kind == wire::RingMessage::Kind::kPingReq) {
    auto a = peer_address_.find(m.subject);
    if (a != peer_address_.end()) d.subject_address = a->second;
  }
  auto bytes = EncodeRingDatagram(d, key_);
  if (!bytes.ok()) {
    ++counters_.send_failed;
    return;
  }
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(*bytes), *at, 0, ec);
  if (ec) {
    ++counters_.send_failed;
    return;
  }
  ++counters_.sent;
}

void RingTransport::AfterMonitor() {
  // Due work first (a probe whose time came while datagrams were handled), then the timer.
  if (clock_.Now() >= monitor_.NextDue()) monitor_.Tick();
  Schedule();
  reports_ready_();
}

void RingTransport::Schedule() {
  const TimePoint due = monitor_.NextDue();
  if (due == timer_due_) return;
  timer_due_ = due;
  if (due == TimePoint::max()) {
    timer_.cancel();
    return;
  }
  const Duration wait = std::max(Duration::zero(), due - clock_.Now());
  timer_.expires_after(wait);
  timer_.async_wait([this, due](boost::system::error_code ec) {
    if (ec || due != timer_due_) return;
    timer_due_ = TimePoint::max();
    monitor_.Tick();
    AfterMonitor();
  });
}

}  // namespace hafab::agent
