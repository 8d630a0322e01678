// Access control for a gateway endpoint: a list of IPv4/IPv6 CIDRs a client address
// must fall in. Role names in a manifest's `allow:` are resolved to /32 (or /128) CIDRs
// by the controller before they reach the gateway.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hafab::gateway {

// One network prefix. Immutable once parsed.
class Cidr {
 public:
  // Parses "10.0.0.0/8", "192.168.1.7" (= /32), "fd00::/8", "::1" (= /128).
  // Host bits beyond the prefix are ignored ("10.1.2.3/8" matches as 10.0.0.0/8).
  // Errors: InvalidArgument naming the text and what is wrong with it.
  static Result<Cidr> Parse(std::string_view text);

  // True if `addr` (AF_INET or AF_INET6) lies inside this prefix. An IPv4-mapped IPv6
  // address (::ffff:a.b.c.d) is compared as the IPv4 address a.b.c.d.
  bool Contains(const sockaddr* addr) const;

  // "10.0.0.0/8": the canonical form (host bits cleared).
  std::string ToString() const;

 private:
  int family_ = AF_INET;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes_{};
  int prefix_ = 0;
};

// An allow list: every address (the default), or only the addresses in its CIDRs (none when
// it has none). Thread-safe for concurrent reads.
class Acl {
 public:
  Acl() = default;
  explicit Acl(std::vector<Cidr> allow) : allow_(std::move(allow)), restricted_(true) {}

  // Parses each entry with Cidr::Parse; the error names the first bad entry.
  static Result<Acl> Parse(const std::vector<std::string>& entries);

  // True if the list is unrestricted or one of its CIDRs contains `addr`.
  bool Allows(const sockaddr* addr) const;
  bool allow_all() const { return !restricted_; }
  const std::vector<Cidr>& entries() const { return allow_; }

 private:
  std::vector<Cidr> allow_;
  bool restricted_ = false;
};

}  // namespace hafab::gateway
