// The small value syntaxes of a manifest: byte sizes, host:port, CIDRs and names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace hafab::manifest {

// Bytes as written in a manifest: "1048576", "500M", "1G" (powers of 1000: K, M, G, T; "k" is
// accepted for K) or "256Mi", "1Gi" (powers of 1024: Ki, Mi, Gi, Ti). Whole numbers only.
// Errors: InvalidArgument saying what is accepted.
Result<uint64_t> ParseByteSize(std::string_view text);

// The shortest exact form ParseByteSize reads back: 268435456 -> "256Mi", 500000000 -> "500M",
// 1000 -> "1K", 1023 -> "1023".
std::string FormatByteSize(uint64_t bytes);

struct HostPort {
  std::string host;  // without brackets for IPv6
  int port = 0;
};

// Splits "host:port" or "[v6]:port". The host is an IPv4/IPv6 literal or a DNS name; the port
// is a decimal number in min_port..65535.
// Errors: InvalidArgument saying which part is wrong.
Result<HostPort> ParseHostPort(std::string_view text, int min_port);

// True for an IPv4 or IPv6 address, with or without a prefix length ("10.0.0.0/8", "::1").
bool IsIpOrCidr(std::string_view text);

// Names of roles, nodes, volumes and the cluster: a letter, then letters, digits, '-' or '_';
// at most 63 characters (they appear in instance ids, store keys and file names).
bool IsValidName(std::string_view text);
inline constexpr std::string_view kNameRule =
    "a letter, then letters, digits, '-' or '_', at most 63 characters";

}  // namespace hafab::manifest
