// Logging setup on spdlog. Code logs with spdlog::info(...) etc. after InitLogging.
#pragma once

#include <string_view>

#include "core/status.h"

namespace hafab {

// Sets the default spdlog logger to stderr with `component` as its name.
// format: "text" (human) or "json" (one object per line: ts, level, component, msg).
// level: trace, debug, info, warn, error.
// Errors: InvalidArgument naming the bad value and the allowed ones.
Status InitLogging(std::string_view component, std::string_view format, std::string_view level);

}  // namespace hafab
