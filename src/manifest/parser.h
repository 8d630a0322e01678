// Reading, validating and printing manifests (the format is described in model.h and
// examples/quickstart.yaml).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifest/diagnostic.h"
#include "manifest/model.h"

namespace hafab::manifest {

struct ParseOutcome {
  std::optional<Manifest> manifest;  // set only when there is no error (warnings allowed)
  Diagnostics diagnostics;           // errors and warnings, in file order

  bool ok() const { return !HasErrors(diagnostics); }
};

// Parses and validates a manifest. Never throws. Every problem is reported, not only the
// first: YAML syntax errors (then nothing else, as the tree is unknown), unknown keys (with
// the closest known key), wrong types, missing or out-of-range values, and checks across
// fields and roles (validate.h). `file_name` is used only in diagnostics.
ParseOutcome ParseManifest(std::string_view yaml_text, const std::string& file_name);

// Reads `path` and parses it. An unreadable file gives one error naming the path and why.
ParseOutcome LoadManifestFile(const std::string& path);

// YAML that ParseManifest reads back to an equal Manifest (positions aside). Defaults are
// left out except for the fields every reader wants to see (name, mode, command, instances).
// REQUIRES: with an autoscale, role.instances == autoscale->min (as ParseManifest makes it).
std::string PrintManifest(const Manifest& manifest);

}  // namespace hafab::manifest
