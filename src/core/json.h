// JSON serialization that never throws, for every daemon's answers, records and logs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hafab {

// Compact JSON text of `j`. A string holding invalid UTF-8 (which only outside input can
// bring in) is written with U+FFFD in place of each bad byte instead of throwing
// nlohmann's type_error 316, which would abort a daemon.
inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hafab
