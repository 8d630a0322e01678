// Diagnostic: one problem (or warning) found in a manifest, at the place it was written.
#pragma once

#include <string>
#include <vector>

#include "manifest/model.h"

namespace hafab::manifest {

struct Diagnostic {
  SourcePos pos;
  bool warning = false;  // warnings explain a consequence; they do not make a manifest invalid
  std::string message;   // names the field path, e.g. "roles[1].mode: ..."

  // "f.yaml:3:5: error: <message>" or "f.yaml:3:5: warning: <message>".
  std::string ToString() const;
};

using Diagnostics = std::vector<Diagnostic>;

// True when any diagnostic is an error (not a warning).
bool HasErrors(const Diagnostics& diagnostics);

}  // namespace hafab::manifest
