#include "core/duration.h"

#include <cctype>
#include <cstdint>

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
    using namespace std::chrono;
    if (unit == "ns")
      total += nanoseconds(n);
    else if (unit == "us")
      total += microseconds(n);
    else if (unit == "ms")
      total += milliseconds(n);
    else if (unit == "s")
      total += seconds(n);
    else if (unit == "m")
      total += minutes(n);
    else if (unit == "h")
      total += hours(n);
    else if (unit.empty())
      return bad("missing unit");
    else
      return bad("unknown unit \"" + std::string(unit) + "\"");
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
