#include "gateway/route_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace hafab::gateway {

std::string_view RoutingModeName(RoutingMode mode) {
  return mode == RoutingMode::kActivePassive ? "active-passive" : "load-balanced";
}

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

namespace {

using nlohmann::json;

// Field readers that name the field path in their errors.
Status Missing(const std::string& path, std::string_view what) {
  return Status::InvalidArgument(path + ": " + std::string(what));
}

Result<std::string> GetString(const json& obj, const std::string& path, const char* key,
                              bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Missing(path + "." + key, "is required");
    return std::string();
  }
  if (!it->is_string()) return Missing(path + "." + key, "must be a string");
  return it->get<std::string>();
}

Result<uint64_t> GetUint(const json& obj, const std::string& path, const char* key, bool required,
                         uint64_t max) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Missing(path + "." + key, "is required");
    return uint64_t{0};
  }
  if (!it->is_number_integer() ||
      (it->is_number_integer() && it->get<int64_t>() < 0 && !it->is_number_unsigned())) {
    return Missing(path + "." + key, "must be a non-negative integer");
  }
  uint64_t v = it->get<uint64_t>();
  if (v > max) return Missing(path + "." + key, "must be at most " + std::to_string(max));
  return v;
}

Result<bool> GetBool(const json& obj, const std::string& path, const char* key, bool dflt) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return Missing(path + "." + key, "must be true or false");
  return it->get<bool>();
}

Result<Backend> ParseBackend(const json& j, const std::string& path) {
  if (!j.is_object()) return Missing(path, "must be an object");
  Backend b;
  HAFAB_ASSIGN_OR_RETURN(b.instance, GetString(j, path, "instance", true));
  HAFAB_ASSIGN_OR_RETURN(b.node, GetString(j, path, "node", false));
  HAFAB_ASSIGN_OR_RETURN(std::string address, GetString(j, path, "address", true));
  HAFAB_ASSIGN_OR_RETURN(uint64_t port, GetUint(j, path, "port", true, 65535));
  if (port == 0) return Missing(path + ".port", "must be an integer 1..65535");
  auto addr = SocketAddress::FromHostPort(address, static_cast<uint16_t>(port));
  if (!addr.ok()) return Missing(path + ".address", addr.status().message());
  b.address = *addr;
  HAFAB_ASSIGN_OR_RETURN(b.epoch, GetUint(j, path, "epoch", false, UINT64_MAX));
  HAFAB_ASSIGN_OR_RETURN(b.ready, GetBool(j, path, "ready", false));
  HAFAB_ASSIGN_OR_RETURN(b.busy, GetBool(j, path, "busy", false));
  HAFAB_ASSIGN_OR_RETURN(b.handing_over, GetBool(j, path, "handing_over", false));
  return b;
}

Result<Endpoint> ParseEndpoint(const json& j, const std::string& path) {
  if (!j.is_object()) return Missing(path, "must be an object");
  Endpoint e;
  HAFAB_ASSIGN_OR_RETURN(e.role, GetString(j, path, "role", true));
  HAFAB_ASSIGN_OR_RETURN(std::string mode, GetString(j, path, "mode", true));
  if (mode == "active-passive") {
    e.mode = RoutingMode::kActivePassive;
  } else if (mode == "load-balanced") {
    e.mode = RoutingMode::kLoadBalanced;
  } else {
    return Missing(path + ".mode",
                   "must be \"active-passive\" or \"load-balanced\", not \"" + mode + "\"");
  }
  HAFAB_ASSIGN_OR_RETURN(e.listen, GetString(j, path, "listen", true));
  auto listen = SocketAddress::Parse(e.listen);
  if (!listen.ok()) return Missing(path + ".listen", listen.status().message());
  e.listen_address = *listen;
  HAFAB_ASSIGN_OR_RETURN(e.epoch, GetUint(j, path, "epoch", false, UINT64_MAX));
  if (auto it = j.find("allow"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Missing(path + ".allow", "must be an array of CIDRs");
    std::vector<Cidr> cidrs;
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string p = path + ".allow[" + std::to_string(i) + "]";
      if (!(*it)[i].is_string()) return Missing(p, "must be a string");
      auto c = Cidr::Parse((*it)[i].get<std::string>());
      if (!c.ok()) return Missing(p, c.status().message());
      cidrs.push_back(*c);
    }
    e.allow = Acl(std::move(cidrs));
  }
  if (auto it = j.find("backends"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Missing(path + ".backends", "must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      HAFAB_ASSIGN_OR_RETURN(Backend b,
                             ParseBackend((*it)[i], path + ".backends[" + std::to_string(i) + "]"));
      e.backends.push_back(std::move(b));
    }
  }
  return e;
}

}  // namespace

Result<std::shared_ptr<const RouteTable>> RouteTable::Parse(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("routes: not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("routes: must be a JSON object");
  HAFAB_ASSIGN_OR_RETURN(uint64_t version, GetUint(j, "routes", "version", true, UINT64_MAX));
  std::vector<Endpoint> endpoints;
  std::set<std::string> listens;
  if (auto it = j.find("endpoints"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Status::InvalidArgument("endpoints: must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string path = "endpoints[" + std::to_string(i) + "]";
      HAFAB_ASSIGN_OR_RETURN(Endpoint e, ParseEndpoint((*it)[i], path));
      if (!listens.insert(e.listen).second) {
        return Status::InvalidArgument(path + ".listen: \"" + e.listen +
                                       "\" is used by another endpoint");
      }
      endpoints.push_back(std::move(e));
    }
  }
  return std::shared_ptr<const RouteTable>(
      std::make_shared<RouteTable>(version, std::move(endpoints)));
}

}  // namespace hafab::gateway
