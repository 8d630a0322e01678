#include "agent/ring_datagram.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace hafab::agent {
namespace {

using Kind = wire::RingMessage::Kind;

const std::string kKey = "the-cluster-ring-key";

RingDatagram PingReq() {
  return {{Kind::kPingReq, 0x0102030405060708ULL, "n1", "n3"}, "10.0.0.3:7946"};
}

TEST(RingDatagramTest, RoundTrips) {
  for (const RingDatagram& d :
       {PingReq(), RingDatagram{{Kind::kPing, 1, "n1", "n2"}, ""},
        RingDatagram{{Kind::kAck, ~0ULL, std::string(255, 'a'), std::string(255, 'b')},
                     std::string(kMaxRingAddress, '1')}}) {
    auto bytes = EncodeRingDatagram(d, kKey);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_LE(bytes->size(), kMaxRingDatagram);
    auto back = DecodeRingDatagram(*bytes, kKey);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, d);
  }
}

TEST(RingDatagramTest, AnotherKeyOrAnyChangedByteIsRefused) {
  auto bytes = EncodeRingDatagram(PingReq(), kKey);
  ASSERT_TRUE(bytes.ok());
  auto other = DecodeRingDatagram(*bytes, "another-cluster");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("bad mac"), std::string::npos)
      << other.status().message();
  // Every single bit flipped, in the body or the mac, is caught.
  for (size_t i = 0; i < bytes->size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string forged = *bytes;
      forged[i] = static_cast<char>(forged[i] ^ (1 << bit));
      EXPECT_FALSE(DecodeRingDatagram(forged, kKey).ok()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(RingDatagramTest, MalformedDatagramsAreRefusedWithoutReadingPastThem) {
  auto bytes = EncodeRingDatagram(PingReq(), kKey);
  ASSERT_TRUE(bytes.ok());
  for (size_t len = 0; len < bytes->size(); ++len) {
    EXPECT_FALSE(DecodeRingDatagram(bytes->substr(0, len), kKey).ok()) << len;
  }
  EXPECT_FALSE(DecodeRingDatagram(*bytes + "x", kKey).ok());
  EXPECT_FALSE(DecodeRingDatagram(std::string(kMaxRingDatagram + 1, 'H'), kKey).ok());
  EXPECT_FALSE(DecodeRingDatagram("GET / HTTP/1.1\r\n\r\n", kKey).ok());
}

// `body` with a valid mac under kKey, as the codec computes it.
std::string Signed(const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return body + std::string(reinterpret_cast<const char*>(mac), 16);
}

// A datagram under the key but not of the format (a bad kind, lengths that do not add up, an
// empty name) is refused too: a bug in a peer never becomes a crash here.
TEST(RingDatagramTest, SignedButMalformedIsRefused) {
  const std::string seq(8, '\0');
  auto text = [](const std::string& s) { return std::string(1, static_cast<char>(s.size())) + s; };
  const std::string good = "HR1" + std::string(1, '\0') + seq + text("n1") + text("n2") + text("");
  ASSERT_TRUE(DecodeRingDatagram(Signed(good), kKey).ok());
  const std::string bad_kind =
      "HR1" + std::string(1, '\3') + seq + text("n1") + text("n2") + text("");
  EXPECT_FALSE(DecodeRingDatagram(Signed(bad_kind), kKey).ok());
  const std::string empty_from =
      "HR1" + std::string(1, '\0') + seq + text("") + text("n2") + text("");
  EXPECT_FALSE(DecodeRingDatagram(Signed(empty_from), kKey).ok());
  std::string overlong = good;
  overlong[12] = static_cast<char>(200);  // from's length runs past the end
  EXPECT_FALSE(DecodeRingDatagram(Signed(overlong), kKey).ok());
  EXPECT_FALSE(DecodeRingDatagram(Signed(good + "trailing"), kKey).ok());
}

TEST(RingDatagramTest, UnencodableMessagesAreRefused) {
  EXPECT_FALSE(EncodeRingDatagram({{Kind::kPing, 1, "", "n2"}, ""}, kKey).ok());
  EXPECT_FALSE(EncodeRingDatagram({{Kind::kPing, 1, std::string(256, 'a'), "n2"}, ""}, kKey).ok());
  EXPECT_FALSE(EncodeRingDatagram(
                   {{Kind::kPingReq, 1, "n1", "n2"}, std::string(kMaxRingAddress + 1, '1')}, kKey)
                   .ok());
}

}  // namespace
}  // namespace hafab::agent
