// The gateway's endpoint ACL (gateway/acl.h): allow lists parsed from arbitrary text, and
// client addresses checked against them. Input: 17 bytes of client address (a byte whose
// low bit picks IPv4 or IPv6, then the address), then allow-list entries, one per line.
// Beyond not crashing: a parsed CIDR prints to a CIDR that parses back to the same, and
// every CIDR written from the client's own address, at any prefix, contains it.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/acl.h"

using hafab::gateway::Acl;
using hafab::gateway::Cidr;

namespace {

void Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 17) return 0;
  sockaddr_storage storage{};
  std::string client;
  char text[INET6_ADDRSTRLEN] = {};
  if (data[0] & 1) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, data + 1, 16);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    std::memcpy(&in4->sin_addr, data + 1, 4);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
  }
  const auto* addr = reinterpret_cast<const sockaddr*>(&storage);
  client = text;

  std::vector<std::string> entries;
  std::string_view rest(reinterpret_cast<const char*>(data) + 17, size - 17);
  while (!rest.empty() && entries.size() < 64) {
    size_t eol = rest.find('\n');
    entries.emplace_back(rest.substr(0, eol));
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
  }
  for (const std::string& e : entries) {
    auto c = Cidr::Parse(e);
    if (!c.ok()) continue;
    auto again = Cidr::Parse(c->ToString());
    if (!again.ok() || again->ToString() != c->ToString()) {
      Fail("\"" + e + "\" prints as " + c->ToString() + ", which does not read back");
    }
    (void)c->Contains(addr);
  }
  auto acl = Acl::Parse(entries);
  if (acl.ok()) (void)acl->Allows(addr);

  const int max_prefix = (data[0] & 1) ? 128 : 32;
  int prefix = data[0] % (max_prefix + 1);
  // A mapped client compares as IPv4: only a mapped CIDR of /96 or longer names IPv4 ones.
  if ((data[0] & 1) &&
      IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr)) {
    prefix = std::max(prefix, 96);
  }
  for (const std::string& written : {client, client + "/" + std::to_string(prefix)}) {
    auto own = Cidr::Parse(written);
    if (!own.ok()) Fail("client address " + written + " is not a CIDR: " + own.status().message());
    if (!own->Contains(addr)) Fail(written + " does not contain " + client);
  }
  return 0;
}
