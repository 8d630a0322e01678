#include "manifest/model.h"

#include <algorithm>

#include "manifest/diagnostic.h"

namespace hafab::manifest {

std::string SourcePos::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::ToString() const {
  return pos.ToString() + (warning ? ": warning: " : ": error: ") + message;
}

bool HasErrors(const Diagnostics& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return !d.warning; });
}

}  // namespace hafab::manifest
