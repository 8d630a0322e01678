// Durations as people write them in manifests and flags: "200ms", "2s", "1m", "1h30m".
#pragma once

#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace hafab {

// Accepts one or more <number><unit> parts, unit one of ns, us, ms, s, m, h; "0" alone is zero.
// Errors: InvalidArgument naming the bad text and the allowed units.
Result<Duration> ParseDuration(std::string_view text);

// The shortest exact form: 1500ms -> "1500ms", 2s -> "2s", 90s -> "90s", 0 -> "0s".
std::string FormatDuration(Duration d);

}  // namespace hafab
