// The manifest reader and validator (`hafab validate`, POST /v1/apply) on arbitrary text.
// Beyond not crashing: a manifest that parses without errors prints (PrintManifest) to YAML
// that parses again without errors, to the same text when printed once more.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/log.h"
#include "manifest/parser.h"

using hafab::manifest::ParseManifest;
using hafab::manifest::ParseOutcome;
using hafab::manifest::PrintManifest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ParseOutcome first = ParseManifest(text, "fuzz.yaml");
  if (!first.ok() || !first.manifest) return 0;
  const std::string printed = PrintManifest(*first.manifest);
  ParseOutcome second = ParseManifest(printed, "printed.yaml");
  if (!second.ok() || !second.manifest) {
    std::fprintf(stderr, "a valid manifest printed to one that does not parse:\n%s\n%s\n",
                 printed.c_str(),
                 second.diagnostics.empty() ? "" : second.diagnostics[0].ToString().c_str());
    std::abort();
  }
  if (PrintManifest(*second.manifest) != printed) {
    std::fprintf(stderr, "printing is not stable:\n%s\n", printed.c_str());
    std::abort();
  }
  return 0;
}
