#include "core/duration.h"

#include <cctype>
#include <cstdint>
#include <limits>

namespace hafab {

Result<Duration> ParseDuration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("invalid duration \"" + std::string(text) +
                                   "\": " + std::string(why) +
                                   " (write e.g. 200ms, 2s, 1m; units: ns, us, ms, s, m, h)");
  };
  if (text.empty()) return bad("empty");
  if (text == "0") return Duration::zero();
  std::chrono::nanoseconds total{0};
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return bad("expected a number");
    uint64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + static_cast<uint64_t>(text[i] - '0');
      if (n > 1'000'000'000'000ULL) return bad("number too large");
      ++i;
    }
    size_t u = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(u, i - u);
    int64_t unit_ns = 0;
    if (unit == "ns")
      unit_ns = 1;
    else if (unit == "us")
      unit_ns = 1'000;
    else if (unit == "ms")
      unit_ns = 1'000'000;
    else if (unit == "s")
      unit_ns = 1'000'000'000;
    else if (unit == "m")
      unit_ns = 60'000'000'000;
    else if (unit == "h")
      unit_ns = 3'600'000'000'000;
    else if (unit.empty())
      return bad("missing unit");
    else
      return bad("unknown unit \"" + std::string(unit) + "\"");
    // The total is int64 nanoseconds (about 292 years); checked before it can overflow.
    const auto room = static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - total.count());
    if (n > room / static_cast<uint64_t>(unit_ns)) return bad("too long");
    total += std::chrono::nanoseconds(static_cast<int64_t>(n) * unit_ns);
  }
  return std::chrono::duration_cast<Duration>(total);
}

std::string FormatDuration(Duration d) {
  using namespace std::chrono;
  auto ns = duration_cast<nanoseconds>(d).count();
  if (ns == 0) return "0s";
  struct Unit {
    int64_t size;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {3'600'000'000'000LL, "h"}, {60'000'000'000LL, "m"}, {1'000'000'000LL, "s"},
      {1'000'000LL, "ms"},        {1'000LL, "us"},         {1LL, "ns"}};
  for (const Unit& u : kUnits) {
    if (ns % u.size == 0) return std::to_string(ns / u.size) + u.name;
  }
  return std::to_string(ns) + "ns";
}

}  // namespace hafab
