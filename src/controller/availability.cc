#include "controller/availability.h"

#include <algorithm>

namespace hafab::controller {

using nlohmann::json;

bool AvailabilityLog::Record(bool routable, int64_t at_ms) {
  if (routable == this->routable()) return false;
  if (routable) {
    outages_.back().second = std::max(at_ms, outages_.back().first);
  } else {
    outages_.emplace_back(at_ms, 0);
  }
  return true;
}

AvailabilityLog::Report AvailabilityLog::Over(int64_t window_ms, int64_t now_ms) const {
  Report r;
  r.from_ms = std::max(since_ms_, now_ms - window_ms);
  r.to_ms = std::max(r.from_ms, now_ms);
  for (const auto& [start, end] : outages_) {
    int64_t s = std::max(start, r.from_ms);
    int64_t e = std::min(end == 0 ? r.to_ms : end, r.to_ms);
    if (end != 0 ? e <= s : start > r.to_ms) continue;  // an open outage counts from its start
    r.unavailable_ms += std::max<int64_t>(0, e - s);
    ++r.outages;
    r.windows.emplace_back(s, e);
  }
  return r;
}

void AvailabilityLog::Trim(size_t n) {
  while (outages_.size() > n && outages_.front().second != 0) {
    since_ms_ = outages_.front().second;
    outages_.erase(outages_.begin());
  }
}

json AvailabilityLog::ToJson() const {
  json out = json::array();
  for (const auto& [s, e] : outages_) out.push_back({s, e});
  return {{"since_ms", since_ms_}, {"outages", out}};
}

Result<AvailabilityLog> AvailabilityLog::FromJson(const json& j) {
  if (!j.is_object() || !j.contains("since_ms") || !j["since_ms"].is_number_integer()) {
    return Status::InvalidArgument("availability: since_ms missing");
  }
  AvailabilityLog log(j["since_ms"].get<int64_t>());
  for (const auto& o : j.value("outages", json::array())) {
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_integer() || !o[1].is_number_integer()) {
      return Status::InvalidArgument("availability: an outage is [start_ms, end_ms]");
    }
    log.outages_.emplace_back(o[0].get<int64_t>(), o[1].get<int64_t>());
  }
  return log;
}

}  // namespace hafab::controller
