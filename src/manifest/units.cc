#include "manifest/units.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

namespace hafab::manifest {
namespace {

struct ByteUnit {
  std::string_view suffix;
  uint64_t size;
};

// Longest suffixes first so "Mi" is not read as "M" followed by junk; the printer tries the
// binary units first, which the reader accepts just the same.
constexpr ByteUnit kByteUnits[] = {
    {"Ti", 1ULL << 40},
    {"Gi", 1ULL << 30},
    {"Mi", 1ULL << 20},
    {"Ki", 1ULL << 10},
    {"T", 1'000'000'000'000ULL},
    {"G", 1'000'000'000ULL},
    {"M", 1'000'000ULL},
    {"K", 1'000ULL},
    {"k", 1'000ULL},
};

bool ParseDecimal(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        "invalid size \"" + std::string(text) + "\": " + std::string(why) +
        " (write bytes, or a whole number with K, M, G, T (1000s) or Ki, Mi, Gi, Ti (1024s), "
        "e.g. 256Mi)");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return bad("expected a number");
  uint64_t n = 0;
  if (!ParseDecimal(text.substr(0, digits), &n)) return bad("number too large");
  std::string_view suffix = text.substr(digits);
  if (suffix.empty()) return n;
  for (const ByteUnit& u : kByteUnits) {
    if (suffix == u.suffix) {
      if (n > UINT64_MAX / u.size) return bad("number too large");
      return n * u.size;
    }
  }
  return bad("unknown unit \"" + std::string(suffix) + "\"");
}

std::string FormatByteSize(uint64_t bytes) {
  if (bytes == 0) return "0";
  for (const ByteUnit& u : kByteUnits) {
    if (bytes % u.size == 0) return std::to_string(bytes / u.size) + std::string(u.suffix);
  }
  return std::to_string(bytes);
}

Result<HostPort> ParseHostPort(std::string_view text, int min_port) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("\"" + std::string(text) +
                                   "\" is not host:port: " + std::string(why));
  };
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    hp.host = std::string(text.substr(1, close - 1));
    in6_addr a6;
    if (inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1) return bad("invalid IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing \":port\"");
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing \":port\"");
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (hp.host.empty()) return bad("missing host (e.g. 127.0.0.1 or 0.0.0.0)");
    if (hp.host.find(':') != std::string::npos) {
      return bad("write IPv6 addresses in brackets, e.g. [::1]:7000");
    }
    for (char c : hp.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
        return bad("invalid host \"" + hp.host + "\"");
      }
    }
  }
  uint64_t port = 0;
  if (!ParseDecimal(port_text, &port)) return bad("the port must be a number");
  if (port < static_cast<uint64_t>(min_port) || port > 65535) {
    return bad("the port must be in " + std::to_string(min_port) + "..65535");
  }
  hp.port = static_cast<int>(port);
  return hp;
}

bool IsIpOrCidr(std::string_view text) {
  std::string addr(text);
  std::string_view prefix;
  size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    addr = std::string(text.substr(0, slash));
    prefix = text.substr(slash + 1);
  }
  int max_prefix = 0;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), &a6) == 1) {
    max_prefix = 128;
  } else {
    return false;
  }
  if (slash == std::string_view::npos) return true;
  uint64_t bits = 0;
  return prefix.size() <= 3 && ParseDecimal(prefix, &bits) &&
         bits <= static_cast<uint64_t>(max_prefix);
}

bool IsValidName(std::string_view text) {
  if (text.empty() || text.size() > 63) return false;
  if (!std::isalpha(static_cast<unsigned char>(text[0]))) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace hafab::manifest
