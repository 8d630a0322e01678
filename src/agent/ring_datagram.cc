#include "agent/ring_datagram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace hafab::agent {

namespace {

constexpr std::string_view kMagic = "HR1";
constexpr size_t kMacBytes = 16;

std::array<unsigned char, EVP_MAX_MD_SIZE> Mac(std::string_view body, std::string_view key) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac.data(), &len);
  return mac;
}

void WriteText(std::string_view text, std::string* out) {
  out->push_back(static_cast<char>(text.size()));
  out->append(text);
}

// Reads one length-prefixed text at `*at`; false when the datagram ends first.
bool ReadText(std::string_view d, size_t* at, std::string* out) {
  if (*at >= d.size()) return false;
  const size_t len = static_cast<unsigned char>(d[*at]);
  ++*at;
  if (len > d.size() - *at) return false;
  out->assign(d.substr(*at, len));
  *at += len;
  return true;
}

}  // namespace

Result<std::string> EncodeRingDatagram(const RingDatagram& d, std::string_view key) {
  const wire::RingMessage& m = d.message;
  for (const std::string* name : {&m.from, &m.subject}) {
    if (name->empty() || name->size() > kMaxRingName) {
      return Status::InvalidArgument("ring message: a node name of " +
                                     std::to_string(name->size()) + " bytes (1 to " +
                                     std::to_string(kMaxRingName) + ")");
    }
  }
  if (d.subject_address.size() > kMaxRingAddress) {
    return Status::InvalidArgument("ring message: an address of " +
                                   std::to_string(d.subject_address.size()) + " bytes");
  }
  std::string out(kMagic);
  out.push_back(static_cast<char>(m.kind));
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(m.seq >> shift));
  WriteText(m.from, &out);
  WriteText(m.subject, &out);
  WriteText(d.subject_address, &out);
  const auto mac = Mac(out, key);
  out.append(reinterpret_cast<const char*>(mac.data()), kMacBytes);
  return out;
}

Result<RingDatagram> DecodeRingDatagram(std::string_view d, std::string_view key) {
  constexpr size_t kMinSize = 3 + 1 + 8 + (1 + 1) + (1 + 1) + 1 + kMacBytes;
  if (d.size() < kMinSize || d.size() > kMaxRingDatagram) {
    return Status::InvalidArgument("ring datagram of " + std::to_string(d.size()) + " bytes");
  }
  if (d.substr(0, kMagic.size()) != kMagic) return Status::InvalidArgument("not a ring datagram");
  const std::string_view body = d.substr(0, d.size() - kMacBytes);
  // The mac first: nothing a stranger sent is interpreted.
  const auto mac = Mac(body, key);
  if (CRYPTO_memcmp(mac.data(), d.data() + body.size(), kMacBytes) != 0) {
    return Status::InvalidArgument("ring datagram with a bad mac (forged, or another cluster's)");
  }
  RingDatagram out;
  wire::RingMessage& m = out.message;
  const auto kind = static_cast<unsigned char>(body[kMagic.size()]);
  if (kind > static_cast<unsigned char>(wire::RingMessage::Kind::kPingReq)) {
    return Status::InvalidArgument("ring datagram of unknown kind " + std::to_string(kind));
  }
  m.kind = static_cast<wire::RingMessage::Kind>(kind);
  size_t at = kMagic.size() + 1;
  for (int i = 0; i < 8; ++i) m.seq = (m.seq << 8) | static_cast<unsigned char>(body[at++]);
  if (!ReadText(body, &at, &m.from) || !ReadText(body, &at, &m.subject) ||
      !ReadText(body, &at, &out.subject_address) || at != body.size() || m.from.empty() ||
      m.subject.empty() || out.subject_address.size() > kMaxRingAddress) {
    return Status::InvalidArgument("ring datagram with malformed names");
  }
  return out;
}

}  // namespace hafab::agent
