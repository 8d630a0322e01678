#include "gateway/acl.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace hafab::gateway {
namespace {

// Extracts the comparable bytes of `addr`: family and 4 or 16 bytes. IPv4-mapped IPv6
// addresses become IPv4. Returns false for other families.
bool AddressBytes(const sockaddr* addr, int* family, const uint8_t** bytes) {
  if (addr->sa_family == AF_INET) {
    *family = AF_INET;
    *bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr);
    return true;
  }
  if (addr->sa_family == AF_INET6) {
    const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
      *family = AF_INET;
      *bytes = a6->s6_addr + 12;
    } else {
      *family = AF_INET6;
      *bytes = a6->s6_addr;
    }
    return true;
  }
  return false;
}

}  // namespace

Result<Cidr> Cidr::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("bad CIDR \"" + std::string(text) + "\": " + std::string(why));
  };
  if (text.empty()) return bad("empty");
  std::string_view addr_part = text;
  int prefix = -1;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_part = text.substr(0, slash);
    std::string_view p = text.substr(slash + 1);
    int v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || v < 0) {
      return bad("prefix length is not a number");
    }
    prefix = v;
  }
  Cidr c;
  std::string host(addr_part);
  if (inet_pton(AF_INET, host.c_str(), c.bytes_.data()) == 1) {
    c.family_ = AF_INET;
    if (prefix < 0) prefix = 32;
    if (prefix > 32) return bad("IPv4 prefix length must be 0..32");
  } else if (inet_pton(AF_INET6, host.c_str(), c.bytes_.data()) == 1) {
    c.family_ = AF_INET6;
    if (prefix < 0) prefix = 128;
    if (prefix > 128) return bad("IPv6 prefix length must be 0..128");
    // Clients' IPv4-mapped addresses are compared as IPv4 (AddressBytes): so is a mapped
    // CIDR of at least /96, else "::ffff:10.1.2.3" would admit nobody (found by fuzz_acl).
    if (prefix >= 96 && IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(c.bytes_.data()))) {
      std::memmove(c.bytes_.data(), c.bytes_.data() + 12, 4);
      c.family_ = AF_INET;
      prefix -= 96;
    }
  } else {
    return bad("not an IPv4 or IPv6 address (role names must be resolved by the controller)");
  }
  c.prefix_ = prefix;
  // Clear host bits so that Contains and ToString see the network.
  const int len = c.family_ == AF_INET ? 4 : 16;
  for (int i = 0; i < len; ++i) {
    int bits = std::min(8, std::max(0, prefix - 8 * i));
    c.bytes_[i] &= static_cast<uint8_t>(bits == 0 ? 0 : (0xff << (8 - bits)) & 0xff);
  }
  return c;
}

bool Cidr::Contains(const sockaddr* addr) const {
  int family = 0;
  const uint8_t* bytes = nullptr;
  if (!AddressBytes(addr, &family, &bytes) || family != family_) return false;
  const int full = prefix_ / 8;
  if (std::memcmp(bytes, bytes_.data(), full) != 0) return false;
  const int rest = prefix_ % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>((0xff << (8 - rest)) & 0xff);
  return (bytes[full] & mask) == bytes_[full];
}

std::string Cidr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family_, bytes_.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_);
}

Result<Acl> Acl::Parse(const std::vector<std::string>& entries) {
  std::vector<Cidr> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    auto c = Cidr::Parse(e);
    if (!c.ok()) return c.status();
    out.push_back(*c);
  }
  return Acl(std::move(out));
}

bool Acl::Allows(const sockaddr* addr) const {
  if (!restricted_) return true;
  for (const auto& c : allow_) {
    if (c.Contains(addr)) return true;
  }
  return false;
}

}  // namespace hafab::gateway
