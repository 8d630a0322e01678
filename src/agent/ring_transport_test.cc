// RingTransport over real UDP sockets on loopback, on the real clock.
#include "agent/ring_transport.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <memory>
#include <optional>

namespace hafab::agent {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using namespace std::chrono_literals;
using Kind = wire::RingMessage::Kind;

const std::string kKey = "ring-key-of-the-test";

class RingTransportTest : public ::testing::Test {
 protected:
  RingTransportTest() : raw_(io_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    raw_.non_blocking(true);
  }

  std::unique_ptr<RingTransport> Make(const std::string& name) {
    auto t = std::make_unique<RingTransport>(io_, RealClock(), name, RingOptions{}, [] {});
    auto port = t->Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status().ToString();
    return t;
  }

  std::string Address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }
  std::string RawAddress() { return Address(raw_.local_endpoint().port()); }

  // Runs the io_context until `cond` holds; false after 5 s.
  bool RunUntil(const std::function<bool()>& cond) {
    const TimePoint deadline = RealClock().Now() + 5s;
    while (!cond()) {
      if (RealClock().Now() >= deadline) return false;
      io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  void SendRaw(const std::string& bytes, uint16_t port) {
    raw_.send_to(asio::buffer(bytes), udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  void SendRaw(const RingDatagram& d, const std::string& key, uint16_t port) {
    auto bytes = EncodeRingDatagram(d, key);
    ASSERT_TRUE(bytes.ok());
    SendRaw(*bytes, port);
  }

  // The next datagram the raw socket has, decoded; nullopt if none is waiting.
  std::optional<RingDatagram> ReceiveRaw() {
    std::array<char, 2048> buf{};
    udp::endpoint from;
    boost::system::error_code ec;
    const size_t n = raw_.receive_from(asio::buffer(buf), from, 0, ec);
    if (ec) return std::nullopt;
    auto d = DecodeRingDatagram(std::string_view(buf.data(), n), kKey);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::optional(*d) : std::nullopt;
  }

  asio::io_context io_;
  udp::socket raw_;  // the test's own end: a neighbour, or a stranger
};

TEST_F(RingTransportTest, AnswersAPingUnderTheKey) {
  auto b = Make("b");
  b->SetPeers({{"a", RawAddress()}}, kKey);
  SendRaw({{Kind::kPing, 42, "a", "b"}, ""}, kKey, b->port());
  std::optional<RingDatagram> ack;
  ASSERT_TRUE(RunUntil([&] {
    // b probes us too: skip its pings, answer none (b will suspect us; not this test's point).
    while (auto d = ReceiveRaw()) {
      if (d->message.kind == Kind::kAck) ack = d;
    }
    return ack.has_value();
  }));
  EXPECT_EQ(ack->message, (wire::RingMessage{Kind::kAck, 42, "b", "b"}));
  EXPECT_EQ(b->counters().received, 1u);
  EXPECT_EQ(b->counters().dropped_invalid, 0u);
}

// Forged (another key), malformed, oversize and garbage datagrams are dropped and counted; the
// valid one sent after them is answered, and nothing else is.
TEST_F(RingTransportTest, DropsAndCountsWhatIsNotUnderTheKey) {
  auto b = Make("b");
  b->SetPeers({{"a", RawAddress()}}, kKey);
  SendRaw({{Kind::kPing, 1, "a", "b"}, ""}, "a-stranger's-key", b->port());
  auto valid = EncodeRingDatagram({{Kind::kPing, 2, "a", "b"}, ""}, kKey);
  ASSERT_TRUE(valid.ok());
  SendRaw(valid->substr(0, valid->size() - 1), b->port());  // truncated
  SendRaw(std::string(kMaxRingDatagram + 100, 'H'), b->port());
  SendRaw(std::string(60000, 'x'), b->port());
  SendRaw("", b->port());
  SendRaw(*valid, b->port());
  std::vector<uint64_t> acked;
  ASSERT_TRUE(RunUntil([&] {
    while (auto d = ReceiveRaw()) {
      if (d->message.kind == Kind::kAck) acked.push_back(d->message.seq);
    }
    return !acked.empty();
  }));
  EXPECT_EQ(acked, std::vector<uint64_t>{2});
  EXPECT_EQ(b->counters().dropped_invalid, 5u);
  EXPECT_EQ(b->counters().received, 1u);
}

TEST_F(RingTransportTest, WithoutAKeyEverythingIsDropped) {
  auto b = Make("b");
  SendRaw({{Kind::kPing, 1, "a", "b"}, ""}, kKey, b->port());
  ASSERT_TRUE(RunUntil([&] { return b->counters().dropped_invalid == 1; }));
  EXPECT_EQ(b->counters().received, 0u);
  EXPECT_FALSE(ReceiveRaw().has_value());
}

// A node that leaves the ring (its list names no neighbours, and comes without the key) keeps
// the key: a former neighbour's datagram is still verified, not counted invalid.
TEST_F(RingTransportTest, LeavingTheRingKeepsTheKey) {
  auto b = Make("b");
  b->SetPeers({{"a", RawAddress()}}, kKey);
  b->SetPeers({}, "");
  EXPECT_TRUE(b->monitor().neighbours().empty());
  SendRaw({{Kind::kPing, 3, "a", "b"}, ""}, kKey, b->port());
  ASSERT_TRUE(RunUntil([&] { return b->counters().received == 1; }));
  EXPECT_EQ(b->counters().dropped_invalid, 0u);
}

// A neighbour that does not answer is suspected; a stranger's forged datagram in its name does
// not clear the suspicion, the neighbour's own word does.
TEST_F(RingTransportTest, AForgedWordDoesNotClearASuspicion) {
  auto a = Make("a");
  a->SetPeers({{"b", RawAddress()}}, kKey);
  ASSERT_TRUE(RunUntil([&] { return a->monitor().Suspects("b"); }));
  EXPECT_GT(a->counters().sent, 0u);
  SendRaw({{Kind::kPing, 7, "b", "a"}, ""}, "forged", a->port());
  ASSERT_TRUE(RunUntil([&] { return a->counters().dropped_invalid == 1; }));
  EXPECT_TRUE(a->monitor().Suspects("b"));
  SendRaw({{Kind::kPing, 8, "b", "a"}, ""}, kKey, a->port());
  ASSERT_TRUE(RunUntil([&] { return !a->monitor().Suspects("b"); }));
  auto reports = a->monitor().TakeReports();
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back(), (wire::RingReport{"b", false}));
}

// Two transports watch each other, and a third is probed through a helper that is not its
// neighbour: the ping-req carries the subject's address.
TEST_F(RingTransportTest, NeighboursProbeEachOtherDirectlyAndThroughAHelper) {
  auto a = Make("a");
  auto b = Make("b");
  auto c = Make("c");
  // a watches b and c; c knows only a (so it learns b's address from a's ping-req); b knows a.
  a->SetPeers({{"b", Address(b->port())}, {"c", Address(c->port())}}, kKey);
  b->SetPeers({{"a", Address(a->port())}}, kKey);
  c->SetPeers({{"a", Address(a->port())}}, kKey);
  ASSERT_TRUE(RunUntil([&] { return a->counters().received >= 4 && b->counters().received >= 4; }));
  EXPECT_FALSE(a->monitor().Suspects("b"));
  EXPECT_FALSE(a->monitor().Suspects("c"));
  EXPECT_FALSE(b->monitor().Suspects("a"));
  // A helper's relay: a ping-req to c about b, answered by c's own ping of b.
  auto req = EncodeRingDatagram({{Kind::kPingReq, 99, "a", "b"}, Address(b->port())}, kKey);
  ASSERT_TRUE(req.ok());
  const uint64_t b_received = b->counters().received;
  const uint64_t c_received = c->counters().received;
  raw_.send_to(asio::buffer(*req), udp::endpoint(asio::ip::make_address("127.0.0.1"), c->port()));
  // c took the request and b's ack (b answered c, whose address it learned from the ping).
  ASSERT_TRUE(RunUntil([&] {
    return b->counters().received > b_received && c->counters().received >= c_received + 2;
  }));
  EXPECT_EQ(
      a->counters().dropped_invalid + b->counters().dropped_invalid + c->counters().dropped_invalid,
      0u);
}

TEST(RingAddressTest, ParsesHostAndPort) {
  EXPECT_EQ(ParseRingAddress("10.0.0.1:7946")->port(), 7946);
  EXPECT_EQ(ParseRingAddress("[::1]:7946")->address().to_string(), "::1");
  for (const char* bad : {"", "10.0.0.1", "10.0.0.1:", ":7946", "host:7946", "10.0.0.1:0",
                          "10.0.0.1:65536", "10.0.0.1:12x", "10.0.0.1:99999999999"}) {
    EXPECT_FALSE(ParseRingAddress(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace hafab::agent
