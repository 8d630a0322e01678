// Every request the controller's API parses: URL paths and parameters and JSON bodies, in
// sequences, through the real handler (fabric.h) of a controller running the quickstart.
// Input: requests separated by "\n%%\n"; each is "METHOD TARGET" on its first line, then the
// body. "READ METHOD TARGET" sends the read token. A part "TICK" lets 100 ms pass instead
// (agents report, the controller ticks, long-polls expire).
#include <cstdint>
#include <string>
#include <string_view>

#include "fabric.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hafab::fuzz::Fabric fabric;
  int ticks = 0;
  for (std::string_view part :
       hafab::fuzz::SplitParts({reinterpret_cast<const char*>(data), size})) {
    if (part == "TICK") {
      if (++ticks <= 50) fabric.Advance();
      continue;
    }
    size_t eol = part.find('\n');
    std::string_view line = part.substr(0, eol);
    std::string body(eol == std::string_view::npos ? "" : part.substr(eol + 1));
    std::string token = "admin";
    if (line.starts_with("READ ")) {
      token = "read";
      line.remove_prefix(5);
    }
    size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    fabric.Send(std::string(line.substr(0, space)), line.substr(space + 1), std::move(body), token);
  }
  fabric.Finish();
  return 0;
}
