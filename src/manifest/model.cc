#include "manifest/model.h"

#include <algorithm>

#include "manifest/diagnostic.h"

namespace hafab::manifest {

std::string_view RoleModeName(RoleMode m) {
  switch (m) {
    case RoleMode::kActivePassive:
      return "active-passive";
    case RoleMode::kLoadBalanced:
      return "load-balanced";
    case RoleMode::kReplicated:
      return "replicated";
  }
  return "?";
}

std::string_view ProbeKindName(ProbeKind k) {
  switch (k) {
    case ProbeKind::kTcp:
      return "tcp";
    case ProbeKind::kHttp:
      return "http";
    case ProbeKind::kExec:
      return "exec";
  }
  return "?";
}

std::string_view RestartPolicyName(RestartPolicy p) {
  switch (p) {
    case RestartPolicy::kAlways:
      return "always";
    case RestartPolicy::kOnFailure:
      return "on-failure";
    case RestartPolicy::kNever:
      return "never";
  }
  return "?";
}

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
