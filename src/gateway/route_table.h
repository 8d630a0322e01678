// RouteTable: the gateway's immutable routing snapshot, parsed from the controller's
// `GET /v1/routes` answer (docs/architecture.md). The data path holds a
// std::shared_ptr<const RouteTable>; a new table replaces the old one atomically.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gateway/acl.h"
#include "wire/routes.h"

namespace hafab::gateway {

// Active-passive: only the primary of the endpoint's current epoch; load-balanced: least
// connections across ready, non-busy backends.
using wire::RoutingMode;
using wire::RoutingModeName;

// A socket address with its length, ready for bind/connect.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;
  // "127.0.0.1:7000" or "[::1]:7000".
  std::string ToString() const;
  // Parses a numeric "host:port" or "[v6]:port" (no name lookup: the data path never
  // resolves names). Errors: InvalidArgument naming the text.
  static Result<SocketAddress> Parse(std::string_view host_port);
  // Numeric host and a port. Errors: InvalidArgument.
  static Result<SocketAddress> FromHostPort(const std::string& host, uint16_t port);
};

struct Backend {
  std::string instance;  // "kvd-0"
  std::string node;      // "n1"
  SocketAddress address;
  uint64_t epoch = 0;
  bool ready = false;
  bool busy = false;
  // Active-passive: a primary handing its connections over (a planned switchover, the drain
  // contract): no new connection goes to it; open ones stay until it closes them.
  bool handing_over = false;

  // Whether two backends are the same target (instance and address), whatever their state.
  bool SameTarget(const Backend& o) const;
};

struct Endpoint {
  std::string role;  // "kvd"; also the name used in metrics
  RoutingMode mode = RoutingMode::kLoadBalanced;
  std::string listen;  // as written in the table: the key that identifies the listener
  SocketAddress listen_address;
  uint64_t epoch = 0;     // active-passive: the epoch whose primary may serve
  uint64_t revision = 0;  // the routes version at which it last changed (0: not said)
  Acl allow;
  std::vector<Backend> backends;

  // Active-passive: index of the backend whose epoch equals `epoch` and that is ready and
  // not busy; -1 when there is none (a failover is under way).
  int PrimaryIndex() const;
  // Active-passive: whether an open connection to `target` (as connected, with its epoch)
  // may stay: it goes to the primary, or to a backend handing over at the endpoint's epoch.
  bool Keeps(const Backend& target) const;
  // Load-balanced: whether backends[i] may get a new connection (ready and not busy).
  bool Routable(size_t i) const { return backends[i].ready && !backends[i].busy; }
};

class RouteTable {
 public:
  using Endpoints = std::vector<std::shared_ptr<const Endpoint>>;

  // `listens`: every endpoint's listen, sorted, none twice (Compile checks it); `compiled`:
  // the indexes of the endpoints compiled for this table (the others were shared).
  RouteTable(uint64_t version, Endpoints endpoints,
             std::shared_ptr<const std::vector<std::string>> listens, std::vector<size_t> compiled)
      : version_(version),
        endpoints_(std::move(endpoints)),
        listens_(std::move(listens)),
        compiled_(std::move(compiled)) {}

  // Parses the JSON of `GET /v1/routes` (wire/routes.h) and compiles it. Errors:
  // InvalidArgument naming the field, e.g. "endpoints[0].backends[1].port: must be between 1
  // and 65535".
  static Result<std::shared_ptr<const RouteTable>> Parse(std::string_view json);
  // Errors: an address or CIDR that does not parse, two endpoints with the same `listen`.
  // With `previous`, an endpoint whose role, listen and (non-zero) revision it already has is
  // shared with it rather than compiled again: a change to one role of thousands costs one
  // endpoint's work (the controller lists endpoints sorted by role; out of order, an endpoint
  // is compiled anew). Its listens are checked against the others' in a sorted list carried
  // over from `previous` (shared when no listen changed), not hashed all again.
  static Result<std::shared_ptr<const RouteTable>> Compile(const wire::Routes& routes,
                                                           const RouteTable* previous = nullptr);

  uint64_t version() const { return version_; }
  const Endpoints& endpoints() const { return endpoints_; }
  // Indexes into endpoints() of those Compile compiled for this table (all without `previous`).
  const std::vector<size_t>& compiled() const { return compiled_; }
  // nullptr when no endpoint has this `listen`.
  const Endpoint* FindByListen(std::string_view listen) const;
  // nullptr when no endpoint serves `role`. Binary search when sorted by role (the
  // controller's order), else a scan.
  const Endpoint* FindByRole(std::string_view role) const;

 private:
  uint64_t version_;
  Endpoints endpoints_;
  std::shared_ptr<const std::vector<std::string>> listens_;
  std::vector<size_t> compiled_;
};

}  // namespace hafab::gateway
