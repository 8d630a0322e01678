// The heartbeats the controller reads: wire::ParseAgentHeartbeat and
// wire::ParseGatewayHeartbeat, then what the controller decides from them. Each body is
// parsed as the API does and, when it parses, printed (wire::ToJson) and parsed again: the
// same message. Then it goes through the controller's real handler (POST
// /v1/agents/n1/heartbeat, /v1/gateways/gw2/heartbeat) while the quickstart runs on n1..n3
// (fabric.h): n2 and n3 keep reporting, the controller ticks every 100 ms (failovers,
// placement, fencing). Input: heartbeat bodies separated by "\n%%\n"; a body that starts with
// "gw " is gateway gw2's (the rest of the part), any other node n1's.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fabric.h"
#include "wire/agent_heartbeat.h"
#include "wire/gateway_heartbeat.h"

namespace {

using nlohmann::json;

// Parses `body` as `parse` does and checks the round trip of what parsed.
template <typename Parse>
void RoundTrip(std::string_view body, Parse parse) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto first = parse(j);
  if (!first.ok()) return;
  const json printed = hafab::wire::ToJson(*first);
  auto second = parse(printed);
  if (!second.ok()) {
    hafab::fuzz::Fail("a parsed heartbeat printed to one that does not parse: " +
                      second.status().message() + "\n" + printed.dump());
  }
  if (hafab::wire::ToJson(*second) != printed) {
    hafab::fuzz::Fail("a heartbeat does not print the same after a round trip:\n" + printed.dump() +
                      "\n" + hafab::wire::ToJson(*second).dump());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hafab::fuzz::Fabric fabric;
  fabric.Advance();  // every instance placed, started and reported
  fabric.Advance();
  int parts = 0;
  for (std::string_view part :
       hafab::fuzz::SplitParts({reinterpret_cast<const char*>(data), size})) {
    if (++parts > 50) break;
    if (part.starts_with("gw ")) {
      part.remove_prefix(3);
      RoundTrip(part, [](const json& j) { return hafab::wire::ParseGatewayHeartbeat(j); });
      fabric.Send("POST", "/v1/gateways/gw2/heartbeat", std::string(part));
    } else {
      RoundTrip(part, [](const json& j) { return hafab::wire::ParseAgentHeartbeat(j); });
      fabric.Send("POST", "/v1/agents/n1/heartbeat", std::string(part));
    }
    fabric.Advance({"n2", "n3"});
  }
  fabric.Finish();
  return 0;
}
