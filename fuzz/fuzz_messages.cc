// The messages the daemons take from the controller: the gateway's route table
// (GET /v1/routes: wire::ParseRoutes, then RouteTable::Compile, as RouteTable::Parse does),
// the heartbeat answer both the agent and the gateway
// read (wire::ParseHeartbeatAnswer: their lease), the agent's assignments
// (GET /v1/agents/{node}/assignments). The first byte of the input picks the parser; the
// rest is the body. Beyond not crashing: an answer that parses prints (wire::ToJson) to one
// that parses to the same, with a lease a deadline can be computed from.
#include <cstdint>
#include <string>

#include "core/json.h"
#include "gateway/route_table.h"
#include "manifest/limits.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"
#include "wire/routes.h"

using namespace hafab;

namespace {

void CheckTable(const gateway::RouteTable& table) {
  for (const auto& ep : table.endpoints()) {
    const gateway::Endpoint& e = *ep;
    // What the proxy does with a table: find listeners, pick backends, print addresses.
    if (table.FindByListen(e.listen) != &e) std::abort();
    if (table.FindByRole(e.role) == nullptr) std::abort();
    (void)e.listen_address.ToString();
    int primary = e.PrimaryIndex();
    if (primary >= static_cast<int>(e.backends.size())) std::abort();
    for (size_t i = 0; i < e.backends.size(); ++i) {
      (void)e.Routable(i);
      (void)e.Keeps(e.backends[i]);
      (void)e.backends[i].address.ToString();
      (void)e.allow.Allows(e.backends[i].address.get());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      auto routes = wire::ParseRoutes(j);
      if (routes.ok()) {
        auto again = wire::ParseRoutes(wire::ToJson(*routes));
        if (!again.ok() || again->version != routes->version ||
            again->endpoints != routes->endpoints) {
          std::abort();
        }
      }
      auto table = gateway::RouteTable::Parse(body);
      if (table.ok() != routes.ok() && table.ok()) std::abort();  // Parse is ParseRoutes first
      if (table.ok()) CheckTable(**table);
      break;
    }
    case 1: {
      auto answer = wire::ParseHeartbeatAnswer(body);
      if (!answer.ok()) break;
      if (answer->lease_ttl <= Duration::zero() || answer->lease_ttl > manifest::kMaxLeaseTtl) {
        std::abort();
      }
      (void)(RealClock().Now() + answer->lease_ttl);  // the agent's and the gateway's deadline
      auto again = wire::ParseHeartbeatAnswer(wire::ToJson(*answer).dump());
      if (!again.ok() || again->lease_ttl != answer->lease_ttl ||
          again->assignments_generation != answer->assignments_generation) {
        std::abort();
      }
      break;
    }
    case 2: {
      auto list = wire::ParseAssignments(body);
      if (list.ok()) {
        for (const auto& a : list->assignments) {
          auto again = wire::ParseAssignment(Dump(wire::ToJson(a)));
          if (!again.ok() || !(*again == a)) std::abort();
          (void)(RealClock().Now() + a.stop_grace);
        }
      }
      break;
    }
  }
  return 0;
}
