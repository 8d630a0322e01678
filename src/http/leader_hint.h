// LeaderHint: the leader's URL that a follower controller replica names in its answer
// `503 {"error": "not leader", "leader": "http://…"}` (controller/replica.h), so that
// agents, gateways and the CLI go to the leader directly instead of trying each URL.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

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

// The index in `urls` of the leader `r` names, when it names one of them.
inline std::optional<size_t> LeaderIndex(const Response& r, const std::vector<std::string>& urls) {
  const std::string leader = LeaderHint(r);
  if (leader.empty()) return std::nullopt;
  auto it = std::find(urls.begin(), urls.end(), leader);
  if (it == urls.end()) return std::nullopt;
  return static_cast<size_t>(it - urls.begin());
}

}  // namespace hafab::http
