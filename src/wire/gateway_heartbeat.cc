#include "wire/gateway_heartbeat.h"

#include "manifest/limits.h"
#include "wire/fields.h"

namespace hafab::wire {

using nlohmann::json;

json ToJson(const GatewayHeartbeat& hb) {
  return {{"routes_version", hb.routes_version}, {"active", hb.active}};
}

Result<GatewayHeartbeat> ParseGatewayHeartbeat(const json& body) {
  if (!body.is_object()) return Status::InvalidArgument("body: must be a JSON object");
  GatewayHeartbeat hb;
  HAFAB_RETURN_IF_ERROR(Read(body, "routes_version", "", &hb.routes_version));
  auto active = body.find("active");
  if (active == body.end() || active->is_null()) return hb;
  if (!active->is_object()) return Status::InvalidArgument("active: must be an object");
  if (active->size() > static_cast<size_t>(manifest::kMaxTotalInstances)) {
    return Status::InvalidArgument("active: " + std::to_string(active->size()) +
                                   " instances; at most " +
                                   std::to_string(manifest::kMaxTotalInstances));
  }
  for (const auto& [instance, n] : active->items()) {
    uint64_t count = 0;
    HAFAB_RETURN_IF_ERROR(Read(*active, instance, "active", &count));
    hb.active[instance] = count;
  }
  return hb;
}

}  // namespace hafab::wire
