#include "wire/routes.h"

#include "wire/fields.h"

namespace hafab::wire {

using nlohmann::json;

std::string_view RoutingModeName(RoutingMode m) {
  return m == RoutingMode::kActivePassive ? "active-passive" : "load-balanced";
}

std::optional<RoutingMode> ParseRoutingMode(std::string_view name) {
  if (name == "active-passive") return RoutingMode::kActivePassive;
  if (name == "load-balanced") return RoutingMode::kLoadBalanced;
  return std::nullopt;
}

std::string RoutingModeNames() { return "active-passive, load-balanced"; }

json ToJson(const Routes& routes) {
  json endpoints = json::array();
  for (const RouteEndpoint& e : routes.endpoints) {
    json backends = json::array();
    for (const RouteBackend& b : e.backends) {
      json j = {{"instance", b.instance}, {"node", b.node},   {"address", b.address},
                {"port", b.port},         {"epoch", b.epoch}, {"ready", b.ready},
                {"busy", b.busy}};
      if (b.handing_over) j["handing_over"] = true;
      backends.push_back(std::move(j));
    }
    json j = {{"role", e.role},
              {"mode", RoutingModeName(e.mode)},
              {"listen", e.listen},
              {"epoch", e.epoch},
              {"backends", std::move(backends)}};
    if (e.allow) j["allow"] = *e.allow;
    if (e.revision != 0) j["revision"] = e.revision;
    endpoints.push_back(std::move(j));
  }
  return {{"version", routes.version}, {"endpoints", std::move(endpoints)}};
}

namespace {

Status Required(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) return Status::Ok();
  return Status::InvalidArgument(Where(path, key) + ": required");
}

Status ParseBackend(const json& j, const std::string& path, RouteBackend* b) {
  if (!j.is_object()) return Status::InvalidArgument(path + ": must be an object");
  for (const char* key : {"instance", "address", "port"}) {
    HAFAB_RETURN_IF_ERROR(Required(j, key, path));
  }
  HAFAB_RETURN_IF_ERROR(Read(j, "instance", path, &b->instance));
  HAFAB_RETURN_IF_ERROR(Read(j, "node", path, &b->node));
  HAFAB_RETURN_IF_ERROR(Read(j, "address", path, &b->address));
  int64_t port = 0;
  HAFAB_RETURN_IF_ERROR(Read(j, "port", path, &port, 1, 65535));
  b->port = static_cast<int>(port);
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", path, &b->epoch, 0));
  HAFAB_RETURN_IF_ERROR(Read(j, "ready", path, &b->ready));
  HAFAB_RETURN_IF_ERROR(Read(j, "busy", path, &b->busy));
  HAFAB_RETURN_IF_ERROR(Read(j, "handing_over", path, &b->handing_over));
  return Status::Ok();
}

Status ParseEndpoint(const json& j, const std::string& path, RouteEndpoint* e) {
  if (!j.is_object()) return Status::InvalidArgument(path + ": must be an object");
  for (const char* key : {"role", "mode", "listen"}) HAFAB_RETURN_IF_ERROR(Required(j, key, path));
  HAFAB_RETURN_IF_ERROR(Read(j, "role", path, &e->role));
  HAFAB_RETURN_IF_ERROR(ReadEnum(j, "mode", path, &ParseRoutingMode, &RoutingModeNames, &e->mode));
  HAFAB_RETURN_IF_ERROR(Read(j, "listen", path, &e->listen));
  if (auto it = j.find("allow"); it != j.end() && !it->is_null()) {
    e->allow.emplace();
    HAFAB_RETURN_IF_ERROR(Read(j, "allow", path, &*e->allow));
  }
  HAFAB_RETURN_IF_ERROR(Read(j, "epoch", path, &e->epoch, 0));
  HAFAB_RETURN_IF_ERROR(Read(j, "revision", path, &e->revision, 0));
  const json* list = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadArray(j, "backends", path, SIZE_MAX, &list));
  e->backends.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    HAFAB_RETURN_IF_ERROR(
        ParseBackend((*list)[i], At(Where(path, "backends"), i), &e->backends[i]));
  }
  return Status::Ok();
}

}  // namespace

Result<Routes> ParseRoutes(const json& body) {
  if (!body.is_object()) return Status::InvalidArgument("routes: must be a JSON object");
  Routes routes;
  HAFAB_RETURN_IF_ERROR(Required(body, "version", ""));
  HAFAB_RETURN_IF_ERROR(Read(body, "version", "", &routes.version, 0));
  const json* list = nullptr;
  HAFAB_RETURN_IF_ERROR(ReadArray(body, "endpoints", "", SIZE_MAX, &list));
  routes.endpoints.resize(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    HAFAB_RETURN_IF_ERROR(ParseEndpoint((*list)[i], At("endpoints", i), &routes.endpoints[i]));
  }
  return routes;
}

}  // namespace hafab::wire
