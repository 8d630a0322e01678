// Helpers shared by the manifest tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "manifest/parser.h"

namespace hafab::manifest {

// Every diagnostic of `yaml` (read as "m.yaml"), formatted as `hafab validate` prints it.
inline std::vector<std::string> DiagnosticsOf(std::string_view yaml) {
  std::vector<std::string> out;
  for (const Diagnostic& d : ParseManifest(yaml, "m.yaml").diagnostics) out.push_back(d.ToString());
  return out;
}

// A role with everything a valid role needs, for tests that vary one field: append lines
// indented by four spaces to add fields.
inline constexpr std::string_view kOneRole =
    "roles:\n"
    "  - name: web\n"
    "    command: web-app\n";

}  // namespace hafab::manifest
