// LeaderHint: the leader's URL that a follower controller replica names in its answer
// `503 {"error": "not leader", "leader": "http://…"}` (controller/replica.h), so that
// agents, gateways and the CLI go to the leader directly instead of trying each URL.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "http/http.h"

namespace hafab::http {

// The "leader" member of a 503's JSON body, without trailing slashes; "" when the answer
// is not a "not leader" answer or no leader is known (an election is under way).
inline std::string LeaderHint(const Response& r) {
  if (r.status != 503) return "";
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("leader") || !j["leader"].is_string()) return "";
  std::string url = j["leader"].get<std::string>();
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace hafab::http
