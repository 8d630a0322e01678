#include "gateway/route_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace hafab::gateway {

uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
}

std::string SocketAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(port());
}

Result<SocketAddress> SocketAddress::FromHostPort(const std::string& host, uint16_t port) {
  SocketAddress a;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
    return a;
  }
  std::memset(&a.storage, 0, sizeof a.storage);
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return Status::InvalidArgument("\"" + host + "\" is not a numeric IPv4 or IPv6 address");
}

Result<SocketAddress> SocketAddress::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("bad address \"" + std::string(text) +
                                   "\": " + std::string(why));
  };
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("expected [ipv6]:port");
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    host = std::string(text.substr(0, colon));
    if (host.find(':') != std::string::npos) return bad("write IPv6 addresses as [addr]:port");
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad("port must be a number 0..65535");
  }
  auto a = FromHostPort(host, static_cast<uint16_t>(port));
  if (!a.ok()) return bad(a.status().message());
  return a;
}

bool Backend::SameTarget(const Backend& o) const {
  return instance == o.instance && address.length == o.address.length &&
         std::memcmp(&address.storage, &o.address.storage, address.length) == 0;
}

int Endpoint::PrimaryIndex() const {
  for (size_t i = 0; i < backends.size(); ++i) {
    const Backend& b = backends[i];
    if (b.epoch == epoch && b.ready && !b.busy) return static_cast<int>(i);
  }
  return -1;
}

bool Endpoint::Keeps(const Backend& target) const {
  for (const Backend& b : backends) {
    if (b.epoch == epoch && target.epoch == epoch && b.SameTarget(target) &&
        ((b.ready && !b.busy) || b.handing_over)) {
      return true;
    }
  }
  return false;
}

const Endpoint* RouteTable::FindByListen(std::string_view listen) const {
  for (const auto& e : endpoints_) {
    if (e.listen == listen) return &e;
  }
  return nullptr;
}

Result<std::shared_ptr<const RouteTable>> RouteTable::Parse(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("routes: not valid JSON");
  HAFAB_ASSIGN_OR_RETURN(wire::Routes routes, wire::ParseRoutes(j));
  return Compile(routes);
}

Result<std::shared_ptr<const RouteTable>> RouteTable::Compile(const wire::Routes& routes) {
  auto bad = [](const std::string& path, const Status& st) {
    return Status::InvalidArgument(path + ": " + st.message());
  };
  std::vector<Endpoint> endpoints;
  std::set<std::string> listens;
  for (size_t i = 0; i < routes.endpoints.size(); ++i) {
    const wire::RouteEndpoint& in = routes.endpoints[i];
    const std::string path = "endpoints[" + std::to_string(i) + "]";
    Endpoint e;
    e.role = in.role;
    e.mode = in.mode;
    e.listen = in.listen;
    auto listen = SocketAddress::Parse(e.listen);
    if (!listen.ok()) return bad(path + ".listen", listen.status());
    if (!listens.insert(e.listen).second) {
      return Status::InvalidArgument(path + ".listen: \"" + e.listen +
                                     "\" is used by another endpoint");
    }
    e.listen_address = *listen;
    e.epoch = static_cast<uint64_t>(in.epoch);
    if (in.allow) {
      std::vector<Cidr> cidrs;
      for (size_t k = 0; k < in.allow->size(); ++k) {
        auto c = Cidr::Parse((*in.allow)[k]);
        if (!c.ok()) return bad(path + ".allow[" + std::to_string(k) + "]", c.status());
        cidrs.push_back(*c);
      }
      e.allow = Acl(std::move(cidrs));
    }
    for (size_t k = 0; k < in.backends.size(); ++k) {
      const wire::RouteBackend& b = in.backends[k];
      auto addr = SocketAddress::FromHostPort(b.address, static_cast<uint16_t>(b.port));
      if (!addr.ok()) {
        return bad(path + ".backends[" + std::to_string(k) + "].address", addr.status());
      }
      e.backends.push_back({b.instance, b.node, *addr, static_cast<uint64_t>(b.epoch), b.ready,
                            b.busy, b.handing_over});
    }
    endpoints.push_back(std::move(e));
  }
  return std::shared_ptr<const RouteTable>(
      std::make_shared<RouteTable>(static_cast<uint64_t>(routes.version), std::move(endpoints)));
}

}  // namespace hafab::gateway
