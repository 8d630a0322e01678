#include "gateway/route_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

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
    if (e->listen == listen) return e.get();
  }
  return nullptr;
}

const Endpoint* RouteTable::FindByRole(std::string_view role) const {
  auto at = std::lower_bound(endpoints_.begin(), endpoints_.end(), role,
                             [](const auto& e, std::string_view r) { return e->role < r; });
  if (at != endpoints_.end() && (*at)->role == role) return at->get();
  for (const auto& e : endpoints_) {  // not sorted by role
    if (e->role == role) return e.get();
  }
  return nullptr;
}

Result<std::shared_ptr<const RouteTable>> RouteTable::Parse(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("routes: not valid JSON");
  HAFAB_ASSIGN_OR_RETURN(wire::Routes routes, wire::ParseRoutes(j));
  return Compile(routes);
}

namespace {

Result<std::shared_ptr<const Endpoint>> CompileEndpoint(const wire::RouteEndpoint& in,
                                                        size_t index) {
  auto bad = [&](const std::string& member, const Status& st) {
    return Status::InvalidArgument("endpoints[" + std::to_string(index) + "]" + member + ": " +
                                   st.message());
  };
  auto e = std::make_shared<Endpoint>();
  e->role = in.role;
  e->mode = in.mode;
  e->listen = in.listen;
  auto listen = SocketAddress::Parse(e->listen);
  if (!listen.ok()) return bad(".listen", listen.status());
  e->listen_address = *listen;
  e->epoch = static_cast<uint64_t>(in.epoch);
  e->revision = static_cast<uint64_t>(in.revision);
  if (in.allow) {
    std::vector<Cidr> cidrs;
    for (size_t k = 0; k < in.allow->size(); ++k) {
      auto c = Cidr::Parse((*in.allow)[k]);
      if (!c.ok()) return bad(".allow[" + std::to_string(k) + "]", c.status());
      cidrs.push_back(*c);
    }
    e->allow = Acl(std::move(cidrs));
  }
  e->backends.reserve(in.backends.size());
  for (size_t k = 0; k < in.backends.size(); ++k) {
    const wire::RouteBackend& b = in.backends[k];
    auto addr = SocketAddress::FromHostPort(b.address, static_cast<uint16_t>(b.port));
    if (!addr.ok()) return bad(".backends[" + std::to_string(k) + "].address", addr.status());
    e->backends.push_back({b.instance, b.node, *addr, static_cast<uint64_t>(b.epoch), b.ready,
                           b.busy, b.handing_over});
  }
  return std::shared_ptr<const Endpoint>(std::move(e));
}

}  // namespace

Result<std::shared_ptr<const RouteTable>> RouteTable::Compile(const wire::Routes& routes,
                                                              const RouteTable* previous) {
  Endpoints endpoints;
  endpoints.reserve(routes.endpoints.size());
  std::vector<size_t> compiled;
  // The listens of the endpoints compiled anew with a listen their role did not have (with
  // their index), and of those of `previous` not carried over with the same listen; each
  // endpoint of `previous` is carried over at most once.
  std::vector<std::pair<std::string_view, size_t>> added;
  std::vector<std::string_view> gone;
  const Endpoints* old = previous != nullptr ? &previous->endpoints_ : nullptr;
  size_t p = 0;  // walks `previous` alongside, both sorted by role
  for (size_t i = 0; i < routes.endpoints.size(); ++i) {
    const wire::RouteEndpoint& in = routes.endpoints[i];
    std::shared_ptr<const Endpoint> e;
    bool listen_kept = false;  // compiled anew, on the listen its role had
    if (old != nullptr && in.revision != 0) {
      while (p < old->size() && (*old)[p]->role < in.role) gone.push_back((*old)[p++]->listen);
      if (p < old->size() && (*old)[p]->role == in.role) {
        const auto& o = (*old)[p++];
        if (o->listen == in.listen) {
          listen_kept = true;
          if (o->revision == static_cast<uint64_t>(in.revision)) e = o;
        } else {
          gone.push_back(o->listen);
        }
      }
    }
    if (!e) {
      HAFAB_ASSIGN_OR_RETURN(e, CompileEndpoint(in, i));
      compiled.push_back(i);
      if (!listen_kept) added.emplace_back(e->listen, i);
    }
    endpoints.push_back(std::move(e));
  }
  std::vector<std::string_view> kept;  // what `previous` had, less what is gone
  if (old != nullptr) {
    for (; p < old->size(); ++p) gone.push_back((*old)[p]->listen);
    if (gone.empty() && added.empty()) {  // the same listens: shared
      return std::make_shared<const RouteTable>(static_cast<uint64_t>(routes.version),
                                                std::move(endpoints), previous->listens_,
                                                std::move(compiled));
    }
    std::sort(gone.begin(), gone.end());
    kept.reserve(previous->listens_->size());
    std::set_difference(previous->listens_->begin(), previous->listens_->end(), gone.begin(),
                        gone.end(), std::back_inserter(kept));
  }
  // In the order of the endpoints, the first compiled anew whose listen is taken (by one kept,
  // or by an earlier one) is the error.
  std::sort(added.begin(), added.end());  // by listen, then index
  std::optional<std::pair<size_t, std::string_view>> first_taken;
  for (size_t j = 0; j < added.size(); ++j) {
    const auto& [listen, i] = added[j];
    const bool taken = (j > 0 && added[j - 1].first == listen) ||
                       std::binary_search(kept.begin(), kept.end(), listen);
    if (taken && (!first_taken || i < first_taken->first)) first_taken = {i, listen};
  }
  if (first_taken) {
    return Status::InvalidArgument("endpoints[" + std::to_string(first_taken->first) +
                                   "].listen: \"" + std::string(first_taken->second) +
                                   "\" is used by another endpoint");
  }
  auto listens = std::make_shared<std::vector<std::string>>();  // kept and added, merged
  listens->reserve(kept.size() + added.size());
  auto k = kept.begin();
  for (const auto& [listen, i] : added) {
    while (k != kept.end() && *k < listen) listens->emplace_back(*k++);
    listens->emplace_back(listen);
  }
  listens->insert(listens->end(), k, kept.end());
  return std::make_shared<const RouteTable>(static_cast<uint64_t>(routes.version),
                                            std::move(endpoints), std::move(listens),
                                            std::move(compiled));
}

}  // namespace hafab::gateway
